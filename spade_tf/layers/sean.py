"""SEAN: region-wise average pooling and ACE (semantic region-adaptive normalization)."""

import contextlib
import contextvars
import random
import zlib

import keras
from keras import ops

from spade_tf.layers.conv2d import Conv2D
from spade_tf.layers.initializers import get_initializer
from spade_tf.layers.resize import resize_nearest
from spade_tf.layers.spade import SPADE

# How ACE layers draw their noise inside ``seeded_noise`` (None: their own
# SeedGenerator, the default).
_NOISE_SEED = contextvars.ContextVar("spade_tf_ace_noise_seed", default=None)


@contextlib.contextmanager
def seeded_noise(seed):
    """Within this context every ACE draws its noise from ``seed``, statelessly.

    ``seed``: an int or an int32 scalar tensor (a serving graph's input).
    Each layer draws ``tf.random.stateless_normal`` from ``(seed, crc32 of
    its path)``, so one seed gives the same noise in every call, graph or
    eager (the exported SavedModel and the Keras generator agree), and the
    layers' noises differ from each other as the official independent
    ``randn`` calls do. A negative seed means no noise: a Python int < 0 adds
    no op at all (the TFLite graphs, which have no seeded RNG op), a tensor
    < 0 multiplies the noise by zero. Layers with ``use_noise=False`` add none
    either way. It applies when a layer is called (or a function traced):
    a function traced outside it keeps its layers' own seed generators.
    TensorFlow backend only (the exported graphs).
    """
    token = _NOISE_SEED.set(seed)
    try:
        yield
    finally:
        _NOISE_SEED.reset(token)


def _seeded_normal(shape, seed, salt: int, dtype):
    """Standard-normal noise from ``(seed, salt)``; zeros for a negative tensor seed.

    Only inside ``seeded_noise``, which the exported (TensorFlow) graphs set:
    the TensorFlow op lives in ``spade_tf.export.noise`` so that the layers
    import no TensorFlow.
    """
    from spade_tf.export.noise import stateless_normal

    return stateless_normal(shape, seed, salt, dtype)


def region_average(features, segmap):
    """Per-region mean of features: [B, H, W, C], [B, H', W', L] -> [B, L, C].

    As the official ``Zencoder.forward``: the segmap is nearest-resized to the
    features' size (PyTorch rule), each channel's region is where that
    channel is non-zero (``segmap.bool()``; regions may overlap, e.g. the
    instance-edge channel, and then a pixel counts in each), the code of a
    region is the mean of the features over its pixels, and a class absent
    from the resized map gets zeros (the official ``torch.zeros`` it never
    writes). One einsum over the mask instead of the official loops over
    batch and classes; sums in float32, so mixed precision does not add up
    16k float16 values.
    """
    segmap = resize_nearest(segmap, (features.shape[1], features.shape[2]))
    masks = ops.cast(ops.not_equal(segmap, 0), "float32")
    sums = ops.einsum("bhwl,bhwc->blc", masks, ops.cast(features, "float32"))
    area = ops.sum(masks, axis=(1, 2))  # [B, L] pixels per region
    # Absent regions: the sum is 0 and the area clamped to 1, so the code is 0.
    means = sums / ops.maximum(area, 1.0)[..., None]
    return ops.cast(means, features.dtype)


def region_owners(segmap):
    """[B, H, W, L] -> the same shape, 1 where a channel owns the pixel, else 0.

    The official ACE fills its style map class after class with
    ``masked_scatter_`` over ``segmap.bool()[i, j]``, so where regions overlap
    (the instance-edge channel over a class channel) the last non-zero
    channel wins. For a one-hot map this is the map itself (binarized).
    """
    masks = ops.cast(ops.not_equal(segmap, 0), "float32")
    # Non-zero channels after channel j: total - inclusive cumulative count.
    later = ops.sum(masks, axis=-1, keepdims=True) - ops.cumsum(masks, axis=-1)
    return masks * ops.cast(ops.equal(later, 0.0), "float32")


