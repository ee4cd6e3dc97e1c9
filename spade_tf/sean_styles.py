"""SEAN's style codes outside the networks: a dataset's mean codes, style photos read as training reads them.

A SEAN generator (``norm_mode="sean"``) takes one style code per segmap
channel, [semantic_nc, style_dim]; the Zencoder (``build_sean_encoder``)
computes them from a photo and its label map. Without a photo, a region
takes the **mean style code** of its class: per class, the mean over the
training images in which the class is present of that image's code for it
(official ZPdesu/SEAN ``calculate_mean_style_code.py``, which averages the
codes each test image's regions get). Exports store them
(``mean_style_codes.npy``) and use them wherever a request brings no photo.

"Present" is what the Zencoder sees: a class is in an image when its
channel is non-zero somewhere in the label map nearest-resized to the
codes' resolution (H/2 x W/2 for the official encoder), the rule of
``region_average``; a class only on pixels that the resize drops gets a zero
code from the encoder and is not counted.

NumPy at import time; TensorFlow only inside the functions that run models
or read data.
"""

from __future__ import annotations

import dataclasses
import io
import os
from collections.abc import Iterable

import numpy as np

from spade_tf.config import SPADEConfig
from spade_tf.data.layouts import DataError
from spade_tf.segmap import DONTCARE_ID, out_of_range_ids, valid_label_ids

DEFAULT_STYLE_IMAGES = 256  # images averaged into the mean style codes at export


@dataclasses.dataclass(frozen=True)
class MeanStyles:
    """A dataset's mean style codes.

    Attributes:
        codes: float32 [semantic_nc, style_dim]; zeros for classes never present.
        counts: int64 [semantic_nc], images in which each class was present.
        source: what they were computed on ("256 synthetic scenes").
    """

    codes: np.ndarray
    counts: np.ndarray
    source: str = ""


def code_size(style_encoder) -> tuple[int, int]:
    """Height and width at which the Zencoder pools its codes (its ``codes`` layer)."""
    try:
        shape = style_encoder.get_layer("codes").output.shape
    except ValueError:
        raise ValueError(f"{style_encoder.name} has no 'codes' layer: not a build_sean_encoder model.") from None
    return int(shape[1]), int(shape[2])


def region_presence(segmap, size: tuple[int, int]) -> np.ndarray:
    """bool [B, semantic_nc]: whether each channel of ``segmap`` [B, H, W, semantic_nc] is
    non-zero somewhere once nearest-resized to ``size`` (``region_average``'s rule)."""
    import keras

    from spade_tf.layers.sean import region_average

    segmap = keras.ops.convert_to_tensor(segmap, "float32")
    ones = keras.ops.ones((keras.ops.shape(segmap)[0], size[0], size[1], 1), "float32")
    # The mean of ones over a region: 1 where the region has pixels, 0 where it has none.
    return keras.ops.convert_to_numpy(region_average(ones, segmap))[..., 0] > 0.5


def mean_style_codes(style_encoder, batches: Iterable[dict], config: SPADEConfig) -> tuple[np.ndarray, np.ndarray]:
    """The mean style code of each class over ``batches``.

    Args:
        style_encoder: the Zencoder.
        batches: dicts with ``"image"`` float [B, H, W, 3] in [-1, 1] and
            ``"segmap"`` [B, H, W, semantic_nc] (the training pipeline's).
        config: the model's config.

    Returns:
        ``(codes, counts)``: float32 [semantic_nc, style_dim], per class the
        mean over the images in which it is present of that image's code
        (zeros where it never is), and int64 [semantic_nc] those images.
    """
    import keras

    from spade_tf.models.sean_encoder import encode_styles

    size = code_size(style_encoder)
    sums = np.zeros((config.semantic_nc, config.style_dim), np.float64)
    counts = np.zeros(config.semantic_nc, np.int64)
    for batch in batches:
        codes = keras.ops.convert_to_numpy(encode_styles(style_encoder, batch["image"], batch["segmap"]))
        present = region_presence(batch["segmap"], size)
        sums += np.einsum("bl,bld->ld", present.astype(np.float64), codes.astype(np.float64))
        counts += present.sum(axis=0)
    codes = sums / np.maximum(counts, 1)[:, None]
    return codes.astype(np.float32), counts


def training_mean_styles(style_encoder, config: SPADEConfig, count: int = DEFAULT_STYLE_IMAGES,
                         workdir: str | None = None, dataset_dir: str | None = None,
                         dataset_mode: str = "auto", batch_size: int = 8) -> MeanStyles:
    """``mean_style_codes`` over ``count`` images of the model's training data.

    The data: ``dataset_dir``, else the workdir's data record, else the
    synthetic scenes for the synthetic preset (``calibration.training_files``);
    each image processed as evaluation does (resize, centre crop).

    Raises:
        ValueError: no training data is known (pass ``dataset_dir``).
    """
    from spade_tf.data.pipeline import build_dataset
    from spade_tf.export.calibration import training_files

    files, where = training_files(config, workdir, dataset_dir, dataset_mode)
    if files is None:
        raise ValueError("SEAN's mean style codes are computed on the training photos, and none are known "
                         "(no data record in the workdir): pass --dataset_dir.")
    ds = build_dataset(config, files, training=False, batch_size=batch_size, num_synthetic=count)
    ds = ds.unbatch().take(count).batch(batch_size)
    batches = ({"image": b["image"], "segmap": b["segmap"]} for b in ds)
    codes, counts = mean_style_codes(style_encoder, batches, config)
    if files.mode == "synthetic":
        return MeanStyles(codes, counts, f"{count} synthetic scenes")
    return MeanStyles(codes, counts, f"{min(count, len(files))} images of {where}")


