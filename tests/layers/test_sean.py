import keras
import numpy as np
import pytest
from helpers import one_hot_segmap, run_layer_test, to_numpy

from spade_tf.layers import ACE, SPADE, ReflectionPad2D, RegionAverage, region_average
from spade_tf.layers.sean import region_owners


def numpy_conv3x3(x, kernel, bias):
    """Zero-padded 3x3 convolution, [B, H, W, Cin] x [3, 3, Cin, Cout]."""
    h, w = x.shape[1:3]
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    return sum(padded[:, i:i + h, j:j + w] @ kernel[i, j] for i in range(3) for j in range(3)) + bias


def numpy_region_average(features, segmap):
    """Official Zencoder rule, with its loops: per batch and class, the mean
    of the features where the (x[::s]-resized) class channel is non-zero;
    zeros where the class is absent."""
    s = segmap.shape[1] // features.shape[1]
    segmap = segmap[:, ::s, ::s]
    out = np.zeros((features.shape[0], segmap.shape[-1], features.shape[-1]), np.float64)
    for b in range(features.shape[0]):
        for j in range(segmap.shape[-1]):
            mask = segmap[b, ..., j] != 0
            if mask.any():
                out[b, j] = features[b][mask].mean(axis=0)
    return out


def test_region_average_is_the_per_class_mean_and_zero_for_absent_classes(rng):
    features = rng.normal(size=(2, 8, 8, 5)).astype("float32")
    segmap = one_hot_segmap(rng, 2, 16, 16, 6)  # resized to 8x8 by x[::2]
    segmap[..., 4] += segmap[..., 5]  # class 5 absent everywhere,
    segmap[..., 5] = 0.0
    segmap[1, ..., 3] = 0.0  # class 3 absent from sample 1 (its pixels belong to no class)
    expected = numpy_region_average(features, segmap)
    assert np.abs(expected[:, 5]).max() == 0 and np.abs(expected[1, 3]).max() == 0
    assert np.abs(expected[0, :4]).min() > 0  # the present classes have codes
    np.testing.assert_allclose(to_numpy(region_average(features, segmap)), expected, atol=1e-6)


def test_region_average_counts_overlapping_regions_in_each():
    # An edge channel over a class: each region averages all of its pixels.
    features = np.arange(16, dtype="float32").reshape(1, 4, 4, 1)
    segmap = np.zeros((1, 4, 4, 2), "float32")
    segmap[..., 0] = 1.0
    segmap[0, 0, :, 1] = 1.0  # first row is also 'edge'
    out = to_numpy(region_average(features, segmap))
    np.testing.assert_allclose(out[0, :, 0], [7.5, 1.5])


def test_region_owners_one_hot_and_last_channel_wins():
    segmap = np.zeros((1, 2, 2, 3), "float32")
    segmap[0, 0, 0] = [1, 0, 0]
    segmap[0, 0, 1] = [0, 0.5, 0]  # any non-zero value marks the region
    segmap[0, 1, 0] = [1, 0, 1]  # overlap: the last channel wins (official masked_scatter_ order)
    owners = to_numpy(region_owners(segmap))
    np.testing.assert_array_equal(owners[0, 0, 0], [1, 0, 0])
    np.testing.assert_array_equal(owners[0, 0, 1], [0, 1, 0])
    np.testing.assert_array_equal(owners[0, 1, 0], [0, 0, 1])
    np.testing.assert_array_equal(owners[0, 1, 1], [0, 0, 0])


def _randomize(layer, rng, scale=0.3):
    for w in layer.trainable_weights:
        w.assign(rng.normal(0, scale, size=w.shape).astype("float32"))


def numpy_ace(layer, x, segmap, codes):
    """The official ACE forward (noise off, batch statistics), with its loops."""
    w = {v.path.split("/", 1)[1]: to_numpy(v) for v in layer.weights}
    normalized = (x - x.mean((0, 1, 2))) / np.sqrt(x.var((0, 1, 2)) + 1e-5)
    s = segmap.shape[1] // x.shape[1]
    seg = segmap[:, ::s, ::s]
    actv = np.maximum(numpy_conv3x3(seg, w["mlp_shared/kernel"], w["mlp_shared/bias"]), 0)
    gamma_spade = numpy_conv3x3(actv, w["mlp_gamma/kernel"], w["mlp_gamma/bias"])
    beta_spade = numpy_conv3x3(actv, w["mlp_beta/kernel"], w["mlp_beta/bias"])
    middle = np.zeros((*x.shape[:3], layer.style_dim))
    for b in range(x.shape[0]):
        for j in range(seg.shape[-1]):
            mask = seg[b, ..., j] != 0
            if mask.any():
                middle[b][mask] = np.maximum(codes[b, j] @ w["fc_mu_kernel"][j] + w["fc_mu_bias"][j], 0)
    gamma_avg = numpy_conv3x3(middle, w["conv_gamma/kernel"], w["conv_gamma/bias"])
    beta_avg = numpy_conv3x3(middle, w["conv_beta/kernel"], w["conv_beta/bias"])
    a_g = 1 / (1 + np.exp(-w["blending_gamma"]))
    a_b = 1 / (1 + np.exp(-w["blending_beta"]))
    gamma = a_g * gamma_avg + (1 - a_g) * gamma_spade
    beta = a_b * beta_avg + (1 - a_b) * beta_spade
    return normalized * (1 + gamma) + beta


