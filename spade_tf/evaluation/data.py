"""The validation examples an evaluation runs on: label, instance ids, real image.

They come from ``build_dataset(training=False, one_hot=False)`` (centre crop,
no flip), which also yields the raw instance ids the synthesizer needs (it
draws the instance edges itself).
"""

from __future__ import annotations

from spade_tf.config import SPADEConfig
from spade_tf.data.layouts import DatasetFiles
from spade_tf.data.pipeline import build_dataset
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
    count = num_synthetic if max_images is None else min(num_synthetic, max_images)
    ds = build_dataset(config, files, training=False, batch_size=1, one_hot=False, num_synthetic=count)
    ds = ds.unbatch()
    if max_images is not None:
        ds = ds.take(max_images)
    for batch in ds.batch(batch_size).prefetch(2).as_numpy_iterator():
        batch = {k: v for k, v in batch.items() if k in ("image", "label", "instance")}
        batch["image"] = to_uint8(batch["image"])
        yield batch


def count_examples(files: DatasetFiles, max_images: int | None, num_synthetic: int = 1000) -> int:
    total = num_synthetic if files.mode == "synthetic" else len(files)
    return total if max_images is None else min(total, max_images)
