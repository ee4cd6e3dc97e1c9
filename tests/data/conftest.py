import os

import numpy as np
import pytest
from PIL import Image

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
