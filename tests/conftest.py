import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(1234)
    yield


@pytest.fixture
def rng():
    return np.random.default_rng(0)


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
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
