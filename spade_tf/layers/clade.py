"""CLADE: class-adaptive (de)normalization."""

import keras
from keras import ops

from spade_tf.layers.conv2d import Conv2D
from spade_tf.layers.normalization import BatchNorm, param_free_norm
from spade_tf.layers.resize import resize_nearest
from spade_tf.layers.segmap_reader import SegmapReader


@keras.saving.register_keras_serializable(package="spade_tf")
class CLADE(keras.layers.Layer):
    """Class-adaptive normalization (Tan et al. 2021, "Efficient Semantic Image Synthesis via
    Class-Adaptive Normalization", eq. 4).

    ``out = norm(x) * gamma[c] + beta[c]`` where ``c`` is each pixel's class
    (the official argmax of the nearest-resized label channels) and ``gamma``,
    ``beta`` are learned [classes, channels] tables: a lookup instead of
    SPADE's convolutions. Unlike SPADE the scale is ``gamma``, not
    ``1 + gamma``; official init: ``gamma ~ U[0, 1)``, ``beta = 0``.

    With ``positional`` (CLADE-ICPE, official ``--add_dist``), per-pixel maps
    ``d`` [.., 2] (each pixel's normalized offset from the centre of its
    class region) modulate the looked-up values: ``gamma * (1 + conv_w(d))``,
    ``beta * (1 + conv_b(d))`` with 1x1 convs to one channel. The official
    ``ClassAffine`` zero-initializes them, but the network's ``init_weights``
    runs afterwards and re-initializes every conv (Xavier, gain 0.02, zero
    bias), so they start as the other convs do.

    The label input is a compact class map (``ClassMap``: each pixel's class
    id, then with ``instance_edges`` the edge map) rather than the one-hot
    segmap: the argmax is taken once per generator, not once per layer on a
    resized copy of every label channel (on the ADE20K generator that copy
    and argmax were ~12% of the forward's time). With ``instance_edges``, a
    1x1 conv of the edge map is concatenated to the output as one more
    channel (so the following convs take ``channels + 1``), as official.

    Args:
        channels: channels of x.
        classes: rows of the tables: label channels of the segmap (classes +
            don't-care).
        instance_edges: whether the class map carries an edge channel.
        positional: whether the call takes ICPE maps.
        norm: "syncbatch", "batch" or "instance" (param-free).
        kernel_initializer: initializer of the 1x1 convs (default official
            Xavier 0.02).

    Call args:
        x: [B, H, W, channels].
        class_map: [B, H', W', 1 (+1 edge)] float: class ids (``ClassMap``;
            clipped to ``0..classes-1``), then the edge map.
        positional: [B, H', W', 2] ICPE maps (h, w offsets), with ``positional``.
        training: batch-norm statistics mode.

    Returns:
        [B, H, W, channels + int(instance_edges)].

    Reference: tzt101/CLADE ``models/networks/normalization.py``
    (``SPADELight``, ``ClassAffine.affine_embed``).
    """

    def __init__(self, channels, classes, instance_edges=False, positional=False, norm="syncbatch",
                 kernel_initializer=None, **kwargs):
        super().__init__(**kwargs)
        for name, value in (("channels", channels), ("classes", classes)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} is not valid; expected a positive int.")
        self.channels = channels
        self.classes = classes
        self.instance_edges = bool(instance_edges)
        self.positional = bool(positional)
        self.norm = norm
        self.kernel_initializer = keras.initializers.get(kernel_initializer) if kernel_initializer else None
        conv = dict(kernel_size=1, kernel_initializer=self.kernel_initializer, dtype=self.dtype_policy)
        self.param_free_norm = param_free_norm(norm, "param_free_norm", self.dtype_policy)
        if self.positional:
            self.dist_conv_w = Conv2D(1, name="dist_conv_w", **conv)
            self.dist_conv_b = Conv2D(1, name="dist_conv_b", **conv)
        if self.instance_edges:
            self.inst_conv = Conv2D(1, name="inst_conv", **conv)

    def build(self, x_shape, class_map_shape, positional_shape=None):
        expected = 1 + int(self.instance_edges)
        if class_map_shape[-1] != expected:
            raise ValueError(f"{self.name}: expected a class map of {expected} channels (ClassMap), "
                             f"got shape {class_map_shape}.")
        self.param_free_norm.build(x_shape)
        self.class_weight = self.add_weight(
            shape=(self.classes, self.channels), initializer=keras.initializers.RandomUniform(0.0, 1.0),
            name="class_weight")
        self.class_bias = self.add_weight(shape=(self.classes, self.channels), initializer="zeros",
                                          name="class_bias")
        map_shape = (x_shape[0], x_shape[1], x_shape[2])
        if self.positional:
            self.dist_conv_w.build((*map_shape, 2))
            self.dist_conv_b.build((*map_shape, 2))
        if self.instance_edges:
            self.inst_conv.build((*map_shape, 1))

    def class_ids(self, class_map, size):
        """[B, h, w] int32 class ids of the class map resized to ``size``, and its edge map."""
        class_map = resize_nearest(class_map, size)
        ids = ops.clip(ops.cast(class_map[..., 0], "int32"), 0, self.classes - 1)
        return ids, class_map[..., 1:] if self.instance_edges else None

    def call(self, x, class_map, positional=None, training=None):
        if self.positional and positional is None:
            raise ValueError(f"{self.name} was built with positional=True: pass the ICPE maps.")
        size = (x.shape[1], x.shape[2])
        ids, edges = self.class_ids(class_map, size)
        if not training and not self.positional and isinstance(self.param_free_norm, BatchNorm):
            out = self._folded_inference(x, ids)
        else:
            out = self._modulate(self.param_free_norm(x, training=training), ids, positional, size)
        if self.instance_edges:
            out = ops.concatenate([out, self.inst_conv(ops.cast(edges, out.dtype))], axis=-1)
        return out

    def _folded_inference(self, x, ids):
        """Inference batch norm folded into the class tables: ``x * scale[c] + shift[c]``,
        ``scale = gamma * inv_std``, ``shift = beta - mean * scale`` (two passes over x
        instead of four; equal up to float rounding)."""
        norm = self.param_free_norm
        inv_std = ops.rsqrt(norm.moving_variance + norm.epsilon)
        scale = ops.cast(self.class_weight, "float32") * inv_std
        shift = ops.cast(self.class_bias, "float32") - norm.moving_mean * scale
        out = ops.cast(x, "float32") * ops.take(scale, ids, axis=0) + ops.take(shift, ids, axis=0)
        return ops.cast(out, self.compute_dtype)

    def _modulate(self, normalized, ids, positional, size):
        dtype = normalized.dtype
        gamma = ops.take(ops.cast(self.class_weight, dtype), ids, axis=0)
        beta = ops.take(ops.cast(self.class_bias, dtype), ids, axis=0)
        if self.positional:
            dist = ops.cast(resize_nearest(positional, size), dtype)
            gamma = gamma * (1.0 + self.dist_conv_w(dist))
            beta = beta * (1.0 + self.dist_conv_b(dist))
        return normalized * gamma + beta

    def compute_output_shape(self, x_shape, class_map_shape, positional_shape=None):
        return (*x_shape[:-1], self.channels + int(self.instance_edges))

    def get_config(self):
        config = super().get_config()
        config.update(
            channels=self.channels, classes=self.classes, instance_edges=self.instance_edges,
            positional=self.positional, norm=self.norm,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer)
            if self.kernel_initializer else None,
        )
        return config


@keras.saving.register_keras_serializable(package="spade_tf")
class ClassMap(SegmapReader):
    """One-hot segmap -> CLADE's compact class map: [B, H, W, 1 (+1)] float.

    Channel 0 is each pixel's class, the argmax of the ``classes`` label
    channels (official ``torch.argmax(mask, 1)``; a zero vector is class 0);
    with ``instance_edges`` the segmap's last channel (the edge map) follows.
    Ids are small integers, exact in float32 (and in float16/bfloat16 up to 256).
    Args: ``SegmapReader``'s.
    """

    def call(self, segmap):
        ids = ops.cast(ops.argmax(self.labels(segmap), axis=-1), segmap.dtype)[..., None]
        if self.instance_edges:
            return ops.concatenate([ids, self.edges(segmap)[..., None]], axis=-1)
        return ids

    def compute_output_shape(self, segmap_shape):
        return (*segmap_shape[:-1], 1 + int(self.instance_edges))
