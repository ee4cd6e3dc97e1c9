"""Helpers of the painter tests (PNG bytes, the palette model's class colours)."""

import io

import numpy as np
from PIL import Image

from spade_tf.data import synthetic

CLASS_COLOURS = synthetic._COLOURS.astype(np.uint8)


def png_bytes(array, mode=None) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(array), mode).save(buffer, format="PNG")
    return buffer.getvalue()


def png16(array) -> bytes:
    image = Image.frombytes("I;16", (array.shape[1], array.shape[0]), np.asarray(array).astype("<u2").tobytes())
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def decode_png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def expected_image(labels: np.ndarray) -> np.ndarray:
    return CLASS_COLOURS[np.asarray(labels)]


def sean_expected_image(labels, codes) -> np.ndarray:
    """The SEAN palette model's image: each pixel its class's style code [-1, 1] as a colour."""
    codes = np.asarray(codes, np.float64)
    return np.clip(np.round((codes[np.asarray(labels)] + 1.0) * 127.5), 0, 255).astype(np.uint8)


def photo_codes(photo, labels, config):
    """The SEAN palette encoder's codes of a style pair, as the painter reads it: (codes [C, 3], present [C])."""
    from spade_tf.sean_styles import read_style_pair

    image, ids = read_style_pair(png_bytes(photo), png_bytes(labels), config)
    x = image.astype(np.float64) / 127.5 - 1.0
    present = np.array([(ids == c).any() for c in range(config.semantic_nc)])
    codes = np.stack([x[ids == c].mean(0) if present[c] else np.zeros(3) for c in range(config.semantic_nc)])
    return codes, present


def style_photo(seed=7, size=96):
    """A synthetic scene at ``size`` without trees and rocks: (photo uint8, label uint8)."""
    from spade_tf.data import synthetic

    labels, image = synthetic.scene(seed, size, size)
    labels[np.isin(labels, [synthetic.TREE, synthetic.ROCK])] = synthetic.GRASS
    return image, labels
