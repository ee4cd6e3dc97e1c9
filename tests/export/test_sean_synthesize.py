"""python -m spade_tf.synthesize with a SEAN model's styles: a style photo, per-region photos, errors."""

import os

import numpy as np
import pytest
from helpers import sean_label
from PIL import Image

from spade_tf.data.layouts import DataError
from spade_tf.export import load_synthesizer
from spade_tf.sean_styles import read_style_pair, with_mean
from spade_tf.synthesize import synthesize


@pytest.fixture(scope="module")
def sean_synth(sean_export):
    return load_synthesizer(sean_export[4])


@pytest.fixture(scope="module")
def files(sean_export, tmp_path_factory):
    """Label maps to synthesize, and two style photos with their label maps at 48x48 (resized to 32x32)."""
    config = sean_export[0]
    root = tmp_path_factory.mktemp("sean_files")
    (root / "labels").mkdir()
    for i in range(2):
        Image.fromarray(sean_label(config, 40 + i)[0][0].astype(np.uint8)).save(root / "labels" / f"s{i}.png")
    from spade_tf.data import synthetic

    for name, seed in (("photo", 50), ("other", 51)):
        labels, image = synthetic.scene(seed, 48, 48)
        if name == "photo":
            labels[np.isin(labels, [synthetic.TREE, synthetic.ROCK])] = synthetic.GRASS  # no trees nor rocks
        Image.fromarray(image).save(root / f"{name}.png")
        Image.fromarray(labels).save(root / f"{name}_label.png")
    return root


def written(out):
    return np.stack([np.asarray(Image.open(os.path.join(out, f"s{i}.png"))) for i in range(2)])


def label_maps(files):
    return np.stack([np.asarray(Image.open(files / "labels" / f"s{i}.png")).astype(np.int32) for i in range(2)])


def test_style_photo_and_region_styles(sean_export, sean_synth, files, tmp_path):
    config = sean_export[0]
    photo, photo_ids = read_style_pair(str(files / "photo.png"), str(files / "photo_label.png"), config)
    assert photo.shape == (32, 32, 3)  # 48x48 resized as the pipeline does
    codes, present = sean_synth.encode_styles(photo[None], photo_ids[None])
    from_photo = with_mean(codes, present, sean_synth.mean_style_codes)[0]
    assert present[0].tolist() == [True] * 6 + [False] * 2  # trees and rocks keep the mean code

    out = str(tmp_path / "photo")
    synthesize(sean_synth, str(files / "labels"), out, style_image=str(files / "photo.png"),
               style_label=str(files / "photo_label.png"), seed=3, log=lambda *_: None)
    expected = sean_synth.synthesize_styles(label_maps(files), np.stack([from_photo] * 2), seed=3)
    np.testing.assert_array_equal(written(out), expected)

    # --region_style: sky (by name) and class 2 (by id) from the other photo, the rest from the first.
    other, other_ids = read_style_pair(str(files / "other.png"), str(files / "other_label.png"), config)
    other_codes, _ = sean_synth.encode_styles(other[None], other_ids[None])
    mixed = from_photo.copy()
    mixed[[0, 2]] = other_codes[0, [0, 2]]
    out = str(tmp_path / "mixed")
    pair = f"{files / 'other.png'},{files / 'other_label.png'}"
    synthesize(sean_synth, str(files / "labels"), out, style_image=str(files / "photo.png"),
               style_label=str(files / "photo_label.png"), region_styles=[f"SKY:{pair}", f"2:{pair}"], seed=3,
               log=lambda *_: None)
    np.testing.assert_array_equal(written(out), sean_synth.synthesize_styles(label_maps(files),
                                                                             np.stack([mixed] * 2), seed=3))
    # Without style flags: the mean codes (serving_default).
    out = str(tmp_path / "mean")
    synthesize(sean_synth, str(files / "labels"), out, seed=3, log=lambda *_: None)
    np.testing.assert_array_equal(written(out), sean_synth(label_maps(files), seed=3))


