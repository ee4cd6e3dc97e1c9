import keras
import numpy as np
import pytest
from helpers import keras_round_trip, layer_config_round_trip, one_hot_segmap, run_layer_test, to_numpy

from spade_tf.layers import SPADE, BatchNorm, InstanceNorm, LabelIndex


def numpy_instance_norm(x):
    return (x - x.mean(axis=(1, 2), keepdims=True)) / np.sqrt(x.var(axis=(1, 2), keepdims=True) + 1e-5)


def test_zero_gamma_beta_convs_give_plain_param_free_norm(rng):
    # Pins the (1 + gamma) form: with gamma = beta = 0 SPADE is the plain norm.
    x = rng.normal(2.0, 3.0, size=(2, 8, 8, 4)).astype("float32")
    seg = one_hot_segmap(rng, 2, 32, 32, 5)
    spade = SPADE(4, hidden=16, norm="instance")
    spade(x, seg)
    for conv in (spade.mlp_gamma, spade.mlp_beta):
        conv.set_weights([np.zeros_like(w) for w in conv.get_weights()])
    np.testing.assert_allclose(to_numpy(spade(x, seg)), numpy_instance_norm(x), atol=1e-5)


def test_spade_matches_numpy_formula(rng):
    x = rng.normal(size=(2, 4, 4, 3)).astype("float32")
    seg = one_hot_segmap(rng, 2, 16, 16, 6)
    spade = SPADE(3, hidden=8, kernel_size=3, norm="batch")
    spade(x, seg)
    for conv in (spade.mlp_shared, spade.mlp_gamma, spade.mlp_beta):
        conv.set_weights([rng.normal(0, 0.3, size=w.shape).astype("float32") for w in conv.get_weights()])
    y = to_numpy(spade(x, seg, training=True))
    small = seg[:, ::4, ::4]  # PyTorch nearest: x[::s]
    actv = np.maximum(to_numpy(spade.mlp_shared(small)), 0.0)
    gamma = to_numpy(spade.mlp_gamma(actv))
    beta = to_numpy(spade.mlp_beta(actv))
    normalized = (x - x.mean((0, 1, 2))) / np.sqrt(x.var((0, 1, 2)) + 1e-5)
    np.testing.assert_allclose(y, normalized * (1 + gamma) + beta, atol=1e-4)


def test_spade_uses_moving_statistics_in_inference(rng):
    x = rng.normal(size=(2, 4, 4, 3)).astype("float32")
    seg = one_hot_segmap(rng, 2, 4, 4, 2)
    spade = SPADE(3, hidden=4)
    assert isinstance(spade.param_free_norm, BatchNorm) and spade.param_free_norm.synchronized
    a = to_numpy(spade(x, seg, training=False))
    b = to_numpy(spade(x[:1], seg[:1], training=False))
    np.testing.assert_allclose(a[:1], b, atol=1e-6)  # no batch dependence


def test_spade_parameters_and_kernel_size_5(rng):
    spade = SPADE(10, hidden=128, kernel_size=5, norm="instance")
    spade.build((None, 8, 8, 10), (None, 32, 32, 7))
    assert isinstance(spade.param_free_norm, InstanceNorm)
    assert tuple(spade.mlp_shared.kernel.shape) == (5, 5, 7, 128)
    assert tuple(spade.mlp_gamma.kernel.shape) == (5, 5, 128, 10)
    expected = (25 * 7 * 128 + 128) + 2 * (25 * 128 * 10 + 10)
    assert sum(int(np.prod(w.shape)) for w in spade.trainable_weights) == expected
    assert not any(c.spectral_norm for c in (spade.mlp_shared, spade.mlp_gamma, spade.mlp_beta))


@pytest.mark.parametrize("kwargs, message", [
    (dict(channels=4, kernel_size=4), "kernel_size=4"),
    (dict(channels=0), "channels=0"),
    (dict(channels=4, norm="layer"), "norm='layer'|param_free_norm='layer'"),
])
def test_spade_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SPADE(**kwargs)


def test_spade_round_trip(tmp_path, rng):
    layer_config_round_trip(SPADE(4, hidden=8, kernel_size=5, norm="batch"))
    x_in = keras.Input((4, 4, 3))
    seg_in = keras.Input((8, 8, 5))
    model = keras.Model([x_in, seg_in], SPADE(3, hidden=8)(x_in, seg_in))
    x = rng.normal(size=(2, 4, 4, 3)).astype("float32")
    seg = one_hot_segmap(rng, 2, 8, 8, 5)
    model([x, seg], training=True)
    loaded = keras_round_trip(model, tmp_path)
    np.testing.assert_allclose(to_numpy(loaded([x, seg])), to_numpy(model([x, seg])), atol=1e-6)


