"""SPADE building blocks (``keras.ops`` only: any Keras backend)."""

from spade_tf.layers.clade import CLADE, ClassMap
from spade_tf.layers.conv2d import Conv2D
from spade_tf.layers.initializers import fresh_initializer, get_initializer
from spade_tf.layers.normalization import BatchNorm, InstanceNorm, param_free_norm
from spade_tf.layers.padding import ReflectionPad2D
from spade_tf.layers.resize import NearestResize, Upsample2x, resize_nearest, torch_nearest_indices
from spade_tf.layers.sampling import Reparameterize
from spade_tf.layers.sean import ACE, RegionAverage, region_average, seeded_noise, set_noise
from spade_tf.layers.spade import SPADE, LabelIndex
from spade_tf.layers.spade_resblock import SPADEResBlock

__all__ = [
    "ACE", "BatchNorm", "CLADE", "ClassMap", "Conv2D", "InstanceNorm", "LabelIndex", "NearestResize", "ReflectionPad2D",
    "RegionAverage", "Reparameterize", "SPADE", "SPADEResBlock", "Upsample2x", "fresh_initializer", "get_initializer",
    "param_free_norm", "region_average", "resize_nearest", "seeded_noise", "set_noise", "torch_nearest_indices",
]
