"""spade-tf: SPADE / GauGAN semantic image synthesis for TensorFlow and Keras 3.

``spade_tf.config`` imports no TensorFlow or Keras; the network builders are
imported on first use (``spade_tf.build_generator``), so that the entry
points' ``--help`` and flag definitions stay fast.
"""

from spade_tf.utils.lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "PRESETS": "config", "SPADEConfig": "config", "get_preset": "config",
    "build_discriminator": "models", "build_encoder": "models", "build_generator": "models",
    "build_sean_encoder": "models", "build_sean_network": "models",
    "fold_spectral_norm": "models",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
