import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import keras_round_trip, layer_config_round_trip, run_layer_test, to_numpy

from spade_tf.layers import Conv2D, get_initializer


def numpy_conv(x, kernel, bias, stride, pad):
    """Reference cross-correlation with PyTorch's symmetric zero padding."""
    x = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    k = kernel.shape[0]
    b, h, w, _ = x.shape
    oh, ow = (h - k) // stride + 1, (w - k) // stride + 1
    out = np.zeros((b, oh, ow, kernel.shape[-1]), np.float64)
    for i in range(oh):
        for j in range(ow):
            patch = x[:, i * stride:i * stride + k, j * stride:j * stride + k, :]
            out[:, i, j] = np.tensordot(patch, kernel, axes=([1, 2, 3], [0, 1, 2]))
    return out + (0 if bias is None else bias)


@pytest.mark.parametrize("k, stride, pad, bias", [
    (3, 1, 1, True), (4, 2, 2, True), (3, 2, 1, False), (1, 1, 0, False), (4, 1, 2, True),
])
def test_conv_matches_numpy_with_pytorch_padding(rng, k, stride, pad, bias):
    x = rng.normal(size=(2, 9, 8, 3)).astype("float32")
    layer = Conv2D(5, k, strides=stride, padding=pad, use_bias=bias)
    layer.build(x.shape)
    kernel = rng.normal(size=(k, k, 3, 5)).astype("float32")
    weights = [kernel] + ([rng.normal(size=(5,)).astype("float32")] if bias else [])
    layer.set_weights(weights)
    y = to_numpy(layer(x))
    expected = numpy_conv(x, kernel, weights[1] if bias else None, stride, pad)
    assert y.shape == expected.shape == tuple(layer.compute_output_shape(x.shape))
    np.testing.assert_allclose(y, expected, atol=1e-4)


def weight_matrix(kernel):
    return np.transpose(kernel, (3, 2, 0, 1)).reshape(kernel.shape[-1], -1)


def test_spectral_norm_training_step_matches_pytorch_algorithm(rng):
    x = rng.normal(size=(1, 6, 6, 3)).astype("float32")
    layer = Conv2D(4, 3, padding=1, spectral_norm=True)
    layer.build(x.shape)
    kernel = to_numpy(layer.kernel)
    u0, v0 = to_numpy(layer.u), to_numpy(layer.v)
    assert u0.shape == (4,) and v0.shape == (27,)
    np.testing.assert_allclose(np.linalg.norm(u0), 1.0, rtol=1e-5)

    y = to_numpy(layer(x, training=True))
    # torch.nn.utils.spectral_norm, one power iteration:
    w = weight_matrix(kernel).astype(np.float64)
    v = w.T @ u0
    v /= np.linalg.norm(v)
    u = w @ v
    u /= np.linalg.norm(u)
    sigma = u @ w @ v
    np.testing.assert_allclose(to_numpy(layer.u), u, atol=1e-5)
    np.testing.assert_allclose(to_numpy(layer.v), v, atol=1e-5)
    np.testing.assert_allclose(y, numpy_conv(x, kernel / sigma, 0.0, 1, 1), atol=1e-4)
    # The raw kernel (PyTorch's weight_orig) is never overwritten.
    np.testing.assert_array_equal(to_numpy(layer.kernel), kernel)


@pytest.mark.parametrize("k, cin, cout, stride, pad", [(4, 5, 7, 2, 2), (1, 6, 3, 1, 0), (3, 2, 9, 1, 1)])
def test_spectral_norm_power_iteration_keeps_pytorch_vector_order(rng, k, cin, cout, stride, pad):
    # The layer iterates on the HWIO kernel and permutes v; u, v, sigma must
    # still be PyTorch's, whose v runs over (in, kh, kw) of the OIHW weight.
    x = rng.normal(size=(2, 7, 7, cin)).astype("float32")
    layer = Conv2D(cout, k, strides=stride, padding=pad, spectral_norm=True)
    layer.build(x.shape)
    kernel = rng.normal(size=(k, k, cin, cout)).astype("float32")
    layer.kernel.assign(kernel)
    layer.bias.assign(rng.normal(size=(cout,)).astype("float32"))
    w = weight_matrix(kernel).astype(np.float64)
    u = to_numpy(layer.u).astype(np.float64)
    for _ in range(2):  # the second step starts from the first's stored u, v
        y = to_numpy(layer(x, training=True))
        v = w.T @ u
        v /= np.linalg.norm(v)
        u = w @ v
        u /= np.linalg.norm(u)
        sigma = u @ w @ v
        np.testing.assert_allclose(to_numpy(layer.u), u, atol=1e-5)
        np.testing.assert_allclose(to_numpy(layer.v), v, atol=1e-5)
        expected = numpy_conv(x, kernel / sigma, to_numpy(layer.bias), stride, pad)
        np.testing.assert_allclose(y, expected, atol=1e-4)
    np.testing.assert_allclose(to_numpy(layer.folded_kernel()), kernel / sigma, rtol=1e-5)


def test_spectral_norm_inference_uses_stored_vectors_and_folds(rng):
    x = rng.normal(size=(2, 5, 5, 3)).astype("float32")
    layer = Conv2D(4, 3, padding=1, spectral_norm=True)
    layer.build(x.shape)
    u, v = to_numpy(layer.u), to_numpy(layer.v)
    y = to_numpy(layer(x, training=False))
    np.testing.assert_array_equal(to_numpy(layer.u), u)  # no iteration in inference
    kernel = to_numpy(layer.kernel)
    sigma = u @ weight_matrix(kernel) @ v
    np.testing.assert_allclose(to_numpy(layer.folded_kernel()), kernel / sigma, rtol=1e-5)
    np.testing.assert_allclose(y, numpy_conv(x, kernel / sigma, 0.0, 1, 1), atol=1e-4)