@keras.saving.register_keras_serializable(package="spade_tf")
class RegionAverage(keras.layers.Layer):
    """Region-wise average pooling (``region_average``) as a layer.

    Call args:
        features: [B, H, W, C]. segmap: [B, H', W', L] label map.

    Returns:
        [B, L, C] per-region means (zeros for absent regions).

    Reference: ZPdesu/SEAN ``models/networks/architecture.py`` (``Zencoder``).
    """

    def call(self, features, segmap):
        return region_average(features, segmap)

    def compute_output_shape(self, features_shape, segmap_shape):
        return (features_shape[0], segmap_shape[-1], features_shape[-1])


def _per_class(initializer):
    """Initializer of a [L, in, out] stack of dense kernels: each class's
    [in, out] slice drawn as one official ``nn.Linear(in, out)`` weight (the
    fans of one layer, not of the stack), each with its own seed.

    A Keras initializer with an int seed (and an unseeded one, which picks an
    int seed once) draws the same values on every call: class i uses that
    seed + i, and an unseeded initializer a fresh start seed per call (from
    Python's ``random``, which ``keras.utils.set_random_seed`` seeds), so two
    ACE layers do not start with the same fc weights.
    """
    base = keras.initializers.get(initializer)

    def init(shape, dtype=None):
        config = base.get_config()
        if "seed" not in config:  # not random (e.g. zeros): the same for every class
            return ops.stack([base(shape[1:], dtype=dtype)] * shape[0])
        if isinstance(getattr(base, "seed", None), keras.random.SeedGenerator):
            return ops.stack([base(shape[1:], dtype=dtype) for _ in range(shape[0])])
        start = base.seed if config["seed"] is not None else random.randint(1, 10**9)
        return ops.stack([
            base.__class__.from_config({**config, "seed": start + i})(shape[1:], dtype=dtype)
            for i in range(shape[0])
        ])

    return init


