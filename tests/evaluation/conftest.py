import pytest


@pytest.fixture(scope="session")
def random_inception():
    """One random-weight InceptionV3 for the whole session (building it takes seconds)."""
    from spade_tf.evaluation import build_inception

    return build_inception(None)