def test_style_errors_are_one_line_and_name_the_problem(sean_export, sean_synth, files, tmp_path):
    from spade_tf.config import get_preset
    from spade_tf.export.runtime import Synthesizer

    labels, out = str(files / "labels"), str(tmp_path / "out")
    photo, label = str(files / "photo.png"), str(files / "photo_label.png")
    Image.fromarray(np.zeros((30, 48), np.uint8)).save(tmp_path / "short.png")
    Image.fromarray(np.full((48, 48), 7, np.uint8)).save(tmp_path / "trees.png")
    cases = [
        (dict(style_image=str(tmp_path / "nope.jpg"), style_label=label), f"Style photo {tmp_path}/nope.jpg does not "
                                                                          "exist."),
        (dict(style_image=photo), "--style_image and --style_label go together"),
        (dict(style_image=photo, style_label=str(tmp_path / "short.png")),
         f"Style label map {tmp_path}/short.png is 48x30 but its photo {photo} is 48x48"),
        (dict(region_styles=["sky-photo.png"]), "--region_style=sky-photo.png: expected <class name or id>:<image>,"),
        (dict(region_styles=[f"lava:{photo},{label}"]), "no class 'lava'; expected one of ['sky', 'cloud'"),
        (dict(region_styles=[f"9:{photo},{label}"]), "class id 9 is out of range"),
        (dict(region_styles=[f"sky:{photo},{tmp_path / 'trees.png'}"]),
         f"class sky (0) is not in {tmp_path}/trees.png"),
    ]
    for kwargs, message in cases:
        with pytest.raises(DataError) as info:
            synthesize(sean_synth, labels, out, log=lambda *_: None, **kwargs)
        assert message in str(info.value) and "\n" not in str(info.value), (kwargs, str(info.value))
    assert not os.path.exists(out)
    spade = Synthesizer(get_preset("synthetic"), {}, "exported/spade")
    with pytest.raises(DataError, match=r"^--style_image is for SEAN models \(norm_mode='sean'\), which take "
                                        r"per-region style codes; exported/spade is norm_mode='spade'\.$"):
        synthesize(spade, labels, out, style_image=photo, style_label=label, log=lambda *_: None)


def test_cli_prints_one_error_line(sean_export, files, tmp_path):
    # In a subprocess: the in-process absl flags of other CLI tests are shared state.
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "spade_tf.synthesize", f"--model={sean_export[4]}", f"--labels={files / 'labels'}",
           f"--out={tmp_path}/o", f"--region_style=sky:{files / 'photo.png'},{tmp_path / 'gone.png'}"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.strip().splitlines()[-1] == f"error: Style label map {tmp_path}/gone.png does not exist."


@pytest.mark.slow  # ~30 s: export.py in a subprocess writes a SavedModel
def test_export_cli_and_workdir_loading_compute_mean_codes_on_the_training_data(sean_export, tmp_path):
    """A SEAN workdir (trained on the synthetic scenes) through export.py and load_synthesizer."""
    import json

    import tensorflow as tf
    from test_cli import run

    from spade_tf.sean_styles import training_mean_styles

    config, generator, encoder, _, _, _ = sean_export
    workdir = tmp_path / "wd"
    workdir.mkdir()
    config.to_json(str(workdir / "config.json"))
    (workdir / "data.json").write_text(json.dumps({"dataset_dir": None, "dataset_mode": "auto"}))
    checkpoint = tf.train.Checkpoint(generator=generator, style_encoder=encoder, step=tf.Variable(9, dtype=tf.int64))
    tf.train.CheckpointManager(checkpoint, str(workdir / "checkpoints"), 1, checkpoint_name="ckpt").save(9)
    expected = training_mean_styles(encoder, config, 4).codes

    synth = load_synthesizer(str(workdir), style_images=4)
    np.testing.assert_allclose(synth.mean_style_codes, expected, atol=1e-6)
    assert {"encode_styles", "synthesize_from_photo"} <= set(synth.signatures)

    out = tmp_path / "exp"
    result = run("export.py", f"--workdir={workdir}", f"--export_dir={out}", "--tflite=none", "--style_images=4")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "mean style codes: 4 synthetic scenes" in result.stdout
    np.testing.assert_allclose(np.load(out / "mean_style_codes.npy"), expected, atol=1e-6)
    card = json.load(open(out / "model_card.json"))
    assert card["sean"]["mean_style_codes"]["source"] == "4 synthetic scenes" and card["training_steps"] == 9