def test_ace_without_noise_matches_the_official_computation(rng):
    x = rng.normal(1.0, 2.0, size=(2, 4, 4, 3)).astype("float32")
    segmap = one_hot_segmap(rng, 2, 8, 8, 4)
    segmap[1, ..., 0] = 0.0  # an absent class in sample 1: its pixels get no style
    codes = rng.normal(size=(2, 4, 6)).astype("float32")
    layer = ACE(3, 4, style_dim=6, hidden=5, norm="batch", use_noise=False)
    layer(x, segmap, codes)
    _randomize(layer, rng)  # blending too: a != 0.5, and noise_var != 0 (unused: noise off)
    assert abs(float(to_numpy(layer.blending_gamma)[0])) > 0.01
    y = to_numpy(layer(x, segmap, codes, training=True))
    np.testing.assert_allclose(y, numpy_ace(layer, x, segmap, codes), atol=1e-4, rtol=1e-4)


def test_ace_without_style_is_spade(rng):
    x = rng.normal(size=(2, 4, 4, 3)).astype("float32")
    segmap = one_hot_segmap(rng, 2, 8, 8, 4)
    ace = ACE(3, 4, style_dim=6, hidden=5, norm="instance", use_style=False)
    spade = SPADE(3, hidden=5, norm="instance")
    ace(x, segmap), spade(x, segmap)
    _randomize(ace, rng)
    ace.noise_var.assign(np.zeros(3, "float32"))
    for name in ("mlp_shared", "mlp_gamma", "mlp_beta"):
        getattr(spade, name).set_weights(getattr(ace, name).get_weights())
    np.testing.assert_allclose(to_numpy(ace(x, segmap)), to_numpy(spade(x, segmap)), atol=1e-6)
    # Official use_rgb=False still creates the blending scalars and the noise scale.
    names = sorted(v.path.split("/", 1)[1] for v in ace.trainable_weights)
    assert names == sorted(["noise_var", "blending_gamma", "blending_beta"] + [
        f"mlp_{n}/{p}" for n in ("shared", "gamma", "beta") for p in ("kernel", "bias")])


def test_noise_is_one_value_per_pixel_scaled_per_channel_and_can_be_turned_off(rng):
    # x = 0 and no modulation: the output is the normalized noise n * noise_var.
    segmap = one_hot_segmap(rng, 2, 8, 8, 3)
    codes = rng.normal(size=(2, 3, 4)).astype("float32")
    x = np.zeros((2, 8, 8, 3), "float32")
    layer = ACE(3, 3, style_dim=4, hidden=4, norm="batch", seed=7)
    layer(x, segmap, codes)
    for conv in (layer.mlp_gamma, layer.mlp_beta, layer.conv_gamma, layer.conv_beta):
        conv.set_weights([np.zeros_like(w) for w in conv.get_weights()])
    layer.noise_var.assign(np.array([100.0, -300.0, 0.0], "float32"))
    out = to_numpy(layer(x, segmap, codes, training=True))
    # Channels 0 and 1 see the same noise map (up to sign: the scale is per
    # channel), standardized; channel 2 has a zero scale.
    np.testing.assert_allclose(out[..., 1], -out[..., 0], atol=1e-4)
    assert 0.9 < out[..., 0].std() < 1.1 and np.abs(out[..., 2]).max() == 0
    # Added in inference too (as official): two calls draw different noise.
    layer.param_free_norm.moving_variance.assign(np.full(3, 1e4, "float32"))
    first, second = (to_numpy(layer(x, segmap, codes, training=False)) for _ in range(2))
    assert np.abs(first - second).max() > 0.1
    layer.use_noise = False
    assert np.abs(to_numpy(layer(x, segmap, codes, training=True))).max() == 0  # norm of zeros


