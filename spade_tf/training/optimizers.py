"""Keras Adam with TensorFlow's fused update kernel (the TensorFlow train step's optimizer)."""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="spade_tf")
class FusedAdam(keras.optimizers.Adam):
    """``keras.optimizers.Adam`` whose dense float32 updates run as one ``ResourceApplyAdam``.

    The update is Keras' own, term for term (``m += (g - m)(1 - b1)``,
    ``v += (g^2 - v)(1 - b2)``, ``var -= m * alpha / (sqrt(v) + eps)`` with
    ``alpha = lr * sqrt(1 - b2^t) / (1 - b1^t)``), and the slots are Keras'
    (same names, so checkpoints of either load in the other). What changes is the
    graph: Keras builds about 38 ops per variable and recomputes ``b1^t``,
    ``b2^t`` for each; here they are computed once per step and each variable
    takes one op. For SPADE's 144 generator variables that is a third of the
    train step's graph, and the time to trace and optimize it.

    Sparse gradients (``IndexedSlices``: CLADE's class tables are gathered) are
    summed into a dense gradient first, as PyTorch's are. Keras' Adam squares
    them slice by slice, so a row gathered twice gets ``g1^2 + g2^2`` in its
    second moment instead of ``(g1 + g2)^2``; a class table row is gathered once
    per pixel of its class. amsgrad and other dtypes take Keras' path.
    """

    def _distributed_tf_update_step(self, distribution, grads_and_vars, learning_rate):
        if self.amsgrad:
            return super()._distributed_tf_update_step(distribution, grads_and_vars, learning_rate)
        local_step = tf.cast(self.iterations + 1, tf.float32)
        beta_1, beta_2 = tf.constant(self.beta_1, tf.float32), tf.constant(self.beta_2, tf.float32)
        beta_1_power, beta_2_power = tf.pow(beta_1, local_step), tf.pow(beta_2, local_step)
        epsilon = tf.constant(self.epsilon, tf.float32)

        def apply(var, grad, lr):
            if isinstance(grad, tf.IndexedSlices):
                grad = tf.convert_to_tensor(grad)  # duplicate indices summed
            if var.dtype != tf.float32:
                return self.update_step(grad, var, lr)
            index = self._get_variable_index(var)
            return tf.raw_ops.ResourceApplyAdam(
                var=var.handle, m=self._momentums[index].value.handle,
                v=self._velocities[index].value.handle,
                beta1_power=beta_1_power, beta2_power=beta_2_power, lr=tf.cast(lr, tf.float32),
                beta1=beta_1, beta2=beta_2, epsilon=epsilon, grad=tf.cast(grad, tf.float32))

        for grad, var in grads_and_vars:
            distribution.extended.update(var, apply, args=(grad, learning_rate), group=False)
