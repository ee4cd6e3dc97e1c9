"""Procedural scenes: label maps and matching photos-like images, from a seed.

The built-in dataset of the project (preset "synthetic"): with no download,
``train.py`` has something a model can visibly learn on a CPU. Each scene has
a sky with clouds, a mountain ridge, sea, a beach, grass with trees and rocks;
each class has its own colour and texture, so the image depends on the labels
the way a photo does. NumPy only; deterministic for a given seed.
"""

import numpy as np

CLASS_NAMES = ("sky", "cloud", "mountain", "sea", "sand", "grass", "tree", "rock")
SKY, CLOUD, MOUNTAIN, SEA, SAND, GRASS, TREE, ROCK = range(len(CLASS_NAMES))

# Base colours (RGB 0..255) and texture amplitude per class.
_COLOURS = np.array([
    (110, 160, 230), (240, 240, 245), (110, 100, 95), (30, 80, 150),
    (220, 200, 150), (70, 150, 60), (25, 85, 35), (130, 125, 120),
], np.float32)
_TEXTURE = np.array([6, 8, 22, 14, 12, 20, 18, 25], np.float32)


def _smooth_profile(rng, width, base, amplitude, octaves=4):
    """A random 1D profile (sum of sines), for ridges and shorelines."""
    x = np.linspace(0.0, 1.0, width)
    y = np.full(width, base, np.float32)
    for o in range(octaves):
        freq = 2 ** o * rng.uniform(0.8, 1.6)
        y += amplitude / 2 ** o * np.sin(2 * np.pi * (freq * x + rng.uniform()))
    return y


def _ellipses(rng, height, width, count, y_range, size_range):
    """Boolean mask of ``count`` random ellipses with centres in ``y_range``."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    mask = np.zeros((height, width), bool)
    for _ in range(count):
        cy = rng.uniform(*y_range) * height
        cx = rng.uniform(0, width)
        ry = rng.uniform(*size_range) * height
        rx = ry * rng.uniform(1.0, 3.0)
        mask |= ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
    return mask


def scene_labels(seed: int, height: int = 64, width: int = 64) -> np.ndarray:
    """Label map [height, width] uint8 of class ids in ``CLASS_NAMES``."""
    rng = np.random.default_rng(seed)
    rows = np.arange(height, dtype=np.float32)[:, None]
    horizon = rng.uniform(0.35, 0.55) * height
    labels = np.full((height, width), SKY, np.uint8)
    ridge = _smooth_profile(rng, width, horizon - rng.uniform(0.05, 0.2) * height, 0.12 * height)
    ridge = np.maximum(ridge, 0.1 * height)  # peaks stay below the top edge
    labels[rows >= ridge[None, :]] = MOUNTAIN
    labels[_ellipses(rng, height, width, rng.integers(1, 4), (0.05, 0.3), (0.03, 0.08))
           & (labels == SKY)] = CLOUD
    has_sea = rng.uniform() < 0.7
    shore = _smooth_profile(rng, width, horizon + rng.uniform(0.1, 0.25) * height, 0.04 * height)
    ground = np.broadcast_to(rows >= horizon, (height, width))
    if has_sea:
        labels[ground] = SEA
        beach_end = shore + rng.uniform(0.05, 0.15) * height
        labels[rows >= shore[None, :]] = SAND
        labels[rows >= beach_end[None, :]] = GRASS
    else:
        labels[ground] = GRASS
    grass = labels == GRASS
    labels[_ellipses(rng, height, width, rng.integers(0, 6), (0.6, 1.0), (0.04, 0.1)) & grass] = TREE
    labels[_ellipses(rng, height, width, rng.integers(0, 3), (0.55, 1.0), (0.02, 0.05))
           & (labels != SKY) & (labels != CLOUD) & (labels != MOUNTAIN)] = ROCK
    return labels


def render_image(labels: np.ndarray, seed: int) -> np.ndarray:
    """A photo-like uint8 RGB image [H, W, 3] for a label map.

    Each class gets its colour, a vertical shading (sky lighter near the
    horizon, sea darker far away) and a class-specific noise texture.
    """
    rng = np.random.default_rng(seed + 1_000_003)
    height, width = labels.shape
    image = _COLOURS[labels].copy()
    rows = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    shade = np.where(np.isin(labels, (SKY, SEA))[..., None], 0.75 + 0.5 * rows, 1.0)
    image *= shade
    noise = rng.normal(size=(height, width, 1)).astype(np.float32)
    coarse = rng.normal(size=(max(1, height // 4), max(1, width // 4), 1)).astype(np.float32)
    coarse = np.repeat(np.repeat(coarse, 4, axis=0), 4, axis=1)[:height, :width]
    image += _TEXTURE[labels][..., None] * (0.5 * noise + 0.8 * coarse)
    return np.clip(image, 0, 255).astype(np.uint8)


def scene(seed: int, height: int = 64, width: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """(labels [H, W] uint8, image [H, W, 3] uint8) of scene number ``seed``."""
    labels = scene_labels(seed, height, width)
    return labels, render_image(labels, seed)
