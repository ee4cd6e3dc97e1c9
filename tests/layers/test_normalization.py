import numpy as np
import pytest
import keras

from spade_tf.layers import BatchNorm, InstanceNorm, param_free_norm
from helpers import keras_round_trip, layer_config_round_trip, to_numpy


def test_batch_norm_training_matches_numpy_and_updates_like_pytorch(rng):
    x = rng.normal(3.0, 2.0, size=(2, 5, 4, 3)).astype("float32")
    layer = BatchNorm()
    y = to_numpy(layer(x, training=True))
    mean = x.mean(axis=(0, 1, 2))
    var = x.var(axis=(0, 1, 2))
    np.testing.assert_allclose(y, (x - mean) / np.sqrt(var + 1e-5), atol=1e-5)
    # PyTorch: running = 0.9 * running + 0.1 * batch, with the unbiased variance.
    n = 2 * 5 * 4
    np.testing.assert_allclose(to_numpy(layer.moving_mean), 0.1 * mean, atol=1e-6)
    np.testing.assert_allclose(
        to_numpy(layer.moving_variance), 0.9 * 1.0 + 0.1 * var * n / (n - 1), atol=1e-6
    )


def test_batch_norm_inference_uses_moving_statistics(rng):
    x = rng.normal(size=(2, 3, 3, 4)).astype("float32")
    layer = BatchNorm()
    layer.build(x.shape)
    layer.moving_mean.assign(np.array([1.0, 2.0, 3.0, 4.0], "float32"))
    layer.moving_variance.assign(np.array([4.0, 1.0, 0.25, 9.0], "float32"))
    y = to_numpy(layer(x, training=False))
    expected = (x - [1.0, 2.0, 3.0, 4.0]) / np.sqrt(np.array([4.0, 1.0, 0.25, 9.0]) + 1e-5)
    np.testing.assert_allclose(y, expected, atol=1e-5)
    np.testing.assert_allclose(to_numpy(layer.moving_mean), [1.0, 2.0, 3.0, 4.0])


def test_batch_norm_has_no_trainable_weights():
    layer = BatchNorm()
    layer.build((None, 4, 4, 8))
    assert layer.trainable_weights == []
    assert sorted(w.name for w in layer.non_trainable_weights) == ["moving_mean", "moving_variance"]


def test_instance_norm_matches_numpy_in_training_and_inference(rng):
    x = rng.normal(1.0, 3.0, size=(2, 6, 5, 3)).astype("float32")
    mean = x.mean(axis=(1, 2), keepdims=True)
    var = x.var(axis=(1, 2), keepdims=True)
    expected = (x - mean) / np.sqrt(var + 1e-5)
    layer = InstanceNorm()
    np.testing.assert_allclose(to_numpy(layer(x, training=True)), expected, atol=1e-5)
    np.testing.assert_allclose(to_numpy(layer(x, training=False)), expected, atol=1e-5)
    assert layer.weights == []


def test_param_free_norm_factory_rejects_unknown_kind():
    assert isinstance(param_free_norm("instance", "n"), InstanceNorm)
    assert param_free_norm("syncbatch", "n").synchronized
    with pytest.raises(ValueError, match="param_free_norm='group'"):
        param_free_norm("group", "n")


@pytest.mark.parametrize("kwargs, message", [
    (dict(momentum=1.5), "momentum=1.5"), (dict(epsilon=0.0), "epsilon=0.0"),
])
def test_batch_norm_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BatchNorm(**kwargs)


def test_norms_round_trip(tmp_path, rng):
    x = rng.normal(size=(2, 4, 4, 3)).astype("float32")
    for layer in (BatchNorm(momentum=0.2, synchronized=True), InstanceNorm(epsilon=1e-3)):
        layer_config_round_trip(layer)
        inputs = keras.Input((4, 4, 3))
        model = keras.Model(inputs, layer(inputs))
        model.layers[-1](x, training=True)  # moves the moving statistics
        loaded = keras_round_trip(model, tmp_path)
        np.testing.assert_allclose(to_numpy(loaded(x)), to_numpy(model(x)), atol=1e-6)
