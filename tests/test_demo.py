import numpy as np
import pytest
from PIL import Image

from spade_tf.demo import run_demo
from spade_tf.utils.visualize import colorize, to_uint8


def test_demo_writes_label_generated_reference_strips(tmp_path):
    paths = run_demo(str(tmp_path), seed=5, num_images=2)
    assert [p.rsplit("/", 1)[-1] for p in paths] == ["demo_0005.png", "demo_0006.png"]
    strip = np.array(Image.open(paths[0]))
    assert strip.shape == (64, 192, 3)
    from spade_tf.data import synthetic
    labels, real = synthetic.scene(5, 64, 64)
    np.testing.assert_array_equal(strip[:, :64], colorize(labels))
    np.testing.assert_array_equal(strip[:, 128:], real)


def test_demo_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="preset='coco'"):
        run_demo(str(tmp_path), preset="coco")
    with pytest.raises(ValueError, match="num_images=0"):
        run_demo(str(tmp_path), num_images=0)


def test_to_uint8_and_colorize():
    np.testing.assert_array_equal(to_uint8(np.array([-1.0, 0.0, 1.0, 2.0])), [0, 128, 255, 255])
    colours = colorize(np.array([[0, 1], [2, 255]]))
    assert colours.shape == (2, 2, 3)
    assert len({tuple(c) for c in colours.reshape(-1, 3)}) == 4
    with pytest.raises(ValueError, match="0..255"):
        colorize(np.array([[256]]))
