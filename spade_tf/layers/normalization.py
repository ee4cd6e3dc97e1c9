"""Parameter-free normalizations used by SPADE, the discriminator and encoder.

Both follow PyTorch's ``affine=False`` layers: no learned scale or shift, and
eps 1e-5 (Keras' default would be 1e-3).
"""

import keras
from keras import ops


def _num_replicas_in_sync():
    # The one TensorFlow-specific line in layers/: synchronized statistics only
    # exist on the TensorFlow backend (keras.ops.moments(synchronized=True)).
    if keras.backend.backend() != "tensorflow":
        return 1
    import tensorflow as tf

    return tf.distribute.get_strategy().num_replicas_in_sync


@keras.saving.register_keras_serializable(package="spade_tf")
class BatchNorm(keras.layers.Layer):
    """Batch normalization without affine terms, with PyTorch's statistics.

    Matches ``nn.BatchNorm2d(affine=False)`` / NVlabs' ``SynchronizedBatchNorm2d``:
    training normalizes with the batch mean and biased variance and updates
    ``moving_mean`` / ``moving_variance`` with PyTorch momentum 0.1 (Keras 0.9)
    using the *unbiased* variance, as PyTorch does; inference uses the moving
    statistics.

    Args:
        momentum: PyTorch-style momentum: ``new = (1 - m) * old + m * batch``.
        epsilon: added to the variance (PyTorch 1e-5).
        synchronized: reduce the statistics across replicas (TensorFlow backend
            under a ``tf.distribute`` strategy; elsewhere a no-op).

    Call args:
        inputs: [B, H, W, C]. training: batch or moving statistics.

    Returns:
        Tensor of the input's shape and dtype.
    """

    def __init__(self, momentum=0.1, epsilon=1e-5, synchronized=False, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum={momentum!r} is not valid; expected [0, 1].")
        if epsilon <= 0:
            raise ValueError(f"epsilon={epsilon!r} is not valid; expected > 0.")
        self.momentum = momentum
        self.epsilon = epsilon
        self.synchronized = synchronized

    def build(self, input_shape):
        shape = (input_shape[-1],)
        # "mean" aggregation: under tf.distribute every replica computes the
        # same (synchronized) update; mean keeps the mirrored copies equal.
        self.moving_mean = self.add_weight(
            name="moving_mean", shape=shape, initializer="zeros",
            trainable=False, autocast=False, aggregation="mean",
        )
        self.moving_variance = self.add_weight(
            name="moving_variance", shape=shape, initializer="ones",
            trainable=False, autocast=False, aggregation="mean",
        )

    def call(self, inputs, training=None):
        x = ops.cast(inputs, "float32")  # statistics in float32
        if training:
            synchronized = self.synchronized and keras.backend.backend() == "tensorflow"
            mean, variance = ops.moments(x, axes=(0, 1, 2), synchronized=synchronized)
            shape = ops.shape(x)
            count = ops.cast(shape[0] * shape[1] * shape[2], "float32")
            if synchronized:
                count = count * _num_replicas_in_sync()
            unbiased = variance * count / ops.maximum(count - 1.0, 1.0)
            m = self.momentum
            self.moving_mean.assign((1.0 - m) * self.moving_mean + m * mean)
            self.moving_variance.assign((1.0 - m) * self.moving_variance + m * unbiased)
        else:
            mean, variance = self.moving_mean, self.moving_variance
        outputs = (x - mean) * ops.rsqrt(variance + self.epsilon)
        return ops.cast(outputs, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            momentum=self.momentum, epsilon=self.epsilon, synchronized=self.synchronized
        )
        return config


@keras.saving.register_keras_serializable(package="spade_tf")
class InstanceNorm(keras.layers.Layer):
    """Instance normalization without affine terms (``nn.InstanceNorm2d``).

    Each sample and channel is normalized over H, W with its own mean and
    biased variance, in training and inference alike (PyTorch's default
    ``track_running_stats=False``).

    Args:
        epsilon: added to the variance (PyTorch 1e-5).

    Call args:
        inputs: [B, H, W, C].

    Returns:
        Tensor of the input's shape and dtype.
    """

    def __init__(self, epsilon=1e-5, **kwargs):
        super().__init__(**kwargs)
        if epsilon <= 0:
            raise ValueError(f"epsilon={epsilon!r} is not valid; expected > 0.")
        self.epsilon = epsilon

    def call(self, inputs):
        x = ops.cast(inputs, "float32")
        mean, variance = ops.moments(x, axes=(1, 2), keepdims=True)
        outputs = (x - mean) * ops.rsqrt(variance + self.epsilon)
        return ops.cast(outputs, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(epsilon=self.epsilon)
        return config


def param_free_norm(kind: str, name: str, dtype=None):
    """Builds the SPADE param-free norm: "syncbatch", "batch" or "instance"."""
    if kind == "instance":
        return InstanceNorm(name=name, dtype=dtype)
    if kind in ("batch", "syncbatch"):
        return BatchNorm(synchronized=kind == "syncbatch", name=name, dtype=dtype)
    raise ValueError(
        f"param_free_norm={kind!r} is not valid; expected one of "
        "['syncbatch', 'batch', 'instance']."
    )
