"""Shared test helpers."""

import os

import numpy as np
import keras


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
