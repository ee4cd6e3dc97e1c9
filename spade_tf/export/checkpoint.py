"""Restoring the generator of a training workdir."""

from __future__ import annotations

import dataclasses
import os

import keras
import tensorflow as tf

from spade_tf.config import SPADEConfig
from spade_tf.models import build_generator


@dataclasses.dataclass
class Restored:
    """A generator restored from a training checkpoint."""

    config: SPADEConfig
    generator: keras.Model
    step: int
    checkpoint: str


def find_checkpoint(workdir: str, checkpoint: str | int | None = None) -> str:
    """The checkpoint prefix to use: the latest, a step number or a path.

    Raises:
        FileNotFoundError: naming what is missing.
    """
    ckpt_dir = os.path.join(workdir, "checkpoints")
    if checkpoint is None:
        latest = tf.train.latest_checkpoint(ckpt_dir)
        if latest is None:
            raise FileNotFoundError(
                f"No checkpoint in {ckpt_dir}: train first (python train.py --workdir={workdir})."
            )
        return latest
    if isinstance(checkpoint, int) or str(checkpoint).isdigit():
        path = os.path.join(ckpt_dir, f"ckpt-{int(checkpoint)}")
    else:
        path = str(checkpoint)
    if not tf.io.gfile.exists(path + ".index"):
        raise FileNotFoundError(f"Checkpoint {path} does not exist (no {path}.index).")
    return path


def read_config(workdir: str) -> SPADEConfig:
    path = os.path.join(workdir, "config.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{path} does not exist: {workdir} is not a training workdir (train.py writes config.json)."
        )
    return SPADEConfig.from_json(path)


def load_workdir(workdir: str, checkpoint: str | int | None = None) -> Restored:
    """Builds the generator of ``<workdir>/config.json`` and restores its weights.

    Spectral-norm vectors and batch-norm moving statistics come with the
    weights. The generator is built in float32 whatever precision it was
    trained in (mixed-precision variables are float32 already).

    Raises:
        FileNotFoundError: no config or checkpoint.
        AssertionError: the checkpoint lacks some generator variable.
    """
    config = read_config(workdir)
    path = find_checkpoint(workdir, checkpoint)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        generator = build_generator(config)
    finally:
        keras.config.set_dtype_policy(previous)
    step = tf.Variable(0, dtype=tf.int64)
    status = tf.train.Checkpoint(generator=generator, step=step).read(path)
    status.expect_partial().assert_existing_objects_matched()
    return Restored(config, generator, int(step.numpy()), path)
