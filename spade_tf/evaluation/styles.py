"""Which style a VAE model is evaluated with.

The official test (NVlabs ``Pix2PixModel.generate_fake`` in inference mode)
encodes each real image and generates from ``z = mean + exp(logvar / 2) *
eps``: FID then measures how well the model reproduces the validation photos'
styles on their label maps. ``"random"`` draws ``z ~ N(0, I)`` instead (the
serving default). Both ``evaluate.py`` and the periodic evaluation during
training draw ``eps`` here, from the batch's seed, so they score the same
images the same way.
"""

from __future__ import annotations

import numpy as np

from spade_tf.config import VAE_PROTOCOLS


def style_noise(seed: int, batch: int, z_dim: int) -> np.ndarray:
    """Standard-normal float32 [batch, z_dim], a function of ``seed`` only."""
    return np.random.default_rng(seed).standard_normal((batch, z_dim)).astype(np.float32)


def encoded_latent(mean, logvar, seed: int) -> np.ndarray:
    """The official test's latent of encoded photos: ``mean + exp(logvar / 2) * eps``."""
    mean = np.asarray(mean, np.float32)
    logvar = np.asarray(logvar, np.float32)
    return mean + np.exp(0.5 * logvar) * style_noise(seed, *mean.shape)


def check_vae_protocol(protocol: str) -> str:
    if protocol not in VAE_PROTOCOLS:
        raise ValueError(f"vae_protocol={protocol!r} is not valid; expected one of {list(VAE_PROTOCOLS)}.")
    return protocol
