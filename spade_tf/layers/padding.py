"""Reflection padding (``nn.ReflectionPad2d``)."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="spade_tf")
class ReflectionPad2D(keras.layers.Layer):
    """Pads H and W by mirroring the border, without repeating the edge pixel
    (PyTorch ``nn.ReflectionPad2d``, NumPy ``mode="reflect"``).

    Args:
        padding: int, added on every side; must be smaller than H and W.

    Call args:
        inputs: [B, H, W, C].

    Returns:
        [B, H + 2p, W + 2p, C].
    """

    def __init__(self, padding=1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
            raise ValueError(f"padding={padding!r} is not valid; expected an integer >= 0.")
        self.padding = padding

    def call(self, inputs):
        p = self.padding
        if not p:
            return inputs
        return ops.pad(inputs, [[0, 0], [p, p], [p, p], [0, 0]], mode="reflect")

    def compute_output_shape(self, input_shape):
        def grow(n):
            return None if n is None else n + 2 * self.padding

        return (input_shape[0], grow(input_shape[1]), grow(input_shape[2]), input_shape[3])

    def get_config(self):
        config = super().get_config()
        config.update(padding=self.padding)
        return config
