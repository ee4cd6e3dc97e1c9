import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from spade_tf import get_preset
from spade_tf.training import ConfigMismatchError, TrainingDivergedError, TrainOptions, train

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = dict(ngf=4, ndf=4, crop_size=32, load_size=32, spade_hidden=8, batch_size=2, num_D=1, n_layers_D=2)


def options(workdir, **kw):
    return TrainOptions(workdir=str(workdir), checkpoint_every=2, log_every=1, sample_every=2,
                        num_synthetic=8, verbose=False, **kw)


def checkpoints(workdir):
    state = tf.train.get_checkpoint_state(os.path.join(workdir, "checkpoints"))
    return [os.path.basename(p) for p in state.all_model_checkpoint_paths] if state else []


def generator_kernels(path):
    reader = tf.train.load_checkpoint(str(path))
    # The object graph's canonical path of G's weights goes through the
    # optimizer that tracks them; restoring matches by graph either way.
    names = [n for n in reader.get_variable_to_shape_map() if n.startswith("g_optimizer/_trainable_variables/")]
    return {n: reader.get_tensor(n) for n in names}


def first_run(workdir, norm):
    """Three steps: checkpoints at 2 and 3, samples at 2 and 3."""
    cfg = get_preset("synthetic", **TINY, **norm)
    summary = train(cfg, options(workdir, max_steps=3))
    return cfg, workdir, summary


@pytest.fixture(scope="module")
def spade_run(tmp_path_factory):
    """SPADE's first run, shared: tests that go on from it train a copy."""
    return first_run(tmp_path_factory.mktemp("spade") / "run", {})


def copy_of(run, tmp_path):
    target = tmp_path / "run"
    shutil.copytree(run, target)
    return target


# CLADE without ICPE is not a case of its own: CLADE-ICPE runs the same class
# tables and adds the positional maps (34 s of CI saved).
@pytest.mark.parametrize("norm", [
    dict(), dict(norm_mode="clade", use_positional_encoding=True), dict(norm_mode="sean", style_dim=8),
], ids=["spade", "clade_icpe", "sean"])
def test_train_writes_checkpoints_logs_samples_and_resumes(tmp_path, capsys, request, norm):
    cfg, first, summary = request.getfixturevalue("spade_run") if not norm else first_run(tmp_path / "first", norm)
    assert summary["step"] == 3 and not summary["resumed"]
    assert checkpoints(first) == ["ckpt-2", "ckpt-3"]
    assert json.load(open(first / "config.json"))["ngf"] == 4
    assert sorted(os.listdir(first / "samples")) == ["step_00000002.png", "step_00000003.png"]
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(first / "logs"))
    assert all(np.isfinite(v) for v in summary["logs"].values())
    step3 = generator_kernels(first / "checkpoints" / "ckpt-3")

    workdir = copy_of(first, tmp_path)
    capsys.readouterr()
    summary = train(cfg, TrainOptions(**{**options(workdir, max_steps=5).__dict__, "verbose": True}))
    assert summary["resumed"] and summary["step"] == 5
    assert "resumed from step 3" in capsys.readouterr().out
    step5 = generator_kernels(workdir / "checkpoints" / "ckpt-5")
    assert step3.keys() == step5.keys() and len(step3) > 10
    moved = sum(not np.array_equal(step3[k], step5[k]) for k in step3)
    assert moved > 0.9 * len(step3)  # training went on (biases before batch norm get ~0 gradient)


def test_resume_with_another_config_is_refused(spade_run, tmp_path):
    workdir = copy_of(spade_run[1], tmp_path)
    with pytest.raises(ConfigMismatchError, match=r"(?s)refusing to resume.*ngf: 4 in .*config.json, 8 now"):
        train(get_preset("synthetic", **{**TINY, "ngf": 8}), options(workdir, max_steps=4))
    assert checkpoints(workdir) == ["ckpt-2", "ckpt-3"]


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(spade_run, tmp_path):
    cfg, first, _ = spade_run
    workdir = copy_of(first, tmp_path)
    # Resume with the same config file but a diverging loss weight.
    bad = cfg.replace(lambda_feat=1e39)  # a valid (finite) config value that overflows float32 to inf
    os.remove(workdir / "config.json")
    with pytest.raises(TrainingDivergedError, match=r"G_GAN_Feat=inf.* at step 4: .*last good checkpoint is ckpt-3"):
        train(bad, options(workdir, max_steps=6))
    assert checkpoints(workdir) == ["ckpt-2", "ckpt-3"]


def test_bad_options_are_named():
    with pytest.raises(ValueError, match="mixed_precision='fp8'"):
        TrainOptions(mixed_precision="fp8")
    with pytest.raises(ValueError, match="checkpoint_every=0"):
        TrainOptions(checkpoint_every=0)


def run_train(workdir, max_steps, **popen):
    cmd = [sys.executable, os.path.join(ROOT, "train.py"), f"--workdir={workdir}", f"--max_steps={max_steps}",
           "--checkpoint_every=1", "--sample_every=1000", "--log_every=1", "--num_synthetic=8"]
    cmd += [f"--{k}={v}" for k, v in TINY.items() if k in ("ngf", "ndf", "crop_size", "load_size", "batch_size")]
    cmd += ["--set=spade_hidden=8", "--set=num_D=1", "--set=n_layers_D=2"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": ROOT}
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_reaches_max_steps(tmp_path):
    workdir = tmp_path / "run"
    proc = run_train(workdir, 200)
    deadline = time.time() + 300
    while len(checkpoints(workdir)) < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    time.sleep(0.7)  # land anywhere: in a step, or in a save
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    saved = checkpoints(workdir)
    assert len(saved) >= 2, proc.stdout.read()[-3000:]
    last = int(saved[-1].split("-")[1])
    # Every checkpoint the index names restores.
    for name in saved:
        reader = tf.train.load_checkpoint(str(workdir / "checkpoints" / name))
        assert reader.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE") == int(name.split("-")[1])
    target = last + 3
    proc = run_train(workdir, target)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    assert f"resumed from step {last}" in out
    assert f"done: step {target}" in out


@pytest.mark.slow
@pytest.mark.parametrize("precision, jit, norm_mode", [
    ("mixed_float16", False, "spade"), ("mixed_bfloat16", False, "spade"), ("none", True, "spade"),
    ("mixed_float16", False, "clade"),
])
def test_mixed_precision_and_xla_steps_are_finite(tmp_path, precision, jit, norm_mode):
    import keras

    cfg = get_preset("synthetic", **TINY, norm_mode=norm_mode)
    summary = train(cfg, options(tmp_path, max_steps=2, mixed_precision=precision, jit_compile=jit))
    assert summary["step"] == 2
    assert all(np.isfinite(v) for v in summary["logs"].values()), summary["logs"]
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored
