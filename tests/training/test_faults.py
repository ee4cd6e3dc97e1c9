"""Faults that must not lose work: lost index, corrupt checkpoints, signals, full disk, two runs, read-only dirs.

Most tests copy one small trained workdir (steps 2 and 4 saved) and damage it.
"""

import contextlib
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
from spade_tf import workdir as wd
from spade_tf.data import DataError
from spade_tf.export import load_synthesizer
from spade_tf.training import TrainOptions, WorkdirLockedError, train
from tests.helpers import write_pair

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = dict(ngf=4, ndf=4, crop_size=32, load_size=32, spade_hidden=8, batch_size=2, num_D=1, n_layers_D=2)
CLI_TINY = ["--ngf=4", "--ndf=4", "--crop_size=32", "--load_size=32", "--batch_size=2",
            "--set=spade_hidden=8", "--set=num_D=1", "--set=n_layers_D=2", "--num_synthetic=8"]
CONFIG = get_preset("synthetic", **TINY)


def options(workdir, **kw):
    return TrainOptions(**{**dict(workdir=str(workdir), checkpoint_every=2, log_every=1, sample_every=100,
                                  num_synthetic=8, verbose=False), **kw})


def saved_steps(workdir):
    return [s for s, _ in wd.list_checkpoints(os.path.join(workdir, "checkpoints"))]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A workdir with ckpt-2 and ckpt-4."""
    workdir = tmp_path_factory.mktemp("trained") / "run"
    train(CONFIG, options(workdir, max_steps=4))
    assert saved_steps(workdir) == [2, 4]
    return workdir


@pytest.fixture
def copy(trained, tmp_path):
    target = tmp_path / "run"
    shutil.copytree(trained, target)
    return target


@pytest.mark.parametrize("index", ["deleted", "garbage"])
def test_lost_index_resumes_from_the_newest_file(copy, capsys, index):
    index_file = copy / "checkpoints" / "checkpoint"
    if index == "deleted":
        index_file.unlink()
    else:
        index_file.write_text("model_checkpoint_path: {{{")
    (copy / "checkpoints" / "ckpt-5_temp").mkdir()  # left by a kill during a save
    summary = train(CONFIG, options(copy, max_steps=5, verbose=True))
    assert "resumed from step 4" in capsys.readouterr().out
    assert summary["step"] == 5
    # Nothing was overwritten from step 0; the old files stay managed (keep 3).
    assert saved_steps(copy) == [2, 4, 5]
    assert not (copy / "checkpoints" / "ckpt-5_temp").exists()
    assert tf.train.latest_checkpoint(str(copy / "checkpoints")).endswith("ckpt-5")


def _truncate(prefix):
    with open(f"{prefix}.data-00000-of-00001", "r+b") as f:
        f.truncate(64)


def test_unreadable_newest_checkpoint_falls_back_with_a_warning(copy, capsys):
    _truncate(copy / "checkpoints" / "ckpt-4")
    summary = train(CONFIG, options(copy, max_steps=5, verbose=True))
    out = capsys.readouterr().out
    assert "ckpt-4 is unreadable (" in out and "resumed from step 2" in out
    assert summary["step"] == 5 and saved_steps(copy) == [2, 4, 5]  # ckpt-4 saved again, by this run
    assert (copy / "checkpoints" / "unreadable" / "ckpt-4.index").exists()


def test_unreadable_checkpoint_for_inference_names_the_file_and_the_flag(copy):
    _truncate(copy / "checkpoints" / "ckpt-4")
    with pytest.raises(wd.CheckpointError, match=r"ckpt-4 is unreadable \(.*\); pick another with "
                                                  r"--checkpoint=<step> \(present: 2\)"):
        load_synthesizer(str(copy))
    # The one it names works, also through synthesize's --checkpoint.
    assert load_synthesizer(str(copy), checkpoint=2).step == 2
    from PIL import Image

    from spade_tf.synthesize import synthesize

    (copy / "labels").mkdir()
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(copy / "labels" / "a.png")
    with pytest.raises(wd.CheckpointError, match="ckpt-4 is unreadable"):
        synthesize(str(copy), str(copy / "labels"), str(copy / "out"), log=lambda *a: None)
    written = synthesize(str(copy), str(copy / "labels"), str(copy / "out"), checkpoint=2, log=lambda *a: None)
    assert [os.path.basename(p) for p in written] == ["a.png"]
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "export.py"), f"--workdir={copy}", f"--export_dir={copy}/export",
         "--tflite=none"], capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        timeout=300,
    )
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(f"error: Checkpoint {copy}/checkpoints/ckpt-4 is unreadable")


def test_a_second_run_on_a_held_workdir_is_refused(copy):
    config_before = (copy / "config.json").read_text()
    with wd.RunLock(str(copy)):
        with pytest.raises(WorkdirLockedError, match=rf"pid {os.getpid()}"):
            train(CONFIG, options(copy, max_steps=6))
    assert saved_steps(copy) == [2, 4] and (copy / "config.json").read_text() == config_before


def test_config_is_not_written_when_the_data_fails(tmp_path):
    data = tmp_path / "data"
    rng = np.random.default_rng(0)
    for i in range(2):
        write_pair(data, f"p{i}", rng.integers(0, 3, (32, 32)))
    write_pair(data, "bad", np.full((32, 32), 200))  # out of range for label_nc=3
    cfg = get_preset("custom", label_nc=3, **TINY)
    workdir = tmp_path / "run"
    with pytest.raises(DataError, match="bad.png"):
        train(cfg, options(workdir, max_steps=1, dataset_dir=str(data)))
    assert not (workdir / "config.json").exists() and not (workdir / "data.json").exists()
    assert not (workdir / wd.LOCK_FILE).exists()
    # Another config is then free to use the workdir.
    train(cfg.replace(label_nc=201), options(workdir, max_steps=1, dataset_dir=str(data)))
    assert wd.read_config(str(workdir)).label_nc == 201


@contextlib.contextmanager
def tmpfs(path, size, readonly=False):
    """A small filesystem of its own (tests run as root; root ignores chmod, not a full or ro mount)."""
    os.makedirs(path, exist_ok=True)
    opts = f"size={size}" + (",ro" if readonly else "")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True, text=True)
    if result.returncode:
        pytest.skip(f"cannot mount a tmpfs here ({result.stderr.strip()}): needs root with mount rights")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def _used_bytes(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


def test_full_disk_keeps_the_last_good_checkpoint(copy, tmp_path):
    ckpt_bytes = sum(os.path.getsize(copy / "checkpoints" / n) for n in os.listdir(copy / "checkpoints")
                     if n.startswith("ckpt-4."))
    # Room for the workdir and the logs of a few steps, not for another checkpoint.
    size = _used_bytes(copy) + ckpt_bytes // 2
    size = -(-size // 4096) * 4096
    with tmpfs(tmp_path / "disk", size) as disk:
        shutil.copytree(copy, disk / "run")
        with pytest.raises(wd.CheckpointError, match=r"Could not save checkpoint .*ckpt-6: no space left on device.*"
                                                     r"The last good checkpoint is .*ckpt-4"):
            train(CONFIG, options(disk / "run", max_steps=6))
        names = os.listdir(disk / "run" / "checkpoints")
        assert not [n for n in names if n.startswith("ckpt-6")]  # no partial files, no ckpt-6_temp
        assert tf.train.latest_checkpoint(str(disk / "run" / "checkpoints")).endswith("ckpt-4")
        assert saved_steps(disk / "run") == [2, 4]
        assert not (disk / "run" / wd.LOCK_FILE).exists()


def run_cli(workdir, *flags):
    cmd = [sys.executable, os.path.join(ROOT, "train.py"), f"--workdir={workdir}", *CLI_TINY, *flags]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": ROOT}
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_read_only_workdir_is_one_line_naming_the_path(tmp_path):
    with tmpfs(tmp_path / "ro", "1m", readonly=True) as ro:
        proc = run_cli(ro / "run", "--max_steps=1")
        out, err = proc.communicate(timeout=300)
    assert proc.returncode == 1 and "Traceback" not in err, err[-2000:]
    assert err.strip().splitlines()[-1] == f"error: cannot write {ro}/run: Read-only file system"


@pytest.mark.slow
# Resuming from the checkpoint a signal saved is one code path whichever signal it
# was: the SIGTERM case resumes (a train step's trace that the SIGINT case skips).
@pytest.mark.parametrize("signum, code, resume", [(signal.SIGTERM, 143, True), (signal.SIGINT, 130, False)])
def test_signal_saves_the_current_step_and_exits_cleanly(tmp_path, signum, code, resume):
    workdir = tmp_path / "run"
    proc = run_cli(workdir, "--max_steps=500", "--checkpoint_every=1000", "--sample_every=1", "--log_every=1000")
    deadline = time.time() + 300
    while not (workdir / "samples" / "step_00000003.png").exists() and time.time() < deadline:
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        time.sleep(0.1)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=300)
    name = signal.Signals(signum).name
    assert proc.returncode == code and "Traceback" not in err, err[-3000:]
    line = err.strip().splitlines()[-1]
    step = int(line.split(" at step ")[1].split(":")[0])
    assert step >= 3 and line == (f"stopped by {name} at step {step}: saved {workdir}/checkpoints/ckpt-{step}; "
                                  "run the same command to resume.")
    assert saved_steps(workdir) == [step]  # no periodic checkpoint was due: the signal saved it
    if resume:
        summary = train(CONFIG, options(workdir, max_steps=step + 1, checkpoint_every=1000))
        assert summary["resumed"] and summary["step"] == step + 1


def test_import_crash_before_the_config_still_resumes_the_import(tmp_path, monkeypatch, capsys):
    """The importer writes the checkpoint first: a crash before config.json must not drop the import."""
    from spade_tf.models import build_generator

    generator = build_generator(CONFIG)
    marker = generator.get_layer("conv_img").variables[0]
    marker.assign(tf.fill(marker.shape, 0.25))
    workdir = tmp_path / "run"

    def crash(*args):
        raise OSError("killed")

    monkeypatch.setattr(wd, "write_config", crash)
    with pytest.raises(OSError, match="killed"):
        wd.write_initial_checkpoint(CONFIG, str(workdir), generator)
    monkeypatch.undo()
    assert saved_steps(workdir) == [0] and not (workdir / "config.json").exists()
    train(CONFIG, options(workdir, max_steps=1, verbose=True))
    assert "resumed from step 0" in capsys.readouterr().out
    restored = wd.load_generator(str(workdir), checkpoint=0)
    np.testing.assert_array_equal(restored.generator.get_layer("conv_img").variables[0].numpy(), marker.numpy())
