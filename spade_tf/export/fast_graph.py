"""The generator's inference forward, rewritten to do less work with the same numbers.

``FastGenerator`` computes what ``generator(inputs, training=False)`` computes
(float32 rounding aside), from label ids instead of the one-hot ``segmap``:

* SPADE's ``mlp_shared`` (and the first ``fc`` conv of non-VAE generators) is
  a 3x3 conv of a one-hot map: at each pixel, the sum over the 9 kernel
  offsets of the kernel row of the neighbour's class. That is 9 table lookups
  (a ``GATHER`` per offset, each in its own table, and a sum) instead of
  ``9 * semantic_nc * hidden`` multiply-adds per pixel, a quarter of an ADE20K
  generator's FLOPs. The instance-edge channel is folded into the index: a
  table row per (class, edge) pair holds ``kernel[class] + kernel[edge]``, so
  edges cost nothing at run time. Zero padding is a sentinel index whose row
  is zeros, and ids outside the classes (which ``tf.one_hot`` encodes as all
  zeros) map to the same row; the conv bias is added to every row of the
  centre offset's table.
* Inference batch norm is folded into the modulation:
  ``(x - m) / sqrt(v + eps) * (1 + gamma) + beta = x * scale + shift`` with
  ``scale = (1 + gamma) * inv_std`` and ``shift = beta - m * scale``. Both are
  affine in SPADE's hidden activation, so the fold lives in the weights:
  ``scale`` and ``shift`` are one conv each (kernels ``Wg * inv_std`` and
  ``Wb - m * inv_std * Wg``), and at run time each element costs one
  multiply-add instead of five ops.
* The learned shortcut's 1x1 ``conv_s`` (no bias) is linear, so
  ``conv_s(x * scale + shift) = conv_s(x * scale) + shift'`` with ``conv_s``
  folded into the shift conv, which then outputs ``out_channels`` (half of
  ``in_channels`` in the up blocks) instead of ``in_channels``.
* Spectral norm is folded (``Conv2D.folded_kernel``); everything else (label
  resizing with PyTorch's floor rule, nearest 2x upsampling, LeakyReLU 0.2,
  the learned shortcut, tanh) is the generator's own computation.

CLADE generators (``norm_mode="clade"``) fold the same way with nothing to
convolve: inference batch norm and the class-wise affine become two tables
``scale[c] = gamma[c] * inv_std`` and ``shift[c] = beta[c] - m * scale[c]``
looked up per pixel; with CLADE-ICPE the looked-up rows are modulated as
official (``gamma * (1 + conv_w(d))``, ``beta * (1 + conv_b(d))``), and with
instance edges the edge conv's channel is appended.

The weights are copied when the object is built: later changes to the Keras
generator are not seen. Supported: batch-norm SPADE or CLADE
(``param_free_norm_G`` "batch" or "syncbatch"), ``spade_kernel_size`` 3 for
SPADE, float32 compute; ``unsupported_reason`` names what else is not.

Reference: NVlabs/SPADE ``models/networks/{generator,architecture,normalization}.py``;
tzt101/CLADE ``models/networks/normalization.py``.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from spade_tf.config import SPADEConfig
from spade_tf.layers.resize import resize_nearest
from spade_tf.segmap import DONTCARE_ID

LEAKY_SLOPE = 0.2  # NVlabs' F.leaky_relu(x, 2e-1) before every conv and conv_img


def block_names(config: SPADEConfig) -> list[tuple[str, bool]]:
    """The generator's residual blocks in call order, each with whether a 2x
    upsampling comes before it (as ``build_generator``)."""
    names = [("head_0", False), ("G_middle_0", True),
             ("G_middle_1", config.num_upsampling_layers in ("more", "most"))]
    ups = 5 if config.num_upsampling_layers == "most" else 4
    return names + [(f"up_{i}", True) for i in range(ups)]


def unsupported_reason(generator: keras.Model, config: SPADEConfig) -> str | None:
    """Why ``FastGenerator`` cannot mirror ``generator``, or None when it can."""
    if config.norm_mode == "sean":
        return ("norm_mode='sean': ACE's style path (per-region style codes through per-class dense layers "
                "and convs) and its noise are not written in the fast path")
    if config.param_free_norm_G not in ("batch", "syncbatch"):
        return (f"param_free_norm_G={config.param_free_norm_G!r}: only batch norm folds into the "
                "modulation (instance norm needs per-image statistics)")
    if config.norm_mode == "spade" and config.spade_kernel_size != 3:
        return f"spade_kernel_size={config.spade_kernel_size}: the fast path is written for 3x3 SPADE convs"
    dtype = generator.compute_dtype
    if dtype != "float32":
        return f"compute dtype {dtype}: the fast path computes in float32"
    for name, _ in block_names(config):
        try:
            generator.get_layer(name)
        except ValueError:
            return f"the generator has no layer {name!r}"
    return None


def _lrelu(x):
    return tf.nn.leaky_relu(x, LEAKY_SLOPE)


def _np(variable) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(variable), np.float32)


class _OneHotConv:
    """A 3x3 conv of a one-hot label map as lookup tables: [9, rows, filters], one per offset.

    ``rows`` = (classes + 1) * (2 with edges), see ``FastGenerator.index_map``.
    One table per offset rather than one [9 * rows] table that each offset's
    GATHER reads at its own row offset: TFLite's int8 quantizer gives every
    GATHER its own copy of the table it reads, which made the COCO test
    model's int8 file 73 MiB (nine copies of each table) against 46 MiB for
    float32.
    """

    @staticmethod
    def tables(kernel: np.ndarray, bias: np.ndarray | None, classes: int, edges: bool) -> np.ndarray:
        kh, kw, channels, filters = kernel.shape
        if (kh, kw) != (3, 3) or channels != classes + int(edges):
            raise ValueError(f"expected a 3x3 kernel over {classes + int(edges)} channels; got {kernel.shape}.")
        per_offset = kernel.reshape(9, channels, filters)
        # Rows 0..classes-1: the classes; row `classes`: an invalid id or the
        # padding (one_hot and zero padding both give a zero input vector).
        rows = np.concatenate([per_offset[:, :classes], np.zeros((9, 1, filters), np.float32)], axis=1)
        if edges:
            # The same rows with the edge channel's kernel row added: the
            # index is class + (classes + 1) * edge.
            rows = np.concatenate([rows, rows + per_offset[:, classes:classes + 1]], axis=1)
        if bias is not None:
            # In one offset's table, every row (the sentinel too): each
            # output pixel reads exactly one row of it.
            rows[4] += bias
        return rows


class FastGenerator(tf.Module):
    """The inference generator from label ids, with less work (see the module docstring).

    Args:
        generator: a ``build_generator(config)`` model (spectral norm folded or
            not: the folded kernels are read either way).
        config: its config; ``unsupported_reason`` must be None.
        constants: hold the weights as NumPy arrays, which become constants
            of the traced graph, rather than as (tracked) ``tf.Variable``s.
            oneDNN re-lays out a variable conv kernel on every call and caches
            the layout of a constant one (ADE20K 256x256 on CPU: 0.62x of the
            Keras forward's time rather than 0.70x with ``matmul_max_pixels``
            256). The costs: a SavedModel stores the weights in its graph
            (``saved_model.pb``), once per traced function that holds them,
            and loading the ADE20K one peaked at 7.7 GB RSS (1.7 GB with
            variables), its first call taking 17 s of graph optimization.
        matmul_max_pixels: convs on feature maps of at most this many pixels
            run as one matmul (im2col) instead of a conv: with variable
            weights, faster for the 1024-channel convs at 8x8 and 16x16
            (no kernel re-layout); 0 = never.

    Call args:
        ids: int32 [B, H, W] label ids (255 = don't care) or segmap channel
            indices (``segmap.label_channels``); other values behave as
            ``tf.one_hot`` does: an all-zero vector.
        edges: [B, H, W] instance edges of 0s and 1s, int32
            (``segmap.edge_map_int``) or float32 (``segmap.edge_map``), with
            ``use_instance_map``.
        latent: float32 [B, z_dim], with ``use_vae``.
        positional: float32 [B, H, W, 2] CLADE-ICPE maps, with
            ``use_positional_encoding``.

    Returns:
        float32 [B, H, W, 3] in [-1, 1]: ``generator(segmap, training=False)``.
    """

    def __init__(self, generator: keras.Model, config: SPADEConfig, *, constants: bool = False,
                 matmul_max_pixels: int = 0, name: str = "fast_generator"):
        super().__init__(name=name)
        reason = unsupported_reason(generator, config)
        if reason:
            raise ValueError(f"FastGenerator does not support this generator: {reason}.")
        c = self.config = config
        self.matmul_max_pixels = matmul_max_pixels
        self.classes = c.label_nc + int(c.contain_dontcare_label)
        self.edges = c.use_instance_map
        self.rows = (self.classes + 1) * (2 if self.edges else 1)

        self.constants = constants

        def var(value, name):
            value = np.asarray(value, np.float32)
            return value if constants else tf.Variable(value, trainable=False, name=name)

        fc = generator.get_layer("fc")
        if c.use_vae:
            self.fc_kernel = var(_np(fc.kernel), "fc/kernel")
            self.fc_bias = var(_np(fc.bias), "fc/bias")
        else:
            self.fc_table = var(self._table(fc), "fc/table")
        self.blocks = []
        for name, upsample in block_names(c):
            layer = generator.get_layer(name)
            block = {"name": name, "upsample": upsample,
                     "learned_shortcut": layer.learned_shortcut}
            for conv in ("conv_0", "conv_1") + (("conv_s",) if layer.learned_shortcut else ()):
                block[conv] = self._conv(getattr(layer, conv), f"{name}/{conv}", var)
            if c.norm_mode == "clade":
                for norm in ("norm_0", "norm_1") + (("norm_s",) if layer.learned_shortcut else ()):
                    block[norm] = self._clade(getattr(layer, norm), f"{name}/{norm}", var)
                self.blocks.append(block)
                continue
            for norm in ("norm_0", "norm_1"):
                block[norm] = self._spade(getattr(layer, norm), f"{name}/{norm}", var)
            if layer.learned_shortcut:
                # conv_s (1x1, no bias) is linear: conv_s(x * scale + shift) =
                # conv_s(x * scale) + shift', where shift' is shift's conv with
                # conv_s applied to its kernel and bias: out_channels (fewer)
                # instead of in_channels.
                conv_s = _np(layer.conv_s.folded_kernel())[0, 0].astype(np.float64)
                block["norm_s"] = self._spade(layer.norm_s, f"{name}/norm_s", var, shift_then=conv_s)
            self.blocks.append(block)
        self.conv_img = self._conv(generator.get_layer("conv_img"), "conv_img", var)

    # Weights -------------------------------------------------------------------
    def _table(self, conv) -> np.ndarray:
        kernel = _np(conv.folded_kernel())
        bias = _np(conv.bias) if conv.use_bias else None
        return _OneHotConv.tables(kernel, bias, self.classes, self.edges)

    @staticmethod
    def _conv(conv, name, var):
        out = {"kernel": var(_np(conv.folded_kernel()), f"{name}/kernel")}
        if conv.use_bias:
            out["bias"] = var(_np(conv.bias), f"{name}/bias")
        return out

    def _spade(self, spade, name, var, shift_then=None):
        norm = spade.param_free_norm
        mean = _np(norm.moving_mean).astype(np.float64)
        inv_std = 1.0 / np.sqrt(_np(norm.moving_variance).astype(np.float64) + norm.epsilon)
        wg = _np(spade.mlp_gamma.kernel).astype(np.float64)
        bg = _np(spade.mlp_gamma.bias).astype(np.float64)
        wb = _np(spade.mlp_beta.kernel).astype(np.float64)
        bb = _np(spade.mlp_beta.bias).astype(np.float64)
        # scale = (1 + gamma) * inv_std; shift = beta - mean * scale (in float64, then float32).
        w_scale = wg * inv_std
        b_scale = (1.0 + bg) * inv_std
        w_shift = wb - mean * w_scale
        b_shift = bb - mean * b_scale
        if shift_then is not None:  # [in, out] matrix applied to the shift's channels
            w_shift = w_shift @ shift_then
            b_shift = b_shift @ shift_then
        # Two convs rather than one to 2C channels and a split: the split
        # copies both halves, and was not faster on oneDNN.
        return {
            "table": var(self._table(spade.mlp_shared), f"{name}/mlp_shared/table"),
            "scale": {"kernel": var(w_scale, f"{name}/scale/kernel"), "bias": var(b_scale, f"{name}/scale/bias")},
            "shift": {"kernel": var(w_shift, f"{name}/shift/kernel"), "bias": var(b_shift, f"{name}/shift/bias")},
        }

    def _clade(self, clade, name, var):
        norm = clade.param_free_norm
        mean = _np(norm.moving_mean).astype(np.float64)
        inv_std = 1.0 / np.sqrt(_np(norm.moving_variance).astype(np.float64) + norm.epsilon)
        scale = _np(clade.class_weight).astype(np.float64) * inv_std
        shift = _np(clade.class_bias).astype(np.float64)
        # Row `classes` (invalid ids, which the one-hot map encodes as zeros):
        # the generator's argmax of a zero vector is class 0.
        scale = np.concatenate([scale, scale[:1]])
        shift = np.concatenate([shift, shift[:1]])
        out = {"scale": var(scale, f"{name}/scale"), "mean": var(mean, f"{name}/mean")}
        if clade.positional:
            # gamma * (1 + a) and beta * (1 + b): shift stays beta, and the
            # mean is subtracted from x (one more op per element).
            out["beta"] = var(shift, f"{name}/beta")
            out["dist_w"] = self._conv(clade.dist_conv_w, f"{name}/dist_conv_w", var)
            out["dist_b"] = self._conv(clade.dist_conv_b, f"{name}/dist_conv_b", var)
        else:
            out["shift"] = var(shift - mean * scale, f"{name}/shift")
        if clade.instance_edges:
            out["inst"] = self._conv(clade.inst_conv, f"{name}/inst_conv", var)
        return out

    # Graph -------------------------------------------------------------------------
    def index_map(self, ids, edges=None):
        """[B, H, W] table indices: class, ``classes`` for invalid ids, + (classes + 1) on edges.

        ``ids`` may be label ids as in the files (255 = don't care) or segmap
        channel indices (``segmap.label_channels``): both map alike. Lookups
        in small constant tables rather than ``tf.where`` / ``%`` / ``//``: the
        TFLite int16x8 quantizer cannot quantize SELECT_V2 with an int32 input
        (it asks for the label's float range) nor FLOOR_MOD.
        """
        c = self.config
        # id -> row, for id clamped to [-1, 256] (+1 to index the table).
        lookup = np.full(258, self.classes, np.int32)
        lookup[1:self.classes + 1] = np.arange(self.classes)
        if c.contain_dontcare_label:
            lookup[DONTCARE_ID + 1] = c.label_nc
        index = tf.gather(lookup, tf.clip_by_value(tf.cast(ids, tf.int32), -1, 256) + 1)
        if self.edges:
            # int32 0/1 edges (segmap.edge_map_int) as they are; float ones thresholded.
            edges = edges if edges.dtype.is_integer else tf.cast(edges > 0.5, tf.int32)
            index = index + (self.classes + 1) * tf.cast(edges, tf.int32)
        return index

    def offset_indices(self, index, size):
        """[9, B, h, w]: per kernel offset, indices into that offset's [rows, C] table, for a
        feature map of ``size``.

        The index map is resized like the label map (PyTorch's floor rule,
        ``resize_nearest``), padded by one sentinel pixel (the zero row:
        zero padding), and shifted once per kernel offset.
        """
        h, w = size
        index = resize_nearest(index[..., None], (h, w))[..., 0]
        padded = tf.pad(index, [[0, 0], [1, 1], [1, 1]], constant_values=self.classes)
        return tf.stack([padded[:, dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3)])

    @staticmethod
    def one_hot_conv(table, indices):
        """The conv of the one-hot map: the sum over the 9 offsets of the looked-up rows.

        Eight ADDs rather than a SUM over the offsets: TFLite's int16x8 SUM
        lost 70% of the value here (its output scale is calibrated, its
        accumulation is not), ADD keeps it.
        """
        out = tf.gather(table[0], indices[0])
        for k in range(1, indices.shape[0]):
            out = out + tf.gather(table[k], indices[k])
        return out

    def conv(self, x, params):
        kernel = params["kernel"]
        h, w = x.shape[1], x.shape[2]
        if h * w <= self.matmul_max_pixels:
            y = self._conv_as_matmul(x, kernel)
        else:
            y = tf.nn.conv2d(x, kernel, strides=1, padding="SAME")
        return tf.nn.bias_add(y, params["bias"]) if "bias" in params else y

    @staticmethod
    def _conv_as_matmul(x, kernel):
        """A stride-1 "same" conv as one matmul of the kernel with the shifted inputs (im2col).

        oneDNN re-lays out a variable conv kernel on every call (it caches
        only constant ones): for the 1024-channel convs at 8x8 and 16x16 that
        copy costs more than the arithmetic; a matmul reads the kernel as is.
        """
        k, _, channels, filters = kernel.shape
        h, w = x.shape[1], x.shape[2]
        if k > 1:
            p = k // 2
            padded = tf.pad(x, [[0, 0], [p, p], [p, p], [0, 0]])
            x = tf.concat([padded[:, dy:dy + h, dx:dx + w, :] for dy in range(k) for dx in range(k)], axis=-1)
        y = tf.matmul(tf.reshape(x, [-1, k * k * channels]), tf.reshape(kernel, [k * k * channels, filters]))
        return tf.reshape(y, [-1, h, w, filters])

    def spade(self, x, params, indices, then_conv=None):
        """SPADE(x) = x * scale + shift; with ``then_conv`` (the shortcut),
        ``then_conv(x * scale) + shift`` where ``shift`` already includes it."""
        actv = tf.nn.relu(self.one_hot_conv(params["table"], indices))
        scaled = x * self.conv(actv, params["scale"])
        if then_conv is not None:
            scaled = self.conv(scaled, then_conv)
        return scaled + self.conv(actv, params["shift"])

    def class_maps(self, index, size, positional=None):
        """CLADE's per-size inputs: class ids [B, h, w], edges [B, h, w, 1], ICPE maps [B, h, w, 2]."""
        index = resize_nearest(index[..., None], size)[..., 0]
        rows = np.arange(self.rows)
        maps = {"ids": tf.gather((rows % (self.classes + 1)).astype(np.int32), index)}
        if self.edges:
            maps["edges"] = tf.gather((rows // (self.classes + 1)).astype(np.float32), index)[..., None]
        if positional is not None:
            maps["positional"] = resize_nearest(positional, size)
        return maps

    def clade(self, x, params, maps):
        """CLADE(x): batch norm and the class affine as one looked-up multiply-add."""
        scale = tf.gather(params["scale"], maps["ids"])
        if "positional" in maps:
            scale = scale * (1.0 + self.conv(maps["positional"], params["dist_w"]))
            beta = tf.gather(params["beta"], maps["ids"]) * (1.0 + self.conv(maps["positional"], params["dist_b"]))
            out = (x - params["mean"]) * scale + beta
        else:
            out = x * scale + tf.gather(params["shift"], maps["ids"])
        if "inst" in params:
            out = tf.concat([out, self.conv(maps["edges"], params["inst"])], axis=-1)
        return out

    def resblock(self, x, block, indices):
        if self.config.norm_mode == "clade":
            norm = lambda h, params: self.clade(h, params, indices)  # noqa: E731
        else:
            norm = lambda h, params: self.spade(h, params, indices)  # noqa: E731
        if block["learned_shortcut"]:
            with tf.name_scope("shortcut"):
                if self.config.norm_mode == "clade":
                    x_s = self.conv(norm(x, block["norm_s"]), block["conv_s"])
                else:
                    x_s = self.spade(x, block["norm_s"], indices, then_conv=block["conv_s"])
        else:
            x_s = x
        dx = self.conv(_lrelu(norm(x, block["norm_0"])), block["conv_0"])
        dx = self.conv(_lrelu(norm(dx, block["norm_1"])), block["conv_1"])
        return x_s + dx

    def __call__(self, ids, edges=None, latent=None, positional=None):
        return tf.tanh(self.pre_tanh(ids, edges, latent, positional))

    def pre_tanh(self, ids, edges=None, latent=None, positional=None):
        """The generator's output before its final tanh (``conv_img``'s)."""
        c = self.config
        sh, sw = c.latent_size
        index = self.index_map(ids, edges)
        if c.use_vae:
            x = tf.matmul(latent, self.fc_kernel) + self.fc_bias
            x = tf.reshape(x, [-1, sh, sw, 16 * c.ngf])  # NHWC, as the generator's fc_reshape
        else:
            x = self.one_hot_conv(self.fc_table, self.offset_indices(index, (sh, sw)))
        cache = {}  # one index map per feature-map size
        for block in self.blocks:
            if block["upsample"]:
                x = tf.image.resize(x, (2 * x.shape[1], 2 * x.shape[2]), method="nearest")
            size = (x.shape[1], x.shape[2])
            if size not in cache:
                if c.norm_mode == "clade":
                    cache[size] = self.class_maps(index, size, positional)
                else:
                    cache[size] = self.offset_indices(index, size)
            with tf.name_scope(block["name"]):
                x = self.resblock(x, block, cache[size])
        return self.conv(_lrelu(x), self.conv_img)
