"""SPADE: spatially-adaptive (de)normalization."""

import keras
from keras import ops

from spade_tf.layers.conv2d import Conv2D
from spade_tf.layers.normalization import param_free_norm
from spade_tf.layers.resize import resize_nearest


@keras.saving.register_keras_serializable(package="spade_tf")
class SPADE(keras.layers.Layer):
    """Spatially-adaptive normalization (Park et al. 2019, eq. 1).

    ``out = norm(x) * (1 + gamma) + beta`` where ``norm`` is a parameter-free
    normalization and ``gamma``, ``beta`` are computed from the label map:
    nearest-resize to x (PyTorch rule, labels are never interpolated) ->
    ``mlp_shared`` (conv to ``hidden`` + ReLU) -> ``mlp_gamma``, ``mlp_beta``.
    The ``1 + gamma`` form (as NVlabs' code) makes a zero ``gamma`` the
    identity scale. No spectral norm on these convs, as official.

    Args:
        channels: channels of x (the output).
        hidden: channels of the shared embedding (official, hard-coded 128).
        kernel_size: 3 or 5 (official 'spade...3x3' / '5x5').
        norm: "syncbatch", "batch" or "instance".
        kernel_initializer: conv initializer (default official Xavier 0.02).

    Call args:
        x: [B, H, W, channels] features.
        segmap: [B, H', W', semantic_nc] one-hot label map (+ edge channel).
        training: batch norm statistics mode.

    Returns:
        [B, H, W, channels].

    Reference: NVlabs/SPADE ``models/networks/normalization.py``.
    """

    def __init__(
        self, channels, hidden=128, kernel_size=3, norm="syncbatch",
        kernel_initializer=None, **kwargs,
    ):
        super().__init__(**kwargs)
        if kernel_size not in (3, 5):
            raise ValueError(f"kernel_size={kernel_size!r} is not valid; expected 3 or 5.")
        if not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels={channels!r} is not valid; expected a positive int.")
        self.channels = channels
        self.hidden = hidden
        self.kernel_size = kernel_size
        self.norm = norm
        self.kernel_initializer = keras.initializers.get(kernel_initializer) if kernel_initializer else None
        conv = dict(
            kernel_size=kernel_size, padding=kernel_size // 2,
            kernel_initializer=self.kernel_initializer, dtype=self.dtype_policy,
        )
        self.param_free_norm = param_free_norm(norm, "param_free_norm", self.dtype_policy)
        self.mlp_shared = Conv2D(hidden, name="mlp_shared", **conv)
        self.mlp_gamma = Conv2D(channels, name="mlp_gamma", **conv)
        self.mlp_beta = Conv2D(channels, name="mlp_beta", **conv)

    def build(self, x_shape, segmap_shape):
        self.param_free_norm.build(x_shape)
        seg_shape = (segmap_shape[0], x_shape[1], x_shape[2], segmap_shape[-1])
        self.mlp_shared.build(seg_shape)
        hidden_shape = self.mlp_shared.compute_output_shape(seg_shape)
        self.mlp_gamma.build(hidden_shape)
        self.mlp_beta.build(hidden_shape)

    def call(self, x, segmap, training=None):
        normalized = self.param_free_norm(x, training=training)
        gamma, beta = self.modulation(resize_nearest(segmap, (x.shape[1], x.shape[2])))
        return normalized * (1.0 + gamma) + beta

    def modulation(self, segmap):
        """(gamma, beta) of a segmap already resized to x's size (SEAN's ACE
        blends these with its style gamma, beta)."""
        actv = ops.relu(self.mlp_shared(segmap))
        return self.mlp_gamma(actv), self.mlp_beta(actv)

    def compute_output_shape(self, x_shape, segmap_shape):
        return x_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            channels=self.channels, hidden=self.hidden, kernel_size=self.kernel_size,
            norm=self.norm,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer)
            if self.kernel_initializer else None,
        )
        return config
