"""The validation examples an evaluation runs on: label, instance ids, real image.

The synthesizer takes raw instance ids (it draws the instance edges itself),
but ``build_dataset(one_hot=False)`` yields only the ``"edges"`` drawn from
them. So with instance maps this reads the files itself, through the same
decode and processing functions as ``build_dataset(training=False)`` (centre
crop, no flip, nearest-neighbour resizing of ids), so the examples match
what training's validation pipeline would give pixel for pixel.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from spade_tf.config import SPADEConfig
from spade_tf.data.layouts import DatasetFiles
from spade_tf.data.pipeline import _decode_files, _process, build_dataset
from spade_tf.utils.visualize import to_uint8


def validation_batches(
    config: SPADEConfig, files: DatasetFiles, batch_size: int, max_images: int | None = None,
    num_synthetic: int = 1000,
):
    """Yields NumPy batches in file order, never repeating.

    Args:
        config: the model's config (sizes, preprocess mode, labels).
        files: the validation split (``find_files(..., split="val")``).
        batch_size: images per batch (the last batch may be smaller).
        max_images: evaluate only the first this many examples.
        num_synthetic: scenes in the synthetic validation split.

    Yields:
        dicts: ``"label"`` int32 [B, H, W] ids as in the files, ``"instance"``
        int32 [B, H, W] (only with ``config.use_instance_map``), ``"image"``
        uint8 [B, H, W, 3] (the real image).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} is not valid; expected >= 1.")
    if max_images is not None and max_images < 1:
        raise ValueError(f"max_images={max_images} is not valid; expected >= 1 or None.")
    if files.mode == "synthetic" or not config.use_instance_map:
        count = num_synthetic if max_images is None else min(num_synthetic, max_images)
        ds = build_dataset(config, files, training=False, batch_size=1, one_hot=False, num_synthetic=count)
        ds = ds.unbatch()
    else:
        if len(files.instances) != len(files):
            raise ValueError("The config uses instance maps but the validation files have none.")
        ds = tf.data.Dataset.from_tensor_slices((list(files.images), list(files.labels), list(files.instances)))

        def load(image_path, label_path, instance_path):
            image, label, instance = _decode_files(image_path, label_path, instance_path, config)
            # training=False: centre crop, no flip; the seed is then unused.
            image, label, instance = _process(
                image, label, instance, tf.zeros([2], tf.int64), config, training=False
            )
            return {"image": image, "label": tf.cast(label, tf.int32), "instance": tf.cast(instance, tf.int32)}

        ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if max_images is not None:
        ds = ds.take(max_images)
    for batch in ds.batch(batch_size).prefetch(2).as_numpy_iterator():
        batch = {k: v for k, v in batch.items() if k in ("image", "label", "instance")}
        batch["image"] = to_uint8(batch["image"])
        yield batch


def count_examples(files: DatasetFiles, max_images: int | None, num_synthetic: int = 1000) -> int:
    total = num_synthetic if files.mode == "synthetic" else len(files)
    return total if max_images is None else min(total, max_images)
