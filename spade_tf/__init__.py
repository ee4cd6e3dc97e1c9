"""spade-tf: SPADE / GauGAN semantic image synthesis for TensorFlow and Keras 3."""

from spade_tf.config import PRESETS, SPADEConfig, get_preset
from spade_tf.models import build_discriminator, build_encoder, build_generator, fold_spectral_norm

__version__ = "0.1.0"

__all__ = [
    "PRESETS", "SPADEConfig", "build_discriminator", "build_encoder", "build_generator",
    "fold_spectral_norm", "get_preset",
]
