"""export.py and python -m spade_tf.synthesize as a user runs them."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from helpers import add_contrast, warm_up_statistics
from PIL import Image

from spade_tf.config import get_preset
from spade_tf.export import load_synthesizer
from spade_tf.models import build_generator

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A workdir as train() leaves it: config.json, data.json, checkpoints/ckpt-5."""
    config = get_preset("synthetic", crop_size=32, load_size=32, ngf=4)
    generator = build_generator(config)
    warm_up_statistics(generator, config, steps=3)
    add_contrast(generator, config)
    wd = tmp_path_factory.mktemp("wd")
    config.to_json(str(wd / "config.json"))
    (wd / "data.json").write_text(json.dumps({"dataset_dir": None, "dataset_mode": "auto"}))
    ckpt = tf.train.Checkpoint(generator=generator, step=tf.Variable(5, dtype=tf.int64))
    tf.train.CheckpointManager(ckpt, str(wd / "checkpoints"), 3, checkpoint_name="ckpt").save(checkpoint_number=5)
    return str(wd)


def test_export_cli_writes_the_layout(workdir, tmp_path):
    out = str(tmp_path / "exp")
    result = run("export.py", f"--workdir={workdir}", f"--export_dir={out}", "--tflite=float32,int8",
                 "--calibration_images=4")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "int8 calibration: 4 synthetic scenes" in result.stdout
    assert os.path.isfile(os.path.join(out, "serving", "1", "saved_model.pb"))
    assert os.path.isfile(os.path.join(out, "generator.keras"))
    assert sorted(os.listdir(os.path.join(out, "tflite"))) == ["generator_float32.tflite", "generator_int8.tflite"]
    card = json.load(open(os.path.join(out, "model_card.json")))
    assert card["training_steps"] == 5 and card["label_names"][0] == "sky"
    # A second export is version 2; the synthesizer reads the newest.
    result = run("export.py", f"--workdir={workdir}", f"--export_dir={out}", "--tflite=none")
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(os.path.join(out, "serving"))) == ["1", "2"]
    assert load_synthesizer(out).source.endswith(os.path.join("serving", "2"))
    # The TFLite files of the first export are not this one's: moved aside,
    # so the top level holds exactly what the new model card lists.
    assert not os.path.exists(os.path.join(out, "tflite"))
    (stale,) = [d for d in os.listdir(out) if d.startswith("stale-")]
    assert sorted(os.listdir(os.path.join(out, stale, "tflite"))) == ["generator_float32.tflite",
                                                                      "generator_int8.tflite"]
    assert f"moved tflite/generator_int8.tflite (from an earlier export, not written by this one) to {stale}/" in (
        result.stdout)
    card = json.load(open(os.path.join(out, "model_card.json")))
    assert set(card["files"].values()) == {f for f in os.listdir(out) if f not in ("serving", stale)} | {
        "serving/2"} == {"serving/2", "generator.keras", "model_card.json", "README.md"}


@pytest.mark.parametrize("args, message", [
    (["--workdir=/nonexistent/run"], "/nonexistent/run/config.json does not exist"),
    (["--tflite=float64"], "unknown ['float64']"),
    (["--torch_checkpoint=/nonexistent/x.pth"], "--torch_checkpoint needs --preset"),
])
def test_export_cli_errors(args, message, tmp_path):
    result = run("export.py", f"--export_dir={tmp_path / 'e'}", *args)
    assert result.returncode != 0
    assert message in result.stderr + result.stdout
    assert not os.path.exists(tmp_path / "e" / "serving")


@pytest.mark.parametrize("norm_mode, file_name", [("spade", "latest_net_G.pth"), ("clade", "best_net_G.pth")])
def test_export_cli_from_torch_checkpoint(tmp_path, norm_mode, file_name):
    # NVlabs/SPADE's latest_net_G.pth, and tzt101/CLADE's released best_net_G.pth.
    torch = pytest.importorskip("torch", reason="torch is in the test extra; pip install -e .[test]")
    from tests.convert.torch_reference import reference_generator, to_nchw

    config = get_preset("custom", crop_size=32, load_size=32, ngf=4, label_nc=5, norm_mode=norm_mode)
    rng = np.random.default_rng(0)
    g, seg, _ = reference_generator(config, rng)
    ckpt_dir = tmp_path / "nvlabs"
    ckpt_dir.mkdir()
    torch.save(g.state_dict(), ckpt_dir / file_name)
    out = str(tmp_path / "exp")
    result = run("export.py", f"--torch_checkpoint={ckpt_dir}", "--preset=custom", "--crop_size=32", "--ngf=4",
                 "--label_nc=5", f"--set=norm_mode={norm_mode}", f"--export_dir={out}", "--tflite=float32")
    assert result.returncode == 0, result.stdout + result.stderr
    # The served model computes what PyTorch computes on the same ids.
    ids = np.argmax(seg, axis=-1).astype(np.int32)
    served = load_synthesizer(out)(ids)
    with torch.no_grad():
        expected = g(to_nchw(np.eye(5, dtype=np.float32)[ids])).permute(0, 2, 3, 1).numpy()
    expected = np.clip(np.round((expected + 1) * 127.5), 0, 255)
    assert np.abs(served.astype(int) - expected.astype(int)).max() <= 1
    wrong = run("export.py", f"--torch_checkpoint={ckpt_dir}", "--preset=custom", "--crop_size=32", "--ngf=8",
                "--label_nc=5", f"--set=norm_mode={norm_mode}", f"--export_dir={tmp_path / 'wrong'}", "--tflite=none")
    assert wrong.returncode != 0 and "'fc.weight' has shape" in wrong.stderr


