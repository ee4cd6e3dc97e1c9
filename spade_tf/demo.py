"""Generator demo: label map in, image out, written as PNGs.

Until a model is trained (``train.py``) the generator has its initial random
weights, so the picture is what an untrained SPADE draws: the layout of the
label map shows through the SPADE modulation, the textures are noise.
"""

import os

import numpy as np

from spade_tf.config import get_preset
from spade_tf.data import synthetic
from spade_tf.models import build_generator
from spade_tf.utils.visualize import colorize, save_png, to_uint8


def run_demo(out_dir: str, preset: str = "synthetic", seed: int = 0, num_images: int = 1) -> list[str]:
    """Writes label, generated and reference images; returns the paths written."""
    if preset != "synthetic":
        raise ValueError(f"preset={preset!r} is not valid for the demo; only 'synthetic' has built-in label maps.")
    if num_images < 1:
        raise ValueError(f"num_images={num_images} is not valid; expected >= 1.")
    cfg = get_preset(preset)
    height, width = cfg.image_size
    generator = build_generator(cfg)
    scenes = [synthetic.scene(seed + i, height, width) for i in range(num_images)]
    labels = np.stack([s[0] for s in scenes])
    segmap = np.eye(cfg.semantic_nc, dtype=np.float32)[labels]
    images = np.asarray(generator.predict({"segmap": segmap}, verbose=0))
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for i, ((label, real), fake) in enumerate(zip(scenes, images)):
        row = np.concatenate([colorize(label), to_uint8(fake), real], axis=1)
        path = os.path.join(out_dir, f"demo_{seed + i:04d}.png")
        save_png(row, path)
        paths.append(path)
    return paths