def with_mean(codes: np.ndarray, present: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Style codes [B, L, D] with the rows of absent regions (``present`` False) replaced by ``mean`` [L, D]."""
    return np.where(np.asarray(present, bool)[..., None], codes, np.asarray(mean, np.float32)[None]).astype(np.float32)


def class_channel(class_id: int, config: SPADEConfig) -> int:
    """The segmap channel (style-code row) of a class id: itself, or ``label_nc`` for don't care (255)."""
    if config.contain_dontcare_label and class_id == DONTCARE_ID:
        return config.label_nc
    if not 0 <= class_id < config.label_nc:
        raise DataError(f"class id {class_id} is out of range; the model expects "
                        f"{valid_label_ids(config.label_nc, config.contain_dontcare_label)}.")
    return class_id


def _open(source, name: str, what: str):
    from PIL import Image

    if isinstance(source, (str, os.PathLike)):
        if not os.path.isfile(source):
            raise DataError(f"{what} {name} does not exist.")
    elif isinstance(source, (bytes, bytearray)):
        source = io.BytesIO(source)
    try:
        image = Image.open(source)
        image.load()
        return image
    except Exception as e:  # PIL raises many types for corrupt files
        raise DataError(f"{what} {name} cannot be read as an image: {e}") from e


def read_style_pair(image, label, config: SPADEConfig, image_name: str | None = None,
                    label_name: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A style photo and its label map, processed as training data is evaluated.

    Args:
        image: a photo (any format PIL reads): a path, bytes or a file object.
        label: its label map, a grayscale PNG of class ids (8/16-bit), the
            same size as the photo.
        config: the model's config.
        image_name, label_name: names in errors (default: the paths).

    Both go through the data pipeline's evaluation processing
    (``preprocess_mode``: for ``resize_and_crop`` a resize to ``load_size``,
    bicubic for the photo and nearest for the ids, then the centre
    ``crop_size`` crop), so the encoder sees them as it saw training images;
    with ``preprocess_mode="none"`` (training data already at the model's
    size, as the synthetic scenes) another size is resized to the model's
    as ``"fixed"`` does.

    Returns:
        ``(photo, ids)``: uint8 [H, W, 3] and int32 [H, W] at the model's size.

    Raises:
        DataError: a missing or unreadable file, a colour label map, a label
            map whose size is not the photo's, ids out of range.
    """
    import tensorflow as tf

    from spade_tf.data.pipeline import _process
    from spade_tf.data.validation import LABEL_MODES

    image_name = image_name or str(image)
    label_name = label_name or str(label)
    with _open(image, image_name, "Style photo") as img:
        photo = np.asarray(img.convert("RGB"), np.uint8)
    with _open(label, label_name, "Style label map") as lab:
        if lab.mode not in LABEL_MODES:
            raise DataError(f"Style label map {label_name} has mode {lab.mode}; expected a grayscale PNG of "
                            f"class ids ({', '.join(LABEL_MODES)}), not colours.")
        ids = np.asarray(lab, np.int64)
    if ids.shape != photo.shape[:2]:
        raise DataError(f"Style label map {label_name} is {ids.shape[1]}x{ids.shape[0]} but its photo "
                        f"{image_name} is {photo.shape[1]}x{photo.shape[0]}: a label map must be its photo's size.")
    bad = out_of_range_ids(ids, config.label_nc, config.contain_dontcare_label)
    if bad.size:
        raise DataError(f"Style label map {label_name} has ids {bad[:10].tolist()} out of range; the model "
                        f"expects {valid_label_ids(config.label_nc, config.contain_dontcare_label)}.")
    h, w = config.image_size
    if config.preprocess_mode == "none" and photo.shape[:2] != (h, w):
        # Training data was at the model's size already (the synthetic scenes):
        # another size is resized to it, as preprocess_mode "fixed" does.
        config = dataclasses.replace(config, preprocess_mode="fixed")
    try:
        processed, maps = _process(tf.constant(photo), {"label": tf.constant(ids.astype(np.int32)[..., None])},
                                   tf.constant([0, 0], tf.int64), config, training=False)
    except (tf.errors.InvalidArgumentError, ValueError):
        raise DataError(f"Style photo {image_name} ({photo.shape[1]}x{photo.shape[0]}) cannot be brought to the "
                        f"model's {w}x{h} with preprocess_mode={config.preprocess_mode!r} (load_size "
                        f"{config.load_size}); resize it first.") from None
    photo = np.round((processed.numpy() + 1.0) * 127.5).astype(np.uint8)
    return photo, maps["label"].numpy().astype(np.int32)