@keras.saving.register_keras_serializable(package="spade_tf")
class ACE(SPADE):
    """ACE, SEAN's semantic region-adaptive normalization (Zhu et al. 2020,
    "SEAN: Image Synthesis with Semantic Region-Adaptive Normalization", fig. 2).

    As the official ``ACE.forward``:

    1. noise: ``x + n * noise_var`` with ``n ~ N(0, 1)`` one value per pixel
       (shared by the channels: official ``randn(B, W, H, 1)``) and
       ``noise_var`` a learned per-channel scale (zeros at init); added in
       training and inference alike, then the param-free norm (``seeded_noise``
       draws it from a given seed instead, as the exported graphs do);
    2. style (``use_style``, official ``use_rgb``): each region's style code
       [style_dim] goes through its class's dense layer and a ReLU
       (official ``F.relu(fc_mu{j}(style_codes[i][j]))``), and is broadcast
       over the pixels of that region of the nearest-resized segmap (pixels
       of no region get zeros; where regions overlap the last channel wins);
       ``conv_gamma`` / ``conv_beta`` (3x3, style_dim -> channels) map that
       style map to ``gamma_s``, ``beta_s``;
    3. the SPADE modulation of the same segmap (``mlp_shared`` -> ReLU ->
       ``mlp_gamma`` / ``mlp_beta``, the official inner ``Spade``);
    4. ``gamma = a * gamma_s + (1 - a) * gamma_spade`` with
       ``a = sigmoid(blending_gamma)`` (a learned scalar, zero at init, so
       a = 0.5), the same for beta with ``blending_beta``;
       ``out = norm(x) * (1 + gamma) + beta``.

    Without ``use_style`` only SPADE modulates (official ``use_rgb=False``,
    SEAN's last block); ``blending_gamma`` / ``blending_beta`` are still
    created, unused, as official (its parameter count includes them).

    The official per-class ``nn.Linear`` layers ``fc_mu0..fc_mu18`` are one
    stacked kernel ``fc_mu_kernel`` [classes, style_dim, style_dim] (class j's
    slice is ``fc_mu{j}.weight`` transposed) and ``fc_mu_bias``
    [classes, style_dim], applied with one einsum. Official code hard-codes
    19 of them; here there is one per segmap channel. Official init (its
    ``init_weights``): Xavier(0.02) on each fc and conv, zero biases;
    ``noise_var``, ``blending_*`` zeros. The official ACE's inner ``Spade``
    also holds a param-free norm it never calls; it is not built here.

    Key map from an official state dict (``<block>.ace_{0,1,s}.`` prefix ->
    ``<block>/norm_{0,1,s}/``): ``Spade.mlp_shared.0`` -> ``mlp_shared``,
    ``Spade.mlp_gamma``/``mlp_beta`` -> same names, ``fc_mu{j}.weight``.T ->
    ``fc_mu_kernel[j]``, ``fc_mu{j}.bias`` -> ``fc_mu_bias[j]``,
    ``conv_gamma``/``conv_beta``/``blending_*``/``noise_var`` -> same names,
    ``param_free_norm.running_*`` -> ``param_free_norm/moving_*``.

    Args:
        channels: channels of x.
        classes: segmap channels, one style code each.
        style_dim: length of a style code (official 512).
        use_style: whether the style codes modulate (official ``use_rgb``).
        use_noise: whether to add the noise (False for deterministic parity
            checks; ``set_noise`` switches it in a whole model).
        seed: int seed of the noise, or None.
        hidden, kernel_size: the SPADE convs (official 128, 3x3).
        norm: param-free norm (official ACE: always synchronized batch norm).
        kernel_initializer: conv and fc initializer (default Xavier 0.02).

    Call args:
        x: [B, H, W, channels].
        segmap: [B, H', W', classes] label map.
        style_codes: [B, classes, style_dim] (with ``use_style``).
        training: batch-norm statistics mode.

    Returns:
        [B, H, W, channels].

    Reference: ZPdesu/SEAN ``models/networks/normalization.py`` (``ACE``).
    """

    def __init__(self, channels, classes, style_dim=512, use_style=True, use_noise=True, seed=None,
                 hidden=128, kernel_size=3, norm="syncbatch", kernel_initializer=None, **kwargs):
        super().__init__(channels, hidden=hidden, kernel_size=kernel_size, norm=norm,
                         kernel_initializer=kernel_initializer, **kwargs)
        for name, value in (("classes", classes), ("style_dim", style_dim)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} is not valid; expected a positive int.")
        self.classes = classes
        self.style_dim = style_dim
        self.use_style = bool(use_style)
        self.use_noise = bool(use_noise)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed, name="noise_seed")
        if self.use_style:
            # 3x3 whatever the SPADE kernel: the official ACE's own config
            # string is the hard-coded 'spadesyncbatch3x3'.
            conv = dict(kernel_size=3, padding=1, kernel_initializer=self.kernel_initializer,
                        dtype=self.dtype_policy)
            self.conv_gamma = Conv2D(channels, name="conv_gamma", **conv)
            self.conv_beta = Conv2D(channels, name="conv_beta", **conv)

    def build(self, x_shape, segmap_shape, style_codes_shape=None):
        if segmap_shape[-1] != self.classes:
            raise ValueError(f"{self.name}: expected a segmap of {self.classes} channels, "
                             f"got shape {segmap_shape}.")
        super().build(x_shape, segmap_shape)
        self.noise_var = self.add_weight(shape=(self.channels,), initializer="zeros", name="noise_var")
        self.blending_gamma = self.add_weight(shape=(1,), initializer="zeros", name="blending_gamma")
        self.blending_beta = self.add_weight(shape=(1,), initializer="zeros", name="blending_beta")
        if not self.use_style:
            return
        expected = f"[B, {self.classes}, {self.style_dim}]"
        if style_codes_shape is None:
            raise ValueError(f"{self.name} has use_style=True: pass the style codes {expected}.")
        if tuple(style_codes_shape[1:]) != (self.classes, self.style_dim):
            raise ValueError(f"{self.name}: expected style codes of shape {expected}, got {style_codes_shape}.")
        self.fc_mu_kernel = self.add_weight(
            shape=(self.classes, self.style_dim, self.style_dim),
            initializer=_per_class(self.kernel_initializer or get_initializer()),
            name="fc_mu_kernel")
        self.fc_mu_bias = self.add_weight(
            shape=(self.classes, self.style_dim), initializer="zeros", name="fc_mu_bias")
        style_map_shape = (x_shape[0], x_shape[1], x_shape[2], self.style_dim)
        self.conv_gamma.build(style_map_shape)
        self.conv_beta.build(style_map_shape)

    def call(self, x, segmap, style_codes=None, training=None):
        if self.use_style and style_codes is None:
            raise ValueError(f"{self.name} has use_style=True: pass the style codes.")
        seed = _NOISE_SEED.get()
        if self.use_noise and not (isinstance(seed, int) and seed < 0):
            shape = ops.shape(x)
            noise_shape = (shape[0], shape[1], shape[2], 1)
            if seed is None:
                noise = keras.random.normal(noise_shape, seed=self.seed_generator)
            else:
                salt = zlib.crc32(self.path.encode()) & 0x7FFFFFFF
                noise = _seeded_normal(noise_shape, seed, salt, "float32")
            x = x + ops.cast(noise, x.dtype) * self.noise_var
        normalized = self.param_free_norm(x, training=training)
        segmap = resize_nearest(segmap, (x.shape[1], x.shape[2]))
        gamma, beta = self.modulation(segmap)
        if self.use_style:
            gamma_style, beta_style = self.style_modulation(segmap, style_codes)
            alpha_gamma = ops.sigmoid(self.blending_gamma)
            alpha_beta = ops.sigmoid(self.blending_beta)
            gamma = alpha_gamma * gamma_style + (1.0 - alpha_gamma) * gamma
            beta = alpha_beta * beta_style + (1.0 - alpha_beta) * beta
        return normalized * (1.0 + gamma) + beta

    def style_modulation(self, segmap, style_codes):
        """(gamma, beta) from the style codes over a segmap resized to x's size."""
        dtype = self.compute_dtype
        styles = ops.einsum("bld,lde->ble", ops.cast(style_codes, dtype), self.fc_mu_kernel)
        styles = ops.relu(styles + self.fc_mu_bias)  # [B, classes, style_dim]
        owners = ops.cast(region_owners(segmap), dtype)
        style_map = ops.einsum("bhwl,ble->bhwe", owners, styles)  # official middle_avg
        return self.conv_gamma(style_map), self.conv_beta(style_map)

    def compute_output_shape(self, x_shape, segmap_shape, style_codes_shape=None):
        return x_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            classes=self.classes, style_dim=self.style_dim, use_style=self.use_style,
            use_noise=self.use_noise, seed=self.seed,
        )
        return config


def set_noise(layer, enabled):
    """Turns ACE's noise on or off in every SEAN layer of a model or layer.

    Sets ``use_noise`` on each ACE and on each SEAN ``SPADEResBlock`` (whose
    config rebuilds its ACEs, so the setting is also saved). Eager calls see
    it at once; a ``tf.function`` or ``jax.jit`` traced before keeps what it
    traced. For deterministic outputs, e.g. to compare with another
    framework or backend (the noise is random by design, in inference too).

    Returns:
        The number of ACE layers changed.
    """
    changed = 0
    for sub in layer._flatten_layers(include_self=True):
        if isinstance(sub, ACE):
            changed += 1
        if isinstance(sub, ACE) or getattr(sub, "norm_mode", None) == "sean":
            sub.use_noise = bool(enabled)
    return changed
