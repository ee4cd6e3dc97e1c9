import keras
import numpy as np
import pytest
from helpers import one_hot_segmap, run_layer_test, to_numpy

from spade_tf.layers import CLADE, ClassMap, SPADEResBlock


def class_map(seg, classes, edges=False):
    """NumPy's version of ClassMap: argmax of the label channels (+ the edge channel)."""
    ids = seg[..., :classes].argmax(-1)[..., None].astype("float32")
    return np.concatenate([ids, seg[..., classes:]], -1) if edges else ids


def _set_statistics(norm, rng, channels):
    mean = rng.normal(0.5, 1.0, channels).astype("float32")
    var = rng.uniform(0.5, 3.0, channels).astype("float32")
    norm.moving_mean.assign(mean)
    norm.moving_variance.assign(var)
    return mean, var


def _randomize(layer, rng):
    for w in layer.trainable_weights:
        w.assign(rng.normal(0, 0.5, w.shape).astype("float32"))


def test_clade_matches_numpy_lookup(rng):
    # Segmap at twice x's size: CLADE takes every other pixel (PyTorch's nearest rule).
    classes = 5
    x = rng.normal(size=(2, 4, 4, 3)).astype("float32")
    seg = one_hot_segmap(rng, 2, 8, 8, classes)
    layer = CLADE(3, classes, norm="batch")
    layer(x, class_map(seg, classes))
    _randomize(layer, rng)
    mean, var = _set_statistics(layer.param_free_norm, rng, 3)
    y = to_numpy(layer(x, class_map(seg, classes), training=False))
    ids = seg[:, ::2, ::2].argmax(-1)
    weight, bias = to_numpy(layer.class_weight), to_numpy(layer.class_bias)
    expected = (x - mean) / np.sqrt(var + 1e-5) * weight[ids] + bias[ids]
    np.testing.assert_allclose(y, expected, atol=1e-5)


def test_clade_scale_is_gamma_not_one_plus_gamma(rng):
    # Unlike SPADE: zero class weights zero the output (up to the bias), as official ClassAffine.
    x = rng.normal(size=(1, 4, 4, 2)).astype("float32")
    seg = one_hot_segmap(rng, 1, 4, 4, 3)
    layer = CLADE(2, 3, norm="instance")
    layer(x, class_map(seg, 3))
    layer.class_weight.assign(np.zeros((3, 2), "float32"))
    layer.class_bias.assign(np.arange(6, dtype="float32").reshape(3, 2))
    np.testing.assert_allclose(to_numpy(layer(x, class_map(seg, 3))), np.arange(6.0).reshape(3, 2)[seg.argmax(-1)],
                               atol=1e-6)


def test_clade_official_initialization(rng):
    layer = CLADE(64, 40, instance_edges=True, positional=True)
    layer.build((None, 8, 8, 64), (None, 8, 8, 2), (None, 8, 8, 2))
    weight = to_numpy(layer.class_weight)
    assert weight.min() >= 0.0 and weight.max() < 1.0 and abs(weight.mean() - 0.5) < 0.05  # U[0, 1)
    assert not to_numpy(layer.class_bias).any()
    for conv in (layer.dist_conv_w, layer.dist_conv_b, layer.inst_conv):
        assert tuple(conv.kernel.shape) == (1, 1, conv.kernel.shape[2], 1)
        assert not to_numpy(conv.bias).any()


def test_clade_instance_edges_and_positional_maps(rng):
    classes = 4
    x = rng.normal(size=(2, 4, 4, 3)).astype("float32")
    seg = np.concatenate([one_hot_segmap(rng, 2, 4, 4, classes),
                          rng.integers(0, 2, (2, 4, 4, 1)).astype("float32")], axis=-1)
    dist = rng.uniform(-1, 1, (2, 4, 4, 2)).astype("float32")
    layer = CLADE(3, classes, instance_edges=True, positional=True, norm="instance")
    y = layer(x, class_map(seg, classes, edges=True), dist)
    assert tuple(y.shape) == (2, 4, 4, 4)  # the edge conv's channel appended
    _randomize(layer, rng)
    y = to_numpy(layer(x, class_map(seg, classes, edges=True), dist))
    ids = seg[..., :classes].argmax(-1)
    weight, bias = to_numpy(layer.class_weight), to_numpy(layer.class_bias)

    def conv1x1(conv, inputs):
        return inputs @ to_numpy(conv.kernel)[0, 0] + to_numpy(conv.bias)

    normalized = (x - x.mean((1, 2), keepdims=True)) / np.sqrt(x.var((1, 2), keepdims=True) + 1e-5)
    gamma = weight[ids] * (1 + conv1x1(layer.dist_conv_w, dist))
    beta = bias[ids] * (1 + conv1x1(layer.dist_conv_b, dist))
    np.testing.assert_allclose(y[..., :3], normalized * gamma + beta, atol=1e-4)
    np.testing.assert_allclose(y[..., 3:], conv1x1(layer.inst_conv, seg[..., classes:]), atol=1e-5)


