import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from helpers import keras_round_trip, layer_config_round_trip, run_layer_test, to_numpy

from spade_tf.layers import BatchNorm, InstanceNorm, param_free_norm


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


def _large_mean_input(rng, shape):
    """Per-channel means of +-1e3 with std 1: mean / std = 1000, where float32
    E[x^2] - E[x]^2 loses every digit of the variance."""
    means = 1000.0 * np.array([1.0, -2.0, 0.5, 3.0])[: shape[-1]]
    return (means + rng.normal(size=shape)).astype("float32")


def _two_pass_float64(x, momentum=0.1):
    """NumPy float64 reference: outputs and the PyTorch-style moving statistics."""
    x = x.astype("float64")
    mean = x.mean(axis=(0, 1, 2))
    var = ((x - mean) ** 2).mean(axis=(0, 1, 2))
    n = x.size // x.shape[-1]
    outputs = (x - mean) / np.sqrt(var + 1e-5)
    moving_mean = momentum * mean
    moving_var = (1 - momentum) * 1.0 + momentum * var * n / (n - 1)
    return outputs, moving_mean, moving_var


@pytest.mark.parametrize("synchronized", [True, False])
def test_batch_norm_training_is_accurate_at_large_mean_over_std(rng, synchronized):
    # SPADE's default "syncbatch" once went through the one-pass cross-replica
    # formula even on one device: outputs off by ~1e3 here, 5e-2 at mean/std 100.
    x = _large_mean_input(rng, (2, 8, 8, 4))
    layer = BatchNorm(synchronized=synchronized)
    y = to_numpy(layer(x, training=True))
    expected, moving_mean, moving_var = _two_pass_float64(x)
    # float32 inputs near 3e3 are spaced 2.4e-4 apart: 1e-2 leaves room for
    # rounding, not for cancellation.
    np.testing.assert_allclose(y, expected, atol=1e-2)
    np.testing.assert_allclose(to_numpy(layer.moving_mean), moving_mean, rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(to_numpy(layer.moving_variance), moving_var, atol=1e-4)


MIRRORED_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np, tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from spade_tf.layers import BatchNorm

    x = np.load(sys.argv[1])
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        layer = BatchNorm(synchronized=True)
        layer.build(x.shape)
    half = len(x) // 2
    # Replica i gets its own half of the global batch.
    inputs = strategy.experimental_distribute_values_from_function(
        lambda ctx: tf.constant(x[ctx.replica_id_in_sync_group * half:][:half]))
    outputs = strategy.run(tf.function(lambda b: layer(b, training=True)), args=(inputs,))
    outputs = np.concatenate([o.numpy() for o in strategy.experimental_local_results(outputs)])
    np.save(sys.argv[2], outputs)
    print(json.dumps({
        name: [v.numpy().tolist() for v in strategy.experimental_local_results(
            getattr(layer, name).value)]
        for name in ("moving_mean", "moving_variance")
    }))
""")


def _run_script(script, backend, *args):
    """Runs ``script`` with ``args`` in a fresh process on a Keras backend, CPU only; its stdout."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = {**os.environ, "PYTHONPATH": root, "KERAS_BACKEND": backend, "CUDA_VISIBLE_DEVICES": "",
           "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, "-c", script, *map(str, args)], env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return result.stdout


def test_synchronized_batch_norm_under_mirrored_strategy_uses_global_batch(tmp_path, rng):
    x = _large_mean_input(rng, (4, 8, 8, 4))
    # The two replicas' halves differ (means 0.5 apart), so per-replica
    # statistics would be far off the global batch's.
    x[2:] += 0.5
    np.save(tmp_path / "x.npy", x)
    stdout = _run_script(MIRRORED_SCRIPT, "tensorflow", tmp_path / "x.npy", tmp_path / "y.npy")
    stats = json.loads(stdout.strip().splitlines()[-1])
    expected, moving_mean, moving_var = _two_pass_float64(x)
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), expected, atol=1e-2)
    for replica in range(2):  # each mirrored copy holds the global batch's update
        np.testing.assert_allclose(stats["moving_mean"][replica], moving_mean, rtol=1e-6, atol=1e-4)
        np.testing.assert_allclose(stats["moving_variance"][replica], moving_var, atol=1e-4)


TORCH_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np, keras
    from spade_tf.layers import BatchNorm, InstanceNorm

    x = np.load(sys.argv[1])
    batch = keras.ops.convert_to_numpy(BatchNorm()(x, training=True))
    instance = keras.ops.convert_to_numpy(InstanceNorm()(x))
    np.savez(sys.argv[2], batch=batch, instance=instance, backend=keras.backend.backend())
