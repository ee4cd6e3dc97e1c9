import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Same lookup as tests/data/conftest.py's fixture of the same name.
COCO_MINI = os.environ.get(
    "SPADE_TF_COCO_MINI", os.path.join(ROOT, "..", "shared", "data", "coco_stuff_mini")
)


@pytest.fixture
def coco_mini():
    """The real COCO-Stuff sample beside the repository (never copied into it)."""
    if not os.path.isdir(COCO_MINI):
        message = f"COCO-Stuff sample not found at {COCO_MINI} (set SPADE_TF_COCO_MINI)"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI always has it: a missing sample is a failure there
        pytest.skip(message)
    return COCO_MINI


@pytest.fixture(scope="session")
def random_inception():
    """One random-weight InceptionV3 for the whole session (building it takes seconds)."""
    from spade_tf.evaluation import build_inception

    return build_inception(None)