def test_clade_errors(rng):
    with pytest.raises(ValueError, match="classes=0"):
        CLADE(4, 0)
    layer = CLADE(4, 3, instance_edges=True)
    with pytest.raises(ValueError, match="class map of 2 channels"):
        layer.build((None, 4, 4, 4), (None, 4, 4, 4))
    positional = CLADE(2, 3, positional=True)
    x = rng.normal(size=(1, 4, 4, 2)).astype("float32")
    with pytest.raises(ValueError, match="pass the ICPE maps"):
        positional(x, class_map(one_hot_segmap(rng, 1, 4, 4, 3), 3))


@pytest.mark.parametrize("kwargs, shapes, out_channels, weights", [
    (dict(channels=4, classes=5, norm="batch"), [(2, 8, 8, 4), (2, 16, 16, 1)], 4, (2, 2)),
    (dict(channels=4, classes=5, instance_edges=True, positional=True, norm="syncbatch"),
     [(2, 8, 8, 4), (2, 16, 16, 2), (2, 16, 16, 2)], 5, (8, 2)),
])
def test_layer_contract(tmp_path, kwargs, shapes, out_channels, weights):
    run_layer_test(
        CLADE, kwargs, shapes, (2, 8, 8, out_channels), tmp_path,
        expected_num_trainable_weights=weights[0], expected_num_non_trainable_weights=weights[1],
    )


def test_clade_resblock_widens_convs_for_the_edge_channel():
    # Official CLADE block: with instance maps each conv takes one channel more.
    block = SPADEResBlock(8, 4, norm_mode="clade", classes=6, instance_edges=True)
    block.build((None, 4, 4, 8), (None, 16, 16, 2))
    assert tuple(block.conv_0.kernel.shape) == (3, 3, 9, 4)
    assert tuple(block.conv_1.kernel.shape) == (3, 3, 5, 4)
    assert tuple(block.conv_s.kernel.shape) == (1, 1, 9, 4)
    convs = (9 * 9 * 4 + 4) + (9 * 5 * 4 + 4) + 9 * 4
    norms = 2 * 6 * 8 + 2 * 6 * 4 + 2 * 6 * 8 + 3 * 2  # class tables of norm_0, norm_1, norm_s + edge convs
    assert sum(int(np.prod(w.shape)) for w in block.trainable_weights) == convs + norms


def test_clade_resblock_contract(tmp_path):
    run_layer_test(
        SPADEResBlock, dict(in_channels=4, out_channels=2, norm_mode="clade", classes=5, instance_edges=True,
                            positional=True, norm="batch", spectral_norm=True),
        [(2, 8, 8, 4), (2, 8, 8, 2), (2, 8, 8, 2)], (2, 8, 8, 2), tmp_path,
    )


def test_clade_resblock_bad_mode():
    with pytest.raises(ValueError, match="norm_mode='sean'"):
        SPADEResBlock(4, 4, norm_mode="sean")
    with pytest.raises(ValueError, match="needs classes"):
        SPADEResBlock(4, 4, norm_mode="clade")


def test_class_tables_get_gradient_only_for_present_classes(rng):
    # A lookup: rows of classes absent from the label map get exactly zero gradient.
    import tensorflow as tf

    x = rng.normal(size=(2, 4, 4, 3)).astype("float32")
    ids = rng.choice([0, 2, 3], size=(2, 4, 4))
    seg = ids[..., None].astype("float32")
    layer = CLADE(3, 6, norm="batch")
    layer(x, seg)
    with tf.GradientTape() as tape:
        loss = keras.ops.sum(keras.ops.square(layer(x, seg, training=True)))
    grad_w, grad_b = (to_numpy(g) for g in tape.gradient(loss, [layer.class_weight, layer.class_bias]))
    present = np.zeros(6, bool)
    present[np.unique(ids)] = True
    assert not grad_w[~present].any() and not grad_b[~present].any()
    assert np.abs(grad_w[present]).min() > 0 and np.abs(grad_b[present]).min() > 0


def test_class_map_is_the_argmax_then_the_edges(rng, tmp_path):
    seg = np.concatenate([one_hot_segmap(rng, 2, 8, 8, 5), rng.integers(0, 2, (2, 8, 8, 1)).astype("float32")], -1)
    seg[0, :2, :2, :5] = 0  # a zero vector (an out-of-range id): class 0, as argmax
    np.testing.assert_array_equal(to_numpy(ClassMap(5, instance_edges=True)(seg)), class_map(seg, 5, edges=True))
    np.testing.assert_array_equal(to_numpy(ClassMap(5)(seg)), class_map(seg, 5))
    run_layer_test(ClassMap, dict(classes=5, instance_edges=True), [(2, 8, 8, 6)], (2, 8, 8, 2), tmp_path,
                   expected_num_trainable_weights=0)


def test_ids_beyond_the_tables_are_clipped(rng):
    x = rng.normal(size=(1, 2, 2, 2)).astype("float32")
    layer = CLADE(2, 3, norm="instance")
    ids = np.array([[[-4.0], [1.0]], [[2.0], [9.0]]], "float32")[None]
    layer(x, ids)
    layer.class_weight.assign(np.zeros((3, 2), "float32"))
    layer.class_bias.assign(np.array([[0, 0], [1, 1], [2, 2]], "float32"))
    np.testing.assert_array_equal(to_numpy(layer(x, ids))[0, ..., 0], [[0, 1], [2, 2]])
