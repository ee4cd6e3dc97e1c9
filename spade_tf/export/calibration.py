"""Label maps for int8 calibration (and anything else that needs real inputs)."""

from __future__ import annotations

import logging
import os

import numpy as np

from spade_tf.config import SPADEConfig
from spade_tf.data import DatasetFiles, find_files
from spade_tf.data.pipeline import build_dataset
from spade_tf.workdir import read_data_record

log = logging.getLogger(__name__)


def dataset_examples(config: SPADEConfig, count: int, dataset_dir: str | None = None,
                     dataset_mode: str = "auto", split: str = "train", images: bool = False,
                     files: DatasetFiles | None = None) -> list[dict]:
    """Up to ``count`` centre-cropped ``{"label", ["instance"], ["image"]}`` examples of a dataset.

    ``dataset_dir`` None means the built-in synthetic scenes; ``files`` (from
    ``training_files``) replaces ``dataset_dir``/``dataset_mode``. With
    ``images`` each example also has its photo, ``"image"`` uint8 [H, W, 3]
    (processed as training does; a SEAN export encodes them into
    calibration style codes).
    """
    if files is None:
        if dataset_dir is None:
            files = find_files(dataset_mode="synthetic")
        else:
            files = find_files(dataset_dir, dataset_mode, split, config.use_instance_map)
    ds = build_dataset(config, files, training=False, batch_size=1, one_hot=False, num_synthetic=count)
    examples = []
    for batch in ds.take(count):
        example = {"label": batch["label"].numpy()[0]}
        if config.use_instance_map:
            example["instance"] = batch["instance"].numpy()[0]
        if images:
            example["image"] = np.round((batch["image"].numpy()[0] + 1.0) * 127.5).astype(np.uint8)
        examples.append(example)
    return examples


def training_files(config: SPADEConfig, workdir: str | None = None, dataset_dir: str | None = None,
                   dataset_mode: str = "auto") -> tuple[DatasetFiles | None, str]:
    """The training split of the data a model learned from, and a description of it.

    Order: ``dataset_dir`` if given; else the data the workdir was trained on
    (``<workdir>/data.json``: a dataset dir, image/label folders or the
    synthetic scenes); else the synthetic scenes for the synthetic preset.
    ``(None, why)`` when none is known (no record, or its data is gone),
    with the reason logged as a warning.
    """
    record = read_data_record(workdir) if dataset_dir is None and workdir is not None else None
    if record is not None:
        if record.is_synthetic:
            return find_files(dataset_mode="synthetic"), "synthetic scenes"
        if record.uses_folders:
            folders = [d for d in (record.image_dir, record.label_dir) if not os.path.isdir(d)]
            if not folders:
                files = find_files(image_dir=record.image_dir, label_dir=record.label_dir,
                                   instance_dir=record.instance_dir, use_instance_map=config.use_instance_map)
                return files, f"{record.image_dir} and {record.label_dir}"
            log.warning("Training data %s (from %s's data record) is gone; pass --dataset_dir.",
                        folders[0], workdir)
        elif not os.path.isdir(record.dataset_dir):
            log.warning("Training data %s (from %s's data record) is gone; pass --dataset_dir.",
                        record.dataset_dir, workdir)
        else:
            dataset_dir, dataset_mode = record.dataset_dir, record.dataset_mode
    if dataset_dir is not None:
        return find_files(dataset_dir, dataset_mode, "train", config.use_instance_map), dataset_dir
    if config.preset == "synthetic":
        return find_files(dataset_mode="synthetic"), "synthetic scenes"
    return None, "no training data given"


def random_layouts(config: SPADEConfig, count: int, seed: int = 0) -> list[dict]:
    """Piecewise-constant random label maps (blocks of random classes).

    A stand-in for calibration when no training data is at hand: int8
    ranges come out wider than on real layouts, so quality is lower.
    """
    rng = np.random.default_rng(seed)
    h, w = config.image_size
    examples = []
    for _ in range(count):
        grid = rng.integers(2, 9)
        coarse = rng.integers(0, config.label_nc, (grid, grid))
        rows = np.minimum(np.arange(h) * grid // h, grid - 1)
        cols = np.minimum(np.arange(w) * grid // w, grid - 1)
        label = coarse[rows][:, cols].astype(np.int32)
        example = {"label": label}
        if config.use_instance_map:
            example["instance"] = label.copy()
        examples.append(example)
    return examples


def calibration_examples(config: SPADEConfig, count: int, workdir: str | None = None,
                         dataset_dir: str | None = None, dataset_mode: str = "auto",
                         images: bool = False) -> tuple[list[dict], str]:
    """Calibration label maps (with ``images``, their photos too) and a description of where they came from.

    The data of ``training_files``; random block layouts (with a warning, and
    no photos) when no training data is known.
    """
    files, where = training_files(config, workdir, dataset_dir, dataset_mode)
    if files is not None:
        examples = dataset_examples(config, count, files=files, images=images)
        if files.mode == "synthetic":
            return examples, f"{count} synthetic scenes"
        return examples, f"{len(examples)} label maps of {where}"
    log.warning("No training data for int8 calibration: using random block layouts (pass --dataset_dir "
                "for a better int8 model).")
    return random_layouts(config, count), f"{count} random block layouts (no training data given)"