@pytest.mark.parametrize("kwargs, non_trainable", [
    (dict(channels=4, hidden=8, norm="batch"), 2),
    (dict(channels=4, hidden=8, norm="syncbatch", kernel_size=5), 2),
    (dict(channels=4, hidden=8, norm="instance"), 0),
])
def test_layer_contract(tmp_path, kwargs, non_trainable):
    # The segmap is twice x's size: SPADE resizes it to x.
    run_layer_test(
        SPADE, kwargs, [(2, 8, 8, 4), (2, 16, 16, 5)], (2, 8, 8, 4), tmp_path,
        expected_num_trainable_weights=6, expected_num_non_trainable_weights=non_trainable,
    )


def segmap_with_edges(rng, batch, height, width, classes, edges):
    """One-hot label channels (an id ``classes`` gives a zero vector, as an id out of
    range does in make_segmap), then optionally a 0/1 edge channel."""
    ids = rng.integers(0, classes + 1, size=(batch, height, width))
    seg = np.eye(classes + 1, dtype=np.float32)[ids][..., :classes]
    if edges:
        seg = np.concatenate([seg, rng.integers(0, 2, (batch, height, width, 1)).astype(np.float32)], -1)
    return ids, seg


def test_label_index_encodes_class_invalid_and_edge(rng):
    ids, seg = segmap_with_edges(rng, 2, 6, 5, classes=7, edges=True)
    index = to_numpy(LabelIndex(7, instance_edges=True)(seg))
    assert index.dtype == np.int32
    # ids 0..6 are rows 0..6; a zero vector is row 7; edges add 8.
    np.testing.assert_array_equal(index, ids + 8 * seg[..., -1].astype(np.int32))
    assert (index == 7).any() and (index >= 8).any()
    ids, seg = segmap_with_edges(rng, 1, 4, 4, classes=3, edges=False)
    np.testing.assert_array_equal(to_numpy(LabelIndex(3)(seg)), ids)


@pytest.mark.parametrize("kernel_size, edges, size", [
    (3, True, (8, 6)), (3, False, (8, 6)), (5, True, (8, 6)),  # conv of the index's one-hot map
    (3, True, (64, 64)), (5, False, (64, 64)),  # LOOKUP_MIN_PIXELS: kernel-row lookups
])
def test_label_index_input_computes_the_one_hot_conv_and_its_gradient(rng, kernel_size, edges, size):
    """SPADE on the LabelIndex equals SPADE on the segmap it encodes (mlp_shared's conv
    of the one-hot map, as kernel-row lookups from LOOKUP_MIN_PIXELS up), and so do the
    kernel's gradients."""
    import tensorflow as tf

    from spade_tf.layers.spade import LOOKUP_MIN_PIXELS

    assert (size[0] * size[1] >= LOOKUP_MIN_PIXELS) == (size == (64, 64))
    classes = 7
    _, seg = segmap_with_edges(rng, 2, 2 * size[0], 2 * size[1], classes, edges)
    x = rng.normal(size=(2, *size, 4)).astype(np.float32)  # half the segmap's size: resized too
    spade = SPADE(4, hidden=5, kernel_size=kernel_size, norm="instance", classes=classes, instance_edges=edges)
    spade(x, seg)
    for conv in (spade.mlp_shared, spade.mlp_gamma, spade.mlp_beta):
        conv.set_weights([rng.normal(0, 0.3, size=w.shape).astype("float32") for w in conv.get_weights()])
    index = LabelIndex(classes, instance_edges=edges)(seg)
    outputs, grads = [], []
    for labels in (seg, index):
        with tf.GradientTape() as tape:
            y = spade(x, labels)
            loss = tf.reduce_sum(y * np.linspace(-1, 1, y.shape[-1], dtype=np.float32))
        outputs.append(to_numpy(y))
        grads.append(tf.convert_to_tensor(tape.gradient(loss, spade.mlp_shared.kernel)).numpy())
    np.testing.assert_allclose(outputs[1], outputs[0], atol=1e-5)
    np.testing.assert_allclose(grads[1], grads[0], rtol=1e-5, atol=1e-4)
    assert np.abs(grads[0]).max() > 0.1  # the gradient is there to compare
    # Every kernel row of a class present in the map is read: none of them is left at zero gradient.
    assert (np.abs(grads[0][:, :, :classes]).sum(axis=(0, 1, 3)) > 0).all()


def test_label_index_without_classes_is_refused(rng):
    spade = SPADE(4, hidden=5)
    with pytest.raises(ValueError, match="label index input needs classes"):
        spade(np.zeros((1, 4, 4, 4), np.float32), np.zeros((1, 4, 4), np.int32))


def test_layer_contract_with_a_label_index(tmp_path):
    run_layer_test(
        SPADE, dict(channels=4, hidden=8, norm="batch", classes=3, instance_edges=True),
        [(2, 8, 8, 4), (2, 16, 16)], (2, 8, 8, 4), tmp_path, input_dtypes=["float32", "int32"],
        expected_num_trainable_weights=6, expected_num_non_trainable_weights=2,
    )
