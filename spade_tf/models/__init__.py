"""SPADE networks: generator, discriminator, encoder, VGG19 features."""

from spade_tf.models.discriminator import AvgPoolExcludePad, NLayerDiscriminator, build_discriminator
from spade_tf.models.encoder import build_encoder
from spade_tf.models.generator import build_generator
from spade_tf.models.sean_encoder import build_sean_encoder, build_sean_network, encode_styles
from spade_tf.models.spectral import fold_spectral_norm
from spade_tf.models.vgg19 import VGG19Features, build_vgg19, load_torchvision_state_dict

__all__ = [
    "AvgPoolExcludePad", "NLayerDiscriminator", "VGG19Features", "build_discriminator",
    "build_encoder", "build_generator", "build_sean_encoder", "build_sean_network", "build_vgg19",
    "encode_styles", "fold_spectral_norm", "load_torchvision_state_dict",
]