def test_spectral_norm_converges_to_largest_singular_value(rng):
    layer = Conv2D(6, 3, padding=1, spectral_norm=True)
    x = rng.normal(size=(1, 4, 4, 5)).astype("float32")
    layer.build(x.shape)
    for _ in range(100):
        layer(x, training=True)
    w = weight_matrix(to_numpy(layer.kernel))
    top = np.linalg.svd(w, compute_uv=False)[0]
    folded = weight_matrix(to_numpy(layer.folded_kernel()))
    np.testing.assert_allclose(np.linalg.svd(folded, compute_uv=False)[0], 1.0, rtol=1e-3)
    sigma = to_numpy(layer.u) @ w @ to_numpy(layer.v)
    np.testing.assert_allclose(sigma, top, rtol=1e-3)


def test_spectral_norm_gradient_flows_through_sigma(rng):
    # PyTorch differentiates W / sigma(W); Keras' SpectralNormalization does not.
    x = tf.constant(rng.normal(size=(1, 4, 4, 2)).astype("float32"))
    layer = Conv2D(3, 3, padding=1, use_bias=False, spectral_norm=True)
    layer.build(x.shape)
    u, v = tf.constant(to_numpy(layer.u)), tf.constant(to_numpy(layer.v))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(x, training=False) ** 2)
    grad = tape.gradient(loss, layer.kernel.value)
    kernel = tf.Variable(to_numpy(layer.kernel))
    with tf.GradientTape() as tape:
        w = tf.reshape(tf.transpose(kernel, (3, 2, 0, 1)), (3, -1))
        sigma = tf.tensordot(u, tf.linalg.matvec(w, v), 1)
        y = tf.nn.conv2d(x, kernel / sigma, 1, "SAME")
        expected_loss = tf.reduce_sum(y**2)
    expected = tape.gradient(expected_loss, kernel)
    np.testing.assert_allclose(grad.numpy(), expected.numpy(), rtol=1e-4, atol=1e-6)
    # The loss is scale invariant in W, so the gradient is orthogonal to W (cosine ~0; float32
    # rounding of a sum of large terms leaves ~1e-6 of the norms' product).
    g, w = grad.numpy().ravel().astype(np.float64), kernel.numpy().ravel().astype(np.float64)
    assert abs(g @ w) <= 1e-4 * np.linalg.norm(g) * np.linalg.norm(w)


def test_default_initializer_is_official_xavier_gain_002():
    layer = Conv2D(256, 3, padding=1)
    layer.build((None, 8, 8, 256))
    kernel = to_numpy(layer.kernel)
    fan_in = fan_out = 9 * 256
    expected_std = 0.02 * np.sqrt(2.0 / (fan_in + fan_out))
    np.testing.assert_allclose(kernel.std(), expected_std, rtol=0.02)
    assert abs(kernel.mean()) < expected_std * 0.01
    np.testing.assert_array_equal(to_numpy(layer.bias), 0.0)


def test_initializer_rejects_unknown_type():
    with pytest.raises(ValueError, match="init_type='he'"):
        get_initializer("he")


@pytest.mark.parametrize("kwargs, message", [
    (dict(filters=0, kernel_size=3), "filters=0"),
    (dict(filters=4, kernel_size=3, strides=0), "strides=0"),
    (dict(filters=4, kernel_size=3, padding=-1), "padding=-1"),
    (dict(filters=4, kernel_size=2.5), "kernel_size=2.5"),
])
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Conv2D(**kwargs)


def test_round_trip_keeps_weights_and_vectors(tmp_path, rng):
    layer = Conv2D(4, 4, strides=2, padding=2, spectral_norm=True, name="c")
    layer_config_round_trip(layer)
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, layer(inputs))
    x = rng.normal(size=(2, 8, 8, 3)).astype("float32")
    model(x, training=True)
    loaded = keras_round_trip(model, tmp_path)
    np.testing.assert_allclose(to_numpy(loaded(x)), to_numpy(model(x)), atol=1e-6)
    np.testing.assert_array_equal(to_numpy(loaded.layers[-1].u), to_numpy(layer.u))


def test_mixed_precision_computes_in_float16(rng):
    layer = Conv2D(4, 3, padding=1, spectral_norm=True, dtype="mixed_float16")
    x = rng.normal(size=(1, 4, 4, 3)).astype("float16")
    y = layer(x, training=True)
    assert keras.backend.standardize_dtype(y.dtype) == "float16"
    assert layer.kernel.dtype == "float32" and layer.u.dtype == "float32"


@pytest.mark.parametrize("kwargs, output_shape, weights", [
    (dict(filters=4, kernel_size=3, padding=1), (2, 8, 8, 4), (2, 0)),
    # The discriminator's conv: 4x4, stride 2, padding 2, spectral norm, no bias.
    (dict(filters=4, kernel_size=4, strides=2, padding=2, spectral_norm=True, use_bias=False),
     (2, 5, 5, 4), (1, 2)),
    (dict(filters=4, kernel_size=1, spectral_norm=True, eps=1e-10), (2, 8, 8, 4), (2, 2)),
])
def test_layer_contract(tmp_path, kwargs, output_shape, weights):
    run_layer_test(
        Conv2D, kwargs, [(2, 8, 8, 3)], output_shape, tmp_path,
        expected_num_trainable_weights=weights[0], expected_num_non_trainable_weights=weights[1],
    )
