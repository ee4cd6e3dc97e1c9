"""SPADEResBlock: the generator's residual block."""

import keras
from keras import ops

from spade_tf.layers.clade import CLADE
from spade_tf.layers.conv2d import Conv2D
from spade_tf.layers.sean import ACE
from spade_tf.layers.spade import SPADE


@keras.saving.register_keras_serializable(package="spade_tf")
class SPADEResBlock(keras.layers.Layer):
    """Residual block with SPADE before each conv (Park et al. 2019, fig. 4).

    ``dx = conv_1(lrelu(norm_1(conv_0(lrelu(norm_0(x))))))``, ``fmiddle =
    min(in, out)``; the shortcut is the identity, or when ``in != out``
    ``conv_s(norm_s(x))`` (1x1, no bias, no activation). Spectral norm wraps
    conv_0, conv_1 and conv_s only, as official (not the SPADE convs).
    LeakyReLU slope 0.2.

    ``norm_mode="clade"`` replaces each SPADE by CLADE (class-wise affine
    lookup, official ``SPADELight``); with instance edges CLADE appends one
    channel, so conv_0, conv_1 and conv_s take one input channel more, as
    the official CLADE block.

    ``norm_mode="sean"`` replaces each SPADE by SEAN's ACE (official SEAN
    ``SPADEResnetBlock`` with ``ace_0``, ``ace_1``, ``ace_s``; here still
    ``norm_0``, ``norm_1``, ``norm_s``), which also takes the style codes;
    ``use_style`` is the official block's ``use_rgb`` (passed to its three
    ACEs). The rest of the block is unchanged, as official.

    Args:
        in_channels: channels of x.
        out_channels: channels of the output.
        spade_hidden: SPADE embedding channels (128).
        spade_kernel_size: 3 or 5.
        norm: SPADE param-free norm, "syncbatch", "batch" or "instance".
        spectral_norm: spectral-normalize conv_0, conv_1, conv_s.
        kernel_initializer: conv initializer (default official Xavier 0.02).
        norm_mode: "spade", "clade" or "sean".
        classes: CLADE's label channels (classes + don't-care); SEAN's
            segmap channels (one style code each); SPADE's label channels,
            for a ``LabelIndex`` input.
        instance_edges: CLADE: the class map carries the edge map; SPADE:
            the segmap (and its index) does.
        positional: CLADE-ICPE: the call takes positional-encoding maps.
        style_dim: SEAN: length of a style code.
        use_style: SEAN: whether the style codes modulate (official use_rgb).
        use_noise: SEAN: whether ACE adds its learned-scale noise.

    Call args:
        x: [B, H, W, in_channels]. segmap: [B, H', W', semantic_nc]; for
            CLADE the compact class map instead (``ClassMap``); for SPADE
            also its ``LabelIndex`` [B, H', W'].
        positional: [B, H', W', 2] CLADE-ICPE maps (with ``positional``).
        style_codes: [B, classes, style_dim] SEAN style codes (keyword).
        training: batch-norm and spectral-norm mode.

    Returns:
        [B, H, W, out_channels].

    Reference: NVlabs/SPADE ``models/networks/architecture.py``.
    """

    def __init__(
        self, in_channels, out_channels, spade_hidden=128, spade_kernel_size=3,
        norm="syncbatch", spectral_norm=True, kernel_initializer=None, norm_mode="spade",
        classes=None, instance_edges=False, positional=False, style_dim=512, use_style=True,
        use_noise=True, **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} is not valid; expected a positive int.")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.spade_hidden = spade_hidden
        self.spade_kernel_size = spade_kernel_size
        self.norm = norm
        self.spectral_norm = spectral_norm
        self.kernel_initializer = keras.initializers.get(kernel_initializer) if kernel_initializer else None
        if norm_mode not in ("spade", "clade", "sean"):
            raise ValueError(f"norm_mode={norm_mode!r} is not valid; expected 'spade', 'clade' or 'sean'.")
        if norm_mode in ("clade", "sean") and classes is None:
            raise ValueError(f"norm_mode={norm_mode!r} needs classes (the segmap's label channels).")
        self.norm_mode = norm_mode
        self.classes = classes
        self.instance_edges = bool(instance_edges)
        self.positional = bool(positional)
        self.style_dim = style_dim
        self.use_style = bool(use_style)
        self.use_noise = bool(use_noise)
        self.learned_shortcut = in_channels != out_channels
        middle = min(in_channels, out_channels)
        # CLADE with edges appends the edge conv's channel to its output.
        self.extra_channels = int(norm_mode == "clade" and self.instance_edges)

        def spade(channels, name):
            if norm_mode == "clade":
                return CLADE(
                    channels, classes, instance_edges=instance_edges, positional=positional, norm=norm,
                    kernel_initializer=self.kernel_initializer, name=name, dtype=self.dtype_policy,
                )
            if norm_mode == "sean":
                return ACE(
                    channels, classes, style_dim=style_dim, use_style=use_style, use_noise=use_noise,
                    hidden=spade_hidden, kernel_size=spade_kernel_size, norm=norm,
                    kernel_initializer=self.kernel_initializer, name=name, dtype=self.dtype_policy,
                )
            return SPADE(
                channels, hidden=spade_hidden, kernel_size=spade_kernel_size,
                norm=norm, kernel_initializer=self.kernel_initializer, classes=classes,
                instance_edges=instance_edges, name=name, dtype=self.dtype_policy,
            )

        def conv(filters, kernel_size, name, use_bias=True):
            return Conv2D(
                filters, kernel_size, padding=kernel_size // 2, use_bias=use_bias,
                spectral_norm=spectral_norm, kernel_initializer=self.kernel_initializer,
                name=name, dtype=self.dtype_policy,
            )

        self.conv_0 = conv(middle, 3, "conv_0")
        self.conv_1 = conv(out_channels, 3, "conv_1")
        self.norm_0 = spade(in_channels, "norm_0")
        self.norm_1 = spade(middle, "norm_1")
        if self.learned_shortcut:
            self.conv_s = conv(out_channels, 1, "conv_s", use_bias=False)
            self.norm_s = spade(in_channels, "norm_s")

    def build(self, x_shape, segmap_shape, positional_shape=None, style_codes_shape=None):
        if x_shape[-1] != self.in_channels:
            raise ValueError(
                f"{self.name}: expected {self.in_channels} input channels, got shape {x_shape}."
            )
        middle_shape = (*x_shape[:-1], min(self.in_channels, self.out_channels))
        widen = lambda shape: (*shape[:-1], shape[-1] + self.extra_channels)  # noqa: E731
        norm_args = {
            "clade": (segmap_shape, positional_shape), "sean": (segmap_shape, style_codes_shape),
        }.get(self.norm_mode, (segmap_shape,))
        self.norm_0.build(x_shape, *norm_args)
        self.conv_0.build(widen(x_shape))
        self.norm_1.build(middle_shape, *norm_args)
        self.conv_1.build(widen(middle_shape))
        if self.learned_shortcut:
            self.norm_s.build(x_shape, *norm_args)
            self.conv_s.build(widen(x_shape))

    def call(self, x, segmap, positional=None, style_codes=None, training=None):
        def norm(layer, h):
            if self.norm_mode == "clade":
                return layer(h, segmap, positional, training=training)
            if self.norm_mode == "sean":
                return layer(h, segmap, style_codes, training=training)
            return layer(h, segmap, training=training)

        if self.learned_shortcut:
            x_s = self.conv_s(norm(self.norm_s, x), training=training)
        else:
            x_s = x
        dx = self.conv_0(ops.leaky_relu(norm(self.norm_0, x), 0.2), training=training)
        dx = self.conv_1(ops.leaky_relu(norm(self.norm_1, dx), 0.2), training=training)
        return x_s + dx

    def compute_output_shape(self, x_shape, segmap_shape, positional_shape=None, style_codes_shape=None):
        return (*x_shape[:-1], self.out_channels)

    def get_config(self):
        config = super().get_config()
        config.update(
            in_channels=self.in_channels, out_channels=self.out_channels,
            spade_hidden=self.spade_hidden, spade_kernel_size=self.spade_kernel_size,
            norm=self.norm, spectral_norm=self.spectral_norm, norm_mode=self.norm_mode,
            classes=self.classes, instance_edges=self.instance_edges, positional=self.positional,
            style_dim=self.style_dim, use_style=self.use_style, use_noise=self.use_noise,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer)
            if self.kernel_initializer else None,
        )
        return config
