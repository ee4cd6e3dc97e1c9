"""End to end: train a tiny model on the COCO-Stuff sample (with periodic evaluation),
then run evaluate.py on its val split."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from summary_reader import read_scalars

from spade_tf.config import get_preset
from spade_tf.training import TrainOptions, train

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class RedScaledToCocoIds(tf.Module):
    """A stand-in segmenter: class = red * 181 // 255 (always a valid COCO-Stuff id)."""

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8)])
    def serve(self, images):
        return {"class_ids": tf.cast(images[..., 0], tf.int32) * 181 // 255}


@pytest.mark.slow
def test_train_with_periodic_eval_then_evaluate_cli(coco_mini, tmp_path):
    workdir = str(tmp_path / "run")
    config = get_preset("coco", crop_size=64, load_size=72, ngf=8, ndf=8, use_vgg_loss=False, batch_size=2,
                        num_D=1, n_layers_D=2)
    summary = train(config, TrainOptions(workdir=workdir, dataset_dir=coco_mini, max_steps=2,
                                         checkpoint_every=2, eval_every=2, eval_images=3, verbose=False))
    assert summary["step"] == 2
    fid = read_scalars(os.path.join(workdir, "logs"))["eval/fid"]
    assert [step for step, _ in fid] == [2] and np.isfinite(fid[0][1]) and fid[0][1] >= 0
    segmenter = str(tmp_path / "segmenter")
    module = RedScaledToCocoIds()
    tf.saved_model.save(module, segmenter, signatures={"serving_default": module.serve})

    out = str(tmp_path / "eval")
    # No --dataset_dir: the workdir's data.json says where it trained.
    cmd = [sys.executable, os.path.join(ROOT, "evaluate.py"), f"--model={workdir}", f"--out={out}",
           f"--segmenter={segmenter}", "--batch_size=3", "--max_images=5", "--kid_subsets=10"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "NOT comparable to published numbers" in result.stderr

    with open(os.path.join(out, "report.json")) as f:
        report = json.load(f)
    assert report["num_images"] == 5 and report["step"] == 2 and report["dataset_mode"] == "coco"
    assert report["inception_real_weights"] is False
    assert np.isfinite(report["fid"]) and report["fid"] >= 0
    assert np.isfinite(report["kid_mean"]) and report["kid_subsets"] == 10
    assert 0 <= report["miou"] <= 100 and 0 <= report["accuracy"] <= 100
    assert report["paper"]["fid"] == 22.6
    grid = np.asarray(Image.open(os.path.join(out, "grid.png")))
    assert grid.shape == (5 * 64, 3 * 64, 3)
