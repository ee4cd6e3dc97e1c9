"""MirroredStrategy on two logical CPUs equals one device on the same global batch."""

import os
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SCRIPT = textwrap.dedent("""
    import sys

    import numpy as np, tensorflow as tf, keras
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from spade_tf import get_preset
    from spade_tf.layers import set_noise
    from spade_tf.training import SPADEGAN

    norm_mode = sys.argv[1]
    cfg = get_preset("coco", ngf=4, ndf=4, crop_size=32, load_size=32, spade_hidden=8, num_D=1, n_layers_D=2,
                     use_vgg_loss=False, batch_size=4, param_free_norm_G="syncbatch", norm_mode=norm_mode,
                     style_dim=8)
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 8, size=(4, 8, 8)).repeat(4, 1).repeat(4, 2)
    seg = np.eye(cfg.semantic_nc, dtype=np.float32)[ids]
    img = rng.uniform(-1, 1, size=(4, 32, 32, 3)).astype(np.float32)

    def run(strategy):
        keras.utils.set_random_seed(7)
        with strategy.scope():
            model = SPADEGAN(cfg)
            # SEAN's ACE noise: each replica draws its own half of the batch's noise.
            set_noise(model.generator, False)
            model.compile(steps_per_epoch=10)
            model.build_optimizers()
        before = [v.numpy() for v in model.g_variables + model.d_variables
                  if "kernel" in v.path or "class_weight" in v.path]
        ds = tf.data.Dataset.from_tensor_slices({"segmap": seg, "image": img}).batch(4)
        if strategy.num_replicas_in_sync > 1:
            ds = strategy.experimental_distribute_dataset(ds)
        batch = next(iter(ds))

        @tf.function(autograph=False)  # as the trainer's step
        def step(b):
            out = strategy.run(model.train_step, args=(b,))
            return {k: strategy.reduce("MEAN", v, axis=None) for k, v in out.items()}

        logs = {k: float(v) for k, v in step(batch).items()}
        # Kernels only: biases that feed a batch norm have a zero true
        # gradient, and Adam's first step (lr * g / |g|) turns the float noise
        # of either run into a full step of either sign.
        # CLADE's class tables too (their gradients are IndexedSlices of a gather).
        weights = [v.numpy() for v in model.g_variables + model.d_variables
                   if "kernel" in v.path or "class_weight" in v.path]
        stats = [v.numpy() for v in model.generator.non_trainable_variables if "moving" in v.path]
        return logs, weights, stats, before

    one = run(tf.distribute.OneDeviceStrategy("/cpu:0"))
    two = run(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
    for k in one[0]:
        np.testing.assert_allclose(one[0][k], two[0][k], rtol=2e-4, atol=1e-5, err_msg=k)
    saturated_total = 0
    for a, b, start, start_two in zip(one[1], two[1], one[3], two[3]):
        np.testing.assert_array_equal(start, start_two)  # the same initial weights
        # Adam's first step is lr * g / (|g| + eps): a full step (lr) wherever |g| >> 1e-8, and
        # there the runs must agree; where a gradient is near eps (the official init's tiny
        # weights make many such) the step is partial and the reduction order's float noise
        # shows, which is allowed.
        step = np.abs(a - start)
        saturated = step > 0.9 * step.max()
        saturated_total += saturated.sum()
        off = ~np.isclose(a, b, rtol=1e-3, atol=2e-6)
        assert not np.any(off & saturated), (a.shape, np.mean(off & saturated))
    assert saturated_total > 1000
    for a, b in zip(one[2], two[2]):
        # Moving statistics of the D step's G pass see the noisy biases above
        # (amplified through later layers); without synchronized batch norm they would differ by
        # the gap between 2- and 4-sample statistics, orders larger.
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=2e-4)
    print("MATCH", len(one[1]), "variables", one[0])
""")


@pytest.mark.slow  # a minute or more each: the train step traced for one device and for two replicas
@pytest.mark.parametrize("norm_mode", ["spade", "clade", "sean"])
def test_mirrored_two_replicas_match_one_device(norm_mode):
    env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run([sys.executable, "-c", SCRIPT, norm_mode], env=env, capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0 and "MATCH" in result.stdout, (result.stdout + result.stderr)[-4000:]
