"""CLADE-ICPE's positional maps: the graph version against SciPy's reference and hand values."""

import glob
import os

import numpy as np
import pytest
import tensorflow as tf

from spade_tf.positional import EPSILON, connected_components, positional_encoding, positional_encoding_numpy


def blocky(rng, h, w, classes, block=3):
    return rng.integers(0, classes, (h // block + 1, w // block + 1)).repeat(block, 0).repeat(block, 1)[:h, :w]


def test_hand_computed_values():
    # A 1x3 run of id 2: w offsets -1, 0, 1 over max |offset| 1 (+1e-5); h offsets 0.
    # A lone pixel of id 3: 0 / 1e-5 = 0. Id 0: zeros.
    label = np.array([[2, 2, 2, 0],
                      [0, 0, 0, 3]])
    maps = positional_encoding(tf.constant(label)).numpy()
    np.testing.assert_allclose(maps[0, :3, 1], np.array([-1, 0, 1]) / (1 + EPSILON), rtol=1e-6)
    assert not maps[..., 0].any() and not maps[1].any() and not maps[0, 3].any()
    # An L of id 1: centroid (1/3, 1/3); h offsets -1/3, -1/3, 2/3 over 2/3.
    label = np.array([[1, 1], [1, 5]])
    maps = positional_encoding(tf.constant(label)).numpy()
    np.testing.assert_allclose(maps[[0, 0, 1], [0, 1, 0], 0], np.array([-1, -1, 2]) / 3 / (2 / 3 + EPSILON), rtol=1e-5)


def test_diagonal_neighbours_join_and_separate_regions_do_not():
    # 8-connectivity (cv2's default): the diagonal pair is one region; the two
    # runs of id 4 far apart are two regions, each centred on itself.
    label = np.array([[7, 0, 0, 4, 4, 4, 0, 4, 4, 4],
                      [0, 7, 0, 0, 0, 0, 0, 0, 0, 0]])
    comp = connected_components(tf.constant(label[None])).numpy()[0]
    assert comp[0, 0] == comp[1, 1]
    assert comp[0, 3] == comp[0, 5] and comp[0, 7] == comp[0, 9] and comp[0, 3] != comp[0, 7]
    maps = positional_encoding(tf.constant(label)).numpy()
    np.testing.assert_allclose(maps[0, 3:6, 1], maps[0, 7:10, 1])
    np.testing.assert_allclose(maps[[0, 1], [0, 1], 0], np.array([-0.5, 0.5]) / (0.5 + EPSILON), rtol=1e-6)
    np.testing.assert_array_equal(maps, positional_encoding_numpy(label))


@pytest.mark.parametrize("seed", range(4))
def test_batch_of_random_maps_equals_the_reference(seed):
    rng = np.random.default_rng(seed)
    labels = np.stack([blocky(rng, 23, 31, 5, block=1 + i) for i in range(3)])  # odd sizes, ids 0..4
    maps = positional_encoding(tf.constant(labels)).numpy()
    assert maps.shape == (3, 23, 31, 2) and maps.dtype == np.float32
    for label, got in zip(labels, maps):  # regions never join across images
        np.testing.assert_allclose(got, positional_encoding_numpy(label), atol=2e-6)
    assert np.abs(maps).max() < 1 and np.abs(maps).max() > 0.9


def test_snake_and_spiral_converge():
    # One region 15 rows long folded into a snake; a spiral of id 1 on id 2.
    n = 29
    snake = np.zeros((n, n), int)
    snake[::2] = 1
    snake[1::4, -1] = 1
    snake[3::4, 0] = 1
    spiral = np.full((n, n), 2)
    top, left, bottom, right = 0, 0, n - 1, n - 1
    while top <= bottom and left <= right:
        spiral[top, left:right + 1] = spiral[top:bottom + 1, right] = 1
        spiral[bottom, left:right + 1] = 1
        spiral[top + 2:bottom + 1, left] = 1
        top, left, bottom, right = top + 2, left + 2, bottom - 2, right - 2
        if top <= bottom:
            spiral[top - 1, left - 1] = 1
    for label in (snake, spiral):
        comp = connected_components(tf.constant(label[None])).numpy()[0]
        from scipy import ndimage

        for class_id in (1, 2):
            reference, count = ndimage.label(label == class_id, structure=np.ones((3, 3)))
            assert len(np.unique(comp[label == class_id])) == count
        np.testing.assert_allclose(positional_encoding(tf.constant(label)).numpy(),
                                   positional_encoding_numpy(label), atol=2e-6)


def test_real_coco_label_map(coco_mini):
    from PIL import Image

    path = sorted(glob.glob(os.path.join(coco_mini, "val_label", "*.png")))[0]
    label = np.asarray(Image.open(path))
    np.testing.assert_allclose(positional_encoding(tf.constant(label)).numpy(), positional_encoding_numpy(label),
                               atol=1e-4)  # float32 centroids of regions of ~10^5 pixels


def test_in_tf_data_saved_model_and_tflite(tmp_path):
    rng = np.random.default_rng(3)
    label = blocky(rng, 16, 16, 4).astype(np.int32)
    expected = positional_encoding_numpy(label)
    ds = tf.data.Dataset.from_tensors(tf.constant(label)).map(positional_encoding)
    np.testing.assert_allclose(next(iter(ds)).numpy(), expected, atol=2e-6)

    module = tf.Module()
    module.f = tf.function(lambda x: {"positional": positional_encoding(x)},
                           input_signature=[tf.TensorSpec([1, 16, 16], tf.int32, name="label")])
    tf.saved_model.save(module, str(tmp_path / "saved"), signatures=module.f)
    loaded = tf.saved_model.load(str(tmp_path / "saved")).signatures["serving_default"]
    np.testing.assert_allclose(loaded(label=tf.constant(label[None]))["positional"].numpy()[0], expected, atol=2e-6)

    from spade_tf.export import make_interpreter

    converter = tf.lite.TFLiteConverter.from_saved_model(str(tmp_path / "saved"))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    interpreter = make_interpreter(converter.convert())
    ops = {op["op_name"] for op in interpreter._get_ops_details()}
    assert "WHILE" in ops and not any(o.startswith("Flex") for o in ops), ops
    got = interpreter.get_signature_runner()(label=label[None])["positional"][0]
    np.testing.assert_allclose(got, expected, atol=2e-6)
