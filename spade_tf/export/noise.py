"""Seeded noise for SEAN's ACE in the exported (TensorFlow) graphs (``layers.sean.seeded_noise``)."""

import tensorflow as tf


def stateless_normal(shape, seed, salt: int, dtype):
    """Standard-normal noise from ``(seed, salt)``; zeros for a negative tensor seed."""
    seed = tf.cast(seed, tf.int32)
    noise = tf.random.stateless_normal(shape, seed=tf.stack([seed, tf.constant(salt, tf.int32)]), dtype=dtype)
    return noise * tf.cast(seed >= 0, dtype)
