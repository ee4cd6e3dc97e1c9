"""SPADE: spatially-adaptive (de)normalization."""

import keras
from keras import ops

from spade_tf.layers.conv2d import Conv2D
from spade_tf.layers.normalization import param_free_norm
from spade_tf.layers.resize import resize_nearest
from spade_tf.layers.segmap_reader import SegmapReader

# SPADE computes mlp_shared from a label index by lookups on feature maps of
# at least this many pixels, by a conv of the index's one-hot map below.
LOOKUP_MIN_PIXELS = 64 * 64


@keras.saving.register_keras_serializable(package="spade_tf")
class SPADE(keras.layers.Layer):
    """Spatially-adaptive normalization (Park et al. 2019, eq. 1).

    ``out = norm(x) * (1 + gamma) + beta`` where ``norm`` is a parameter-free
    normalization and ``gamma``, ``beta`` are computed from the label map:
    nearest-resize to x (PyTorch rule, labels are never interpolated) ->
    ``mlp_shared`` (conv to ``hidden`` + ReLU) -> ``mlp_gamma``, ``mlp_beta``.
    The ``1 + gamma`` form (as NVlabs' code) makes a zero ``gamma`` the
    identity scale. No spectral norm on these convs, as official.

    The label input is the one-hot segmap, or its ``LabelIndex`` (int ids
    with the edge folded in; needs ``classes``): then ``mlp_shared``, a conv
    of a one-hot map, is computed as what it is, a sum over the kernel's
    offsets of the kernel rows of each neighbour's class (the same numbers,
    summed in another order). It is most of SPADE's cost: on a 128x128
    COCO generator at ngf 32 about half the forward's FLOPs go to convolving
    the 184-channel map, and its weight gradient as much again.

    Args:
        channels: channels of x (the output).
        hidden: channels of the shared embedding (official, hard-coded 128).
        kernel_size: 3 or 5 (official 'spade...3x3' / '5x5').
        norm: "syncbatch", "batch" or "instance".
        kernel_initializer: conv initializer (default official Xavier 0.02).
        classes: label channels of the segmap (classes + don't care), for a
            ``LabelIndex`` input.
        instance_edges: whether the segmap ends with the edge channel (with
            ``classes``).

    Call args:
        x: [B, H, W, channels] features.
        segmap: [B, H', W', semantic_nc] one-hot label map (+ edge channel),
            or its int32 ``LabelIndex`` [B, H', W'].
        training: batch norm statistics mode.

    Returns:
        [B, H, W, channels].

    Reference: NVlabs/SPADE ``models/networks/normalization.py``.
    """

    def __init__(
        self, channels, hidden=128, kernel_size=3, norm="syncbatch",
        kernel_initializer=None, classes=None, instance_edges=False, **kwargs,
    ):
        super().__init__(**kwargs)
        if kernel_size not in (3, 5):
            raise ValueError(f"kernel_size={kernel_size!r} is not valid; expected 3 or 5.")
        if not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels={channels!r} is not valid; expected a positive int.")
        self.channels = channels
        self.classes = classes
        self.instance_edges = bool(instance_edges)
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
        if len(segmap_shape) == 3:  # a LabelIndex
            if self.classes is None:
                raise ValueError(f"{self.name}: a label index input needs classes (the segmap's label channels).")
            segmap_shape = (*segmap_shape, self.classes + int(self.instance_edges))
        seg_shape = (segmap_shape[0], x_shape[1], x_shape[2], segmap_shape[-1])
        self.mlp_shared.build(seg_shape)
        hidden_shape = self.mlp_shared.compute_output_shape(seg_shape)
        self.mlp_gamma.build(hidden_shape)
        self.mlp_beta.build(hidden_shape)

    def call(self, x, segmap, training=None):
        normalized = self.param_free_norm(x, training=training)
        size = (x.shape[1], x.shape[2])
        if len(segmap.shape) == 3:  # a LabelIndex
            index = resize_nearest(segmap[..., None], size)[..., 0]
            gamma, beta = self.modulation(None, shared=self.shared_from_index(index, normalized.dtype))
        else:
            gamma, beta = self.modulation(resize_nearest(segmap, size))
        return normalized * (1.0 + gamma) + beta

    def modulation(self, segmap, shared=None):
        """(gamma, beta) of a segmap already resized to x's size (SEAN's ACE
        blends these with its style gamma, beta), or of ``mlp_shared``'s output.

        ``mlp_gamma`` and ``mlp_beta`` read the same activations: they run as
        one convolution with both kernels side by side (each output channel
        is the same sum; on the 2-core CPU the fused weight and input
        gradients took about 0.6x the time of the two separate ones).
        """
        actv = ops.relu(self.mlp_shared(segmap) if shared is None else shared)
        dtype = actv.dtype
        kernel = ops.concatenate([ops.cast(self.mlp_gamma.kernel, dtype), ops.cast(self.mlp_beta.kernel, dtype)], -1)
        both = ops.conv(actv, kernel, strides=1, padding="same")
        both = both + ops.concatenate([ops.cast(self.mlp_gamma.bias, dtype), ops.cast(self.mlp_beta.bias, dtype)])
        # A split, not two slices: its gradient is one concatenation, where
        # each slice's is a zero-filled full-size tensor and the two are added.
        gamma, beta = ops.split(both, 2, axis=-1)
        return gamma, beta

    def shared_from_index(self, index, dtype):
        """``mlp_shared`` of the one-hot map whose ``LabelIndex`` is ``index`` [B, h, w].

        From ``LOOKUP_MIN_PIXELS`` up, per kernel offset the kernel rows of
        the neighbours' classes, summed; below it (where the conv costs
        little and the lookups' many small ops cost graph-tracing time), the
        conv of the segmap rebuilt from the index.
        """
        k = self.kernel_size
        classes = self.classes
        h, w = index.shape[1], index.shape[2]
        if h * w < LOOKUP_MIN_PIXELS:  # the segmap back (the sentinel row: a zero vector), convolved
            edges = index // (classes + 1)
            segmap = ops.one_hot(index - (classes + 1) * edges, classes + 1, dtype=dtype)[..., :classes]
            if self.instance_edges:
                segmap = ops.concatenate([segmap, ops.cast(edges, dtype)[..., None]], axis=-1)
            return self.mlp_shared(segmap)
        kernel = ops.reshape(ops.cast(self.mlp_shared.kernel, dtype), (k * k, classes + int(self.instance_edges), -1))
        # Row `classes`: an invalid id or the zero padding (a zero input vector).
        rows = ops.concatenate([kernel[:, :classes], ops.zeros_like(kernel[:, :1])], axis=1)
        if self.instance_edges:  # index = class + (classes + 1) * edge
            rows = ops.concatenate([rows, rows + kernel[:, classes:classes + 1]], axis=1)
        bias = ops.cast(self.mlp_shared.bias, dtype)
        p = k // 2
        padded = ops.pad(index, [[0, 0], [p, p], [p, p]], constant_values=classes)
        out = None
        # One table per offset, not one table of all offsets: each lookup's
        # gradient is then summed into its own small table, where lookups in
        # one table had their gradients concatenated (k*k feature maps) first.
        for offset in range(k * k):
            dy, dx = divmod(offset, k)
            rows_here = ops.take(rows[offset], padded[:, dy:dy + h, dx:dx + w], axis=0)
            out = rows_here if out is None else out + rows_here
        return out + bias

    def compute_output_shape(self, x_shape, segmap_shape):
        return x_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            channels=self.channels, hidden=self.hidden, kernel_size=self.kernel_size,
            norm=self.norm, classes=self.classes, instance_edges=self.instance_edges,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer)
            if self.kernel_initializer else None,
        )
        return config


@keras.saving.register_keras_serializable(package="spade_tf")
class LabelIndex(SegmapReader):
    """One-hot segmap -> SPADE's label index: int32 [B, H, W].

    Each pixel's label channel (the argmax of the ``classes`` label channels;
    ``classes`` where they are all zero: an id out of range, which the conv
    reads as a zero vector), plus ``classes + 1`` on instance edges. SPADE
    reads it as the segmap it encodes; it assumes what ``make_segmap``
    builds, a one-hot map with 0/1 edges. Args: ``SegmapReader``'s.
    """

    def call(self, segmap):
        labels = self.labels(segmap)
        index = ops.where(ops.max(labels, axis=-1) > 0.5,
                          ops.cast(ops.argmax(labels, axis=-1), "int32"), self.classes)
        if self.instance_edges:
            edges = ops.cast(self.edges(segmap) > 0.5, "int32")
            index = index + (self.classes + 1) * edges
        return index

    def compute_output_spec(self, segmap):
        return keras.KerasTensor(segmap.shape[:-1], dtype="int32")
