"""FusedAdam: Adam's numbers (NumPy's, and Keras' for dense gradients) with one op per variable."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from spade_tf.training import make_optimizers
from spade_tf.training.optimizers import FusedAdam

SHAPES = [(3, 3, 4, 8), (8,), (10, 5)]  # the last takes a sparse (gather) gradient


def _gradients(step):
    rng = np.random.default_rng(step)
    dense = [tf.constant(rng.normal(size=s).astype("float32")) for s in SHAPES[:2]]
    # Rows 1 and 3, row 3 twice: IndexedSlices with a duplicate index, as a gather's gradient.
    sparse = tf.IndexedSlices(tf.constant(rng.normal(size=(3, 5)).astype("float32")),
                              tf.constant([1, 3, 3]), tf.constant([10, 5]))
    return dense + [sparse]


def _train(optimizer_class, steps, **kwargs):
    rng = np.random.default_rng(42)
    variables = [keras.Variable(rng.normal(size=s).astype("float32"), name=f"w{i}") for i, s in enumerate(SHAPES)]
    schedule = keras.optimizers.schedules.ExponentialDecay(2e-2, 1, 0.9)
    optimizer = optimizer_class(learning_rate=schedule, epsilon=1e-8, name="g_optimizer", **kwargs)
    apply = tf.function(lambda grads: optimizer.apply(grads, variables))
    for step in range(steps):
        apply(_gradients(step))
    return optimizer, variables


def _numpy_adam(steps, beta_1, beta_2):
    """Kingma & Ba, epsilon outside the square root as PyTorch and Keras place it; sparse gradients summed."""
    rng = np.random.default_rng(42)
    params = [rng.normal(size=s) for s in SHAPES]
    m = [np.zeros(s) for s in SHAPES]
    v = [np.zeros(s) for s in SHAPES]
    for step in range(steps):
        grads = [g.numpy().astype(np.float64) for g in _gradients(step)[:2]]
        sparse = _gradients(step)[2]
        dense = np.zeros(SHAPES[2])
        np.add.at(dense, sparse.indices.numpy(), sparse.values.numpy())
        grads.append(dense)
        t = step + 1
        lr = 2e-2 * 0.9**step
        alpha = lr * np.sqrt(1 - beta_2**t) / (1 - beta_1**t)
        for i, g in enumerate(grads):
            m[i] += (g - m[i]) * (1 - beta_1)
            v[i] += (g * g - v[i]) * (1 - beta_2)
            params[i] -= m[i] * alpha / (np.sqrt(v[i]) + 1e-8)
    return params, m, v


@pytest.mark.parametrize("betas", [(0.0, 0.9), (0.5, 0.999)])  # SPADE's TTUR betas and its no_TTUR ones
def test_fused_adam_equals_keras_adam_and_numpy(betas):
    beta_1, beta_2 = betas
    fused, fused_vars = _train(FusedAdam, 4, beta_1=beta_1, beta_2=beta_2)
    plain, plain_vars = _train(keras.optimizers.Adam, 4, beta_1=beta_1, beta_2=beta_2)
    params, m, v = _numpy_adam(4, beta_1, beta_2)
    assert [s.path for s in fused.variables] == [s.path for s in plain.variables]  # same slot names
    for a, ref in zip(fused_vars, params):
        np.testing.assert_allclose(a.numpy(), ref, rtol=1e-5, atol=1e-6)
    for a, b in zip(fused_vars[:2], plain_vars[:2]):  # dense gradients: Keras' numbers
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
    for i in range(len(SHAPES)):
        np.testing.assert_allclose(fused._momentums[i].numpy(), m[i], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(fused._velocities[i].numpy(), v[i], rtol=1e-5, atol=1e-6)
    assert int(fused.iterations.numpy()) == 4


def test_dense_updates_are_one_fused_op_each():
    optimizer, variables = _train(FusedAdam, 0, beta_1=0.0, beta_2=0.9)
    optimizer.build(variables)
    graph = tf.function(lambda grads: optimizer.apply(grads, variables)).get_concrete_function(
        _gradients(0)).graph
    fused = [op for op in graph.get_operations() if op.type == "ResourceApplyAdam"]
    assert len(fused) == 3  # the sparse gradient too, summed into a dense one


def test_make_optimizers_builds_fused_adam_with_the_official_betas():
    from spade_tf import get_preset

    cfg = get_preset("coco")
    g_opt, d_opt = make_optimizers(cfg, steps_per_epoch=10)
    for opt, lr in zip((g_opt, d_opt), cfg.learning_rates):
        assert isinstance(opt, FusedAdam)
        assert (opt.beta_1, opt.beta_2) == cfg.adam_betas
        assert float(opt.learning_rate) == pytest.approx(lr)
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(g_opt))
    assert isinstance(restored, FusedAdam) and restored.beta_2 == g_opt.beta_2
