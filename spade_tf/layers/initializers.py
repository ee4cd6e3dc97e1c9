"""Weight initialisation as NVlabs ``BaseNetwork.init_weights``.

Official default: ``init_type='xavier'``, ``init_variance=0.02``, i.e.
``xavier_normal_(w, gain=0.02)`` on every conv and linear weight, biases 0.
Xavier normal has std ``gain * sqrt(2 / (fan_in + fan_out))``, which is Keras'
``VarianceScaling(gain**2, "fan_avg", "untruncated_normal")``.
"""

import keras

from spade_tf.config import INIT_TYPES


def get_initializer(init_type: str = "xavier", gain: float = 0.02, seed=None):
    """Returns the Keras initializer for an official ``init_type``.

    Args:
        init_type: "xavier" (default), "xavier_uniform", "normal", "kaiming"
            or "orthogonal".
        gain: ``init_variance`` of the official options (the std for
            "normal", the gain for "xavier" and "orthogonal").
        seed: optional int seed.
    """
    if init_type == "xavier":
        return keras.initializers.VarianceScaling(
            gain**2, "fan_avg", "untruncated_normal", seed=seed
        )
    if init_type == "xavier_uniform":  # official ignores the gain here
        return keras.initializers.GlorotUniform(seed=seed)
    if init_type == "normal":
        return keras.initializers.RandomNormal(0.0, gain, seed=seed)
    if init_type == "kaiming":  # kaiming_normal_(a=0, mode='fan_in')
        return keras.initializers.VarianceScaling(
            2.0, "fan_in", "untruncated_normal", seed=seed
        )
    if init_type == "orthogonal":
        return keras.initializers.Orthogonal(gain=gain, seed=seed)
    raise ValueError(f"init_type={init_type!r} is not valid; expected one of {list(INIT_TYPES)}.")
