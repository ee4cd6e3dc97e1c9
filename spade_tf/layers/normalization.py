"""Parameter-free normalizations used by SPADE, the discriminator and encoder.

Both follow PyTorch's ``affine=False`` layers: no learned scale or shift, and
eps 1e-5 (Keras' default would be 1e-3).
"""

import keras
from keras import ops


def _moments(x, axes, keepdims=False):
    """Two-pass mean and biased variance: the mean first, then the mean of the
    squared deviations from it.

    E[x^2] - E[x]^2 in float32 (Keras' torch and numpy ``ops.moments``, and
    its TensorFlow ``synchronized=True`` path) cancels catastrophically once
    |mean| / std reaches ~1e2; PyTorch's batch norm does not.
    """
    mean = ops.mean(x, axis=axes, keepdims=True)
    # d var / d mean is zero (deviations sum to zero), so no gradient through
    # it, as in tf.nn.moments.
    variance = ops.mean(ops.square(x - ops.stop_gradient(mean)), axis=axes, keepdims=keepdims)
    if not keepdims:
        mean = ops.squeeze(mean, axes)
    return mean, variance


def _normalize(x, axes, epsilon):
    """``(x - mean) * rsqrt(variance + epsilon)`` with x's own two-pass moments
    over ``axes``; returns it and the moments (mean, variance: no gradient).

    The gradient is written out, the batch-norm backward
    ``rsqrt(variance + epsilon) * (dy - mean(dy) - y * mean(dy * y))``: what
    automatic differentiation of the formula gives, with about half the
    full-size tensors. The moments are computed outside the custom-gradient
    function and passed in (JAX refuses to differentiate with respect to
    values a custom gradient closes over); their gradients are zeros, as
    the formula's are accounted for in the written-out one.
    """
    mean, variance = _moments(ops.stop_gradient(x), axes, keepdims=True)
    inv_std = ops.rsqrt(variance + epsilon)

    @ops.custom_gradient
    def normalize(x, mean, inv_std):
        outputs = (x - mean) * inv_std

        def grad(*args, upstream=None):
            dy = args[0] if upstream is None else upstream  # TF and JAX pass it first, torch by name
            dy_mean = ops.mean(dy, axis=axes, keepdims=True)
            projection = ops.mean(dy * outputs, axis=axes, keepdims=True)
            dx = (dy - dy_mean - outputs * projection) * inv_std
            return dx, ops.zeros_like(mean), ops.zeros_like(inv_std)

        return outputs, grad

    return normalize(x, mean, inv_std), mean, variance


def _replica_context():
    """The tf.distribute replica context when statistics must be synchronized
    across more than one replica, else None.

    The one TensorFlow-specific place in layers/ (with
    ``_cross_replica_moments``): synchronized statistics only exist on the
    TensorFlow backend.
    """
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    # None in a cross-replica context (e.g. a call in strategy.scope() outside
    # strategy.run): each call then sees the whole batch, as on one device.
    if context is None or context.num_replicas_in_sync == 1:
        return None
    return context


def _cross_replica_moments(x, axes, context):
    """Mean and biased variance of the union of all replicas' batches, and its
    element count.

    Two all-reduces, exact as the two-pass form: the sum with the count gives
    the global mean; then each replica's sum of squared deviations from that
    same mean. (Keras' one all-reduce of sums of x and x^2 loses the variance
    at large mean / std.) The all-reduce's gradient sums the replicas'
    gradients, so backpropagation sees the global batch too.
    """
    import tensorflow as tf

    local_count = tf.cast(tf.reduce_prod(tf.gather(tf.shape(x), axes)), x.dtype)
    # Sum and count in one all-reduce, so replicas with unequal batches (a
    # last partial batch) still weigh every element once.
    sum_and_count = tf.concat([tf.reduce_sum(x, axis=axes), local_count[None]], axis=0)
    sum_and_count = context.all_reduce(tf.distribute.ReduceOp.SUM, sum_and_count)
    total, count = sum_and_count[:-1], sum_and_count[-1]
    mean = total / count
    deviations = tf.reduce_sum(tf.square(x - tf.stop_gradient(mean)), axis=axes)
    variance = context.all_reduce(tf.distribute.ReduceOp.SUM, deviations) / count
    return mean, variance, count


@keras.saving.register_keras_serializable(package="spade_tf")
class BatchNorm(keras.layers.Layer):
    """Batch normalization without affine terms, with PyTorch's statistics.

    Matches ``nn.BatchNorm2d(affine=False)`` / NVlabs' ``SynchronizedBatchNorm2d``:
    training normalizes with the batch mean and biased variance and updates
    ``moving_mean`` / ``moving_variance`` with PyTorch momentum 0.1 (Keras 0.9)
    using the *unbiased* variance, as PyTorch does; inference uses the moving
    statistics. Moments are two-pass (also across replicas), so inputs with a
    large mean / std normalize as in PyTorch.

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
            context = _replica_context() if self.synchronized else None
            if context is None:
                outputs, mean, variance = _normalize(x, (0, 1, 2), self.epsilon)
                mean, variance = ops.reshape(mean, (-1,)), ops.reshape(variance, (-1,))
                shape = ops.shape(x)
                count = ops.cast(shape[0] * shape[1] * shape[2], "float32")
            else:
                mean, variance, count = _cross_replica_moments(x, [0, 1, 2], context)
                outputs = (x - mean) * ops.rsqrt(variance + self.epsilon)
            unbiased = variance * count / ops.maximum(count - 1.0, 1.0)
            m = self.momentum
            self.moving_mean.assign((1.0 - m) * self.moving_mean + m * mean)
            self.moving_variance.assign((1.0 - m) * self.moving_variance + m * unbiased)
        else:
            outputs = (x - self.moving_mean) * ops.rsqrt(self.moving_variance + self.epsilon)
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
        training: only selects how the gradient is computed (the output is
            the same).

    Returns:
        Tensor of the input's shape and dtype.
    """

    def __init__(self, epsilon=1e-5, **kwargs):
        super().__init__(**kwargs)
        if epsilon <= 0:
            raise ValueError(f"epsilon={epsilon!r} is not valid; expected > 0.")
        self.epsilon = epsilon

    def call(self, inputs, training=None):
        x = ops.cast(inputs, "float32")
        if training:  # the same numbers, with the written-out gradient
            outputs, _, _ = _normalize(x, (1, 2), self.epsilon)
        else:  # no custom-gradient op in inference (exported) graphs
            mean, variance = _moments(x, axes=(1, 2), keepdims=True)
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