def test_fc_weights_are_one_xavier_linear_per_class():
    layer = ACE(4, 3, style_dim=64, hidden=4)
    layer.build((None, 4, 4, 4), (None, 4, 4, 3), (None, 3, 64))
    other = ACE(4, 3, style_dim=64, hidden=4)
    other.build((None, 4, 4, 4), (None, 4, 4, 3), (None, 3, 64))
    kernel = to_numpy(layer.fc_mu_kernel)
    assert kernel.shape == (3, 64, 64) and to_numpy(layer.fc_mu_bias).shape == (3, 64)
    # xavier_normal_(gain=0.02) of one nn.Linear(64, 64): std 0.02 * sqrt(2 / 128).
    np.testing.assert_allclose(kernel.std(axis=(1, 2)), 0.0025, rtol=0.05)
    assert np.abs(kernel[0] - kernel[1]).max() > 1e-3  # classes differ
    assert np.abs(kernel - to_numpy(other.fc_mu_kernel)).max() > 1e-3  # layers differ
    assert np.abs(to_numpy(layer.fc_mu_bias)).max() == 0
    for name in ("noise_var", "blending_gamma", "blending_beta"):
        assert np.abs(to_numpy(getattr(layer, name))).max() == 0


@pytest.mark.parametrize("kwargs, shapes, message", [
    (dict(channels=4, classes=0), None, "classes=0"),
    (dict(channels=4, classes=3, style_dim=0), None, "style_dim=0"),
    (dict(channels=4, classes=3, style_dim=8), [(1, 4, 4, 4), (1, 4, 4, 2), (1, 2, 8)], "segmap of 3 channels"),
    (dict(channels=4, classes=3, style_dim=8), [(1, 4, 4, 4), (1, 4, 4, 3), (1, 3, 4)], r"style codes of shape"),
    (dict(channels=4, classes=3, style_dim=8), [(1, 4, 4, 4), (1, 4, 4, 3)], "pass the style codes"),
])
def test_ace_bad_arguments_and_inputs(kwargs, shapes, message):
    with pytest.raises(ValueError, match=message):
        layer = ACE(**kwargs)
        layer(*[np.ones(s, "float32") for s in shapes])


@pytest.mark.parametrize("kwargs, shapes, trainable", [
    (dict(channels=4, classes=3, style_dim=6, hidden=8, norm="batch", seed=3), [(2, 8, 8, 4), (2, 16, 16, 3),
                                                                                 (2, 3, 6)], 15),
    (dict(channels=4, classes=3, style_dim=6, hidden=8, norm="syncbatch", use_style=False, use_noise=False),
     [(2, 8, 8, 4), (2, 16, 16, 3)], 9),
])
def test_ace_layer_contract(tmp_path, kwargs, shapes, trainable):
    run_layer_test(ACE, kwargs, shapes, (2, 8, 8, 4), tmp_path,
                   expected_num_trainable_weights=trainable, expected_num_non_trainable_weights=2)


def test_region_average_layer_contract(tmp_path):
    run_layer_test(RegionAverage, {}, [(2, 4, 4, 5), (2, 8, 8, 3)], (2, 3, 5), tmp_path)


def test_reflection_pad_is_numpy_reflect(tmp_path, rng):
    x = rng.normal(size=(2, 4, 5, 3)).astype("float32")
    np.testing.assert_array_equal(
        to_numpy(ReflectionPad2D(2)(x)), np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)), mode="reflect"))
    run_layer_test(ReflectionPad2D, dict(padding=1), [(2, 4, 5, 3)], (2, 6, 7, 3), tmp_path)
    with pytest.raises(ValueError, match="padding=-1"):
        ReflectionPad2D(-1)


def test_ace_in_a_model_trains_every_used_weight(rng):
    # One gradient step reaches the style path (fc, conv_gamma/beta, blending).
    import tensorflow as tf

    x_in, s_in, c_in = keras.Input((4, 4, 3)), keras.Input((8, 8, 3)), keras.Input((3, 4))
    layer = ACE(3, 3, style_dim=4, hidden=4, norm="batch", use_noise=False)
    model = keras.Model([x_in, s_in, c_in], layer(x_in, s_in, c_in))
    inputs = [rng.normal(size=(2, 4, 4, 3)).astype("float32"), one_hot_segmap(rng, 2, 8, 8, 3),
              rng.normal(size=(2, 3, 4)).astype("float32")]
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.square(model(inputs, training=True)))
    grads = tape.gradient(loss, model.trainable_variables)
    names = {v.path.split("/", 1)[1]: g for v, g in zip(model.trainable_variables, grads)}
    assert names.pop("noise_var") is None  # noise off: no path
    assert all(g is not None and float(tf.reduce_max(tf.abs(g))) > 0 for g in names.values()), [
        n for n, g in names.items() if g is None]
