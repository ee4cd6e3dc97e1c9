"""The VAE reparameterization sampler."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="spade_tf")
class Reparameterize(keras.layers.Layer):
    """Samples ``z = mean + exp(0.5 * logvar) * eps``, ``eps ~ N(0, I)``.

    The batch size comes from ``mean`` at call time (no fixed batch size, unlike
    the keras-io GauGAN sampler). Randomness from a ``SeedGenerator``.

    Args:
        seed: int seed of the noise, or None.

    Call args:
        mean, logvar: [B, z_dim].

    Returns:
        [B, z_dim] latent.
    """

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, mean, logvar):
        eps = keras.random.normal(ops.shape(mean), dtype=mean.dtype, seed=self.seed_generator)
        return mean + ops.exp(0.5 * logvar) * eps

    def compute_output_shape(self, mean_shape, logvar_shape):
        return mean_shape

    def get_config(self):
        config = super().get_config()
        config.update(seed=self.seed)
        return config
