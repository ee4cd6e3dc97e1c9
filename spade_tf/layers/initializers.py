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


def fresh_initializer(initializer):
    """A new draw of an unseeded initializer: the same distribution, another seed.

    A Keras initializer made with ``seed=None`` picks one seed when it is
    created and reuses it for every call, so one instance shared by several
    layers gives every weight of the same shape the same values (SPADE's
    ``mlp_gamma`` equal to its ``mlp_beta``, ``G_middle_0`` equal to
    ``G_middle_1``, the encoder's ``fc_mu`` equal to ``fc_var``), where the
    official ``init_weights`` draws each weight independently. Layers call
    this when they create a weight; a seeded initializer is returned as is
    (its caller asked for those values).
    """
    initializer = keras.initializers.get(initializer)
    config = initializer.get_config()
    if "seed" not in config or config["seed"] is not None:
        return initializer
    return initializer.__class__.from_config(config)
