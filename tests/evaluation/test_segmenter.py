import numpy as np
import pytest
import tensorflow as tf

from spade_tf.evaluation import Segmenter

STEP = 40  # class c is painted red = c * STEP


def _painted(labels):
    image = np.zeros((*labels.shape, 3), np.uint8)
    image[..., 0] = labels * STEP
    return image


class IdsAtHalfSize(tf.Module):
    """uint8 image -> class ids [B, H/2, W/2] (a segmenter at a lower resolution)."""

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8)])
    def serve(self, images):
        ids = tf.cast(tf.round(tf.cast(images[..., 0], tf.float32) / STEP), tf.int64)
        return {"class_ids": ids[:, ::2, ::2]}


class Logits(tf.Module):
    """float image -> one-hot logits [B, H, W, 4], as a callable without signatures."""

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    def __call__(self, images):
        ids = tf.cast(tf.round(images[..., 0] / STEP), tf.int32)
        return tf.one_hot(ids, 4) * 5.0


class TwoOutputs(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    def serve(self, images):
        ids = tf.cast(tf.round(images[..., 0] / STEP), tf.int32)
        return {"probabilities": tf.one_hot(ids + 1, 4), "logits": tf.one_hot(ids, 4)}


@pytest.fixture
def labels(rng):
    ids = rng.integers(0, 4, size=(2, 4, 4))
    return np.repeat(np.repeat(ids, 2, 1), 2, 2)  # 2x2 blocks: the half-size map is exact


def test_serving_signature_with_ids_at_another_size(tmp_path, labels):
    module = IdsAtHalfSize()
    tf.saved_model.save(module, str(tmp_path), signatures={"serving_default": module.serve})
    seg = Segmenter(str(tmp_path))
    predicted = seg(_painted(labels))
    assert predicted.dtype == np.int32 and predicted.shape == labels.shape
    np.testing.assert_array_equal(predicted, labels)


def test_callable_module_with_float_input_and_logits(tmp_path, labels):
    tf.saved_model.save(Logits(), str(tmp_path))
    np.testing.assert_array_equal(Segmenter(str(tmp_path))(_painted(labels)), labels)


def test_several_outputs_use_the_one_named_logits(tmp_path, labels):
    module = TwoOutputs()
    tf.saved_model.save(module, str(tmp_path), signatures={"serving_default": module.serve})
    np.testing.assert_array_equal(Segmenter(str(tmp_path))(_painted(labels)), labels)


def test_bad_paths_and_inputs_are_named(tmp_path, labels):
    with pytest.raises(FileNotFoundError, match="missing"):
        Segmenter(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="not a loadable TensorFlow SavedModel"):
        Segmenter(str(tmp_path / "empty"))
    tf.saved_model.save(Logits(), str(tmp_path / "ok"))
    with pytest.raises(ValueError, match=r"\[B, H, W, 3\]"):
        Segmenter(str(tmp_path / "ok"))(labels)