def test_synthesize_cli(workdir, tmp_path):
    labels = tmp_path / "labels"
    labels.mkdir()
    from spade_tf.data import synthetic

    for i in range(3):
        ids, _ = synthetic.scene(i, 48, 40)  # another size: resized to the model's
        Image.fromarray(ids).save(labels / f"scene{i}.png")
    out = tmp_path / "out"
    result = run("-m", "spade_tf.synthesize", f"--model={workdir}", f"--labels={labels}", f"--out={out}",
                 "--colorize", "--batch_size=2")
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(out)) == sorted([f"scene{i}.png" for i in range(3)]
                                             + [f"scene{i}_label.png" for i in range(3)])
    image = np.asarray(Image.open(out / "scene0.png"))
    assert image.shape == (32, 32, 3) and image.std() > 5
    assert np.asarray(Image.open(out / "scene0_label.png")).shape == (32, 64, 3)


@pytest.mark.parametrize("case, message", [
    ("rgb", "has mode RGB"),
    ("corrupt", "cannot be read as an image"),
    ("out_of_range", "ids [9] out of range"),
    ("empty_dir", "No .png label maps"),
])
def test_synthesize_bad_labels_name_the_file(workdir, tmp_path, case, message):
    from spade_tf.data.layouts import DataError
    from spade_tf.synthesize import synthesize

    labels = tmp_path / "labels"
    labels.mkdir()
    bad = labels / "bad.png"
    if case == "rgb":
        Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(bad)
    elif case == "corrupt":
        bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    elif case == "out_of_range":
        Image.fromarray(np.full((32, 32), 9, np.uint8)).save(bad)
    with pytest.raises(DataError, match=message.replace("[", r"\[").replace("]", r"\]")) as info:
        synthesize(workdir, str(labels), str(tmp_path / "out"), log=lambda *_: None)
    if case != "empty_dir":
        assert str(bad) in str(info.value)
    assert not os.path.exists(tmp_path / "out")  # nothing written before the check


def synthesize_main(*args):
    """``python -m spade_tf.synthesize`` in this process: its SystemExit (the CLI's output)."""
    from absl import flags

    from spade_tf.synthesize import define_flags, main

    define_flags()
    flags.FLAGS(["synthesize", *args])
    try:
        with pytest.raises(SystemExit) as info:
            main(["synthesize"])
    finally:
        flags.FLAGS.unparse_flags()
    return info.value.code


@pytest.fixture
def one_label(tmp_path):
    labels = tmp_path / "labels"
    labels.mkdir()
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(labels / "a.png")
    return str(labels)


@pytest.mark.parametrize("case", ["out_is_a_file", "out_under_a_file", "read_only"])
def test_synthesize_cli_unwritable_out_is_one_line(workdir, one_label, tmp_path, monkeypatch, case):
    import errno

    from spade_tf.utils import visualize

    a_file = tmp_path / "taken.png"
    a_file.write_bytes(b"x")
    out = {"out_is_a_file": str(a_file), "out_under_a_file": str(a_file / "out"),
           "read_only": str(tmp_path / "out")}[case]
    if case == "read_only":  # root ignores chmod: the write fails as on a read-only mount
        def read_only(array, path):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        monkeypatch.setattr(visualize, "save_png", read_only)
    expected = {
        "out_is_a_file": f"error: cannot write {out}: exists and is not a directory (--out is the folder the "
                         "images go to)",
        "out_under_a_file": f"error: cannot write {out}: {a_file} is a file, not a directory",
        "read_only": f"error: cannot write {out}/a.png: Read-only file system",
    }[case]
    assert synthesize_main(f"--model={workdir}", f"--labels={one_label}", f"--out={out}") == expected


def test_cli_damaged_saved_model_is_one_line(damaged_saved_model, one_label, tmp_path):
    path, damaged = damaged_saved_model("truncated_pb")
    message = synthesize_main(f"--model={path}", f"--labels={one_label}", f"--out={tmp_path / 'out'}")
    assert message.startswith(f"error: {damaged} is truncated or corrupt (") and "\n" not in message
    result = run("evaluate.py", f"--model={path}", f"--out={tmp_path / 'eval'}", "--dataset_mode=synthetic")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: {damaged} is truncated or corrupt (")
