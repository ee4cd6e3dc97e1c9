"""Shared test helpers."""

import os

import numpy as np
import keras
from PIL import Image


def one_hot_segmap(rng, batch, height, width, channels):
    """Random one-hot label map [B, H, W, C] in float32, in blocks of 4 px."""
    ids = rng.integers(0, channels, size=(batch, max(1, height // 4), max(1, width // 4)))
    ids = np.repeat(np.repeat(ids, 4, axis=1), 4, axis=2)[:, :height, :width]
    return np.eye(channels, dtype=np.float32)[ids]


def to_numpy(x):
    if isinstance(x, (list, tuple)):
        return [to_numpy(v) for v in x]
    if isinstance(x, dict):
        return {k: to_numpy(v) for k, v in x.items()}
    return keras.ops.convert_to_numpy(x)


def assert_all_close(a, b, atol=1e-5, rtol=1e-5):
    a, b = to_numpy(a), to_numpy(b)
    if isinstance(a, list):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_all_close(x, y, atol, rtol)
        return
    np.testing.assert_allclose(a, b, atol=atol, rtol=rtol)


def keras_round_trip(model, tmp_path, name="model.keras"):
    """Saves to .keras and loads back."""
    path = os.path.join(tmp_path, name)
    model.save(path)
    return keras.models.load_model(path)


def layer_config_round_trip(layer):
    """Rebuilds a layer from its config; the config must match exactly."""
    config = layer.get_config()
    clone = layer.__class__.from_config(config)
    assert clone.get_config() == config
    return clone


def write_pair(root, stem, labels, image=None, instance=None, image_ext=".jpg",
               image_dir="images", label_dir="labels", instance_dir="instances"):
    """Writes one image / label (/ instance) triple; returns the label array."""
    labels = np.asarray(labels, np.uint8)
    if image is None:
        rng = np.random.default_rng(abs(hash(stem)) % 2**32)
        image = rng.integers(0, 255, size=(*labels.shape, 3), dtype=np.uint8)
    for folder, array, ext in (
        (image_dir, image, image_ext), (label_dir, labels, ".png"), (instance_dir, instance, ".png"),
    ):
        if array is None:
            continue
        os.makedirs(os.path.join(root, folder), exist_ok=True)
        Image.fromarray(array).save(os.path.join(root, folder, stem + ext))
    return labels


def blocks(rng, h, w, n, block=4):
    ids = rng.integers(0, n, size=(h // block + 1, w // block + 1))
    return np.repeat(np.repeat(ids, block, 0), block, 1)[:h, :w].astype(np.uint8)