""")


def test_norms_are_accurate_at_large_mean_over_std_on_torch(tmp_path, rng):
    # Keras' torch ops.moments is E[x^2] - E[x]^2: batch norm was off by 2.7
    # here and instance norm NaN (a negative variance).
    x = _large_mean_input(rng, (2, 8, 8, 4))
    np.save(tmp_path / "x.npy", x)
    _run_script(TORCH_SCRIPT, "torch", tmp_path / "x.npy", tmp_path / "y.npz")
    outputs = np.load(tmp_path / "y.npz")
    assert str(outputs["backend"]) == "torch"
    np.testing.assert_allclose(outputs["batch"], _two_pass_float64(x)[0], atol=1e-2)
    x64 = x.astype("float64")
    mean = x64.mean(axis=(1, 2), keepdims=True)
    var = ((x64 - mean) ** 2).mean(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(outputs["instance"], (x64 - mean) / np.sqrt(var + 1e-5), atol=1e-2)


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


@pytest.mark.parametrize("layer_cls, kwargs, non_trainable", [
    (BatchNorm, dict(momentum=0.2, epsilon=1e-3), 2),
    (BatchNorm, dict(synchronized=True), 2),
    (InstanceNorm, dict(epsilon=1e-4), 0),
])
def test_layer_contract(tmp_path, layer_cls, kwargs, non_trainable):
    run_layer_test(
        layer_cls, kwargs, [(2, 8, 8, 3)], (2, 8, 8, 3), tmp_path,
        expected_num_trainable_weights=0, expected_num_non_trainable_weights=non_trainable,
    )


# The norms' gradient in training is written out (a custom gradient, which each
# backend implements its own way): checked on every backend against central
# differences of the float64 NumPy formula.
GRADIENT_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np, keras
    from spade_tf.layers import BatchNorm, InstanceNorm

    def input_gradient(layer, x, r):
        backend = keras.backend.backend()
        layer.build(x.shape)
        if backend == "tensorflow":
            import tensorflow as tf
            x = tf.constant(x)
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = tf.reduce_sum(layer(x, training=True) * r)
            return tape.gradient(loss, x).numpy()
        if backend == "jax":
            import jax, jax.numpy as jnp
            state = [v.value for v in layer.non_trainable_variables]
            def loss(x):
                return jnp.sum(layer.stateless_call([], state, x, training=True)[0] * r)
            return np.asarray(jax.grad(loss)(jnp.asarray(x)))
        import torch
        x = torch.tensor(x, requires_grad=True)
        (layer(x, training=True) * torch.tensor(r)).sum().backward()
        return x.grad.numpy()

    x, r = np.load(sys.argv[1]), np.load(sys.argv[2])
    np.savez(sys.argv[3], backend=keras.backend.backend(),
             batch=input_gradient(BatchNorm(), x, r), instance=input_gradient(InstanceNorm(), x, r))
""")


def _finite_difference_gradient(x, r, axes):
    """d/dx sum(normalize(x) * r), central differences of the float64 formula."""
    def loss(x):
        mean = x.mean(axis=axes, keepdims=True)
        var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
        return np.sum((x - mean) / np.sqrt(var + 1e-5) * r)

    x = x.astype("float64")
    grad = np.zeros_like(x)
    step = 1e-5
    for i in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[i] += step
        down[i] -= step
        grad[i] = (loss(up) - loss(down)) / (2 * step)
    return grad


@pytest.mark.parametrize("backend", ["tensorflow", "jax", "torch"])
def test_norm_gradients_in_training_match_finite_differences(tmp_path, rng, backend):
    x = rng.normal(2.0, 3.0, size=(2, 5, 4, 3)).astype("float32")
    r = rng.normal(size=x.shape).astype("float32")  # a loss whose gradient is not ~0 (sum(y^2) is constant)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "r.npy", r)
    _run_script(GRADIENT_SCRIPT, backend, *(tmp_path / n for n in ("x.npy", "r.npy", "g.npz")))
    grads = np.load(tmp_path / "g.npz")
    assert str(grads["backend"]) == backend
    for name, axes in (("batch", (0, 1, 2)), ("instance", (1, 2))):
        expected = _finite_difference_gradient(x, r, axes)
        assert np.abs(expected).max() > 0.1  # a gradient there to compare
        np.testing.assert_allclose(grads[name], expected, atol=2e-4, err_msg=name)
