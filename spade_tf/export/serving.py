"""The inference graph: label ids in, uint8 image out.

``SynthesisModule`` wraps a (spectral-norm-folded) generator with what a
client should not have to do: input checks, one-hot encoding, instance edge
maps, the latent of VAE models, and the conversion to uint8. Its functions are
the SavedModel's signatures and the graphs converted to TFLite.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from spade_tf.config import SPADEConfig
from spade_tf.data.pipeline import decode_id_png
from spade_tf.export.fast_graph import FastGenerator, unsupported_reason
from spade_tf.layers.sean import region_average, seeded_noise
from spade_tf.positional import positional_encoding
from spade_tf.segmap import edge_map_int, make_segmap, valid_ids_mask, valid_label_ids

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Convs on feature maps up to 16x16 (the 1024-channel ones of an ngf-64
# generator) run as matmuls: ADE20K 256x256 on CPU, 0.70x of the Keras
# forward's time instead of 0.77x (FastGenerator's matmul_max_pixels).
FAST_MATMUL_MAX_PIXELS = 16 * 16


def to_uint8_graph(image):
    """[-1, 1] float -> uint8, rounding as ``utils.visualize.to_uint8``."""
    return tf.cast(tf.clip_by_value(tf.round((image + 1.0) * 127.5), 0.0, 255.0), tf.uint8)


def uint8_from_pre_tanh(x):
    """``to_uint8_graph(tanh(x))`` as ``round(sigmoid(2x) * 255)``: the same numbers (float
    rounding aside), and integer-friendly. In a full-int8 TFLite graph the ADD of
    ``tanh + 1`` lost a quarter of the image's range (one int8 scale for the
    sum); LOGISTIC has a fixed output scale of 1/256 and keeps it."""
    return tf.cast(tf.clip_by_value(tf.round(tf.sigmoid(2.0 * x) * 255.0), 0.0, 255.0), tf.uint8)


def shape_text(shape):
    """A tensor's shape as a string tensor "[2,64,64]"."""
    return tf.strings.join(["[", tf.strings.reduce_join(tf.strings.as_string(shape), separator=","), "]"])


def check_shape(x, name, dims, expected):
    """An Assert that ``x`` has exactly ``dims`` (None: any batch >= 1); see ``check_inputs``."""
    shape = tf.shape(x)
    rank = len(dims)
    padded = tf.concat([shape, tf.fill([rank + 1], -1)], axis=0)
    ok = tf.less(padded[rank], 0)  # not more than ``rank`` axes
    for axis, size in enumerate(dims):
        ok = tf.logical_and(ok, tf.greater_equal(padded[axis], 1) if size is None
                            else tf.equal(padded[axis], size))
    return tf.debugging.Assert(
        ok, [tf.strings.join([f"{name} must be {expected}; got shape ", shape_text(shape)])],
        name=f"check_{name}_shape",
    )


class SynthesisModule:
    """Serving functions of a generator.

    Args:
        generator: an inference generator (``fold_spectral_norm`` applied).
        config: its config.
        fast: compute the image with ``fast_graph.FastGenerator`` (the same
            outputs, float32 rounding aside, with less work: SPADE's one-hot
            conv as table lookups, batch norm folded into the modulation,
            the 8x8 and 16x16 convs as matmuls). Configs it does not support
            (instance-norm SPADE, ``spade_kernel_size`` 5, a non-float32
            compute dtype: ``fast_reason`` says which) and ``fast=False`` use
            the plain Keras generator. The weights are copied when the module
            is built.

    Signatures (``endpoints()``, written by ``save``):
        ``serving_default``: ``label`` int32 [B, H, W] (+ ``instance`` int32
        [B, H, W] when the config uses instance maps, + ``seed`` int32 scalar
        for VAE models) -> ``image`` uint8 [B, H, W, 3].
        ``synthesize_latent`` (VAE models only): ``latent`` float32 [B, z_dim]
        instead of ``seed``.
        ``encode_style`` (VAE models given their ``encoder``): ``image`` uint8
        [B, H, W, 3] -> ``mean``, ``logvar`` float32 [B, z_dim], the style
        encoder's distribution of the latent of a photo (the official test
        generates from ``mean + exp(logvar / 2) * eps``).
        ``predict_png``: ``label_png_bytes`` string [B] (8/16-bit grayscale
        PNGs of ids at the model's size; + ``instance_png_bytes``, + ``seed``)
        -> ``image_png_bytes`` string [B] of RGB PNGs (TF Models' ``image_bytes``
        convention; REST clients send ``{"b64": ...}``).

    SEAN models (``norm_mode="sean"``, given ``mean_style_codes`` and their
    ``style_encoder``) take per-region style codes, float32
    [B, semantic_nc, style_dim], instead, and every image signature has an
    int32 scalar ``seed`` that draws ACE's noise (``seeded_noise``: official
    SEAN adds it at inference; a seed gives the same image each call, a
    negative seed none, as the TFLite graphs):
        ``serving_default`` / ``predict_png``: each region takes its class's
        mean style code (``spade_tf.sean_styles``).
        ``synthesize_styles`` / ``predict_png_styles``: + ``style_codes``.
        ``encode_styles``: ``style_image`` uint8 [B, H, W, 3] + ``style_label``
        int32 [B, H, W] -> ``style_codes`` (zeros for absent regions) and
        ``present`` bool [B, semantic_nc] (whether the encoder saw each region).
        ``synthesize_from_photo``: ``label`` (+ ``instance``) + ``style_image``
        + ``style_label`` (one per label map) + ``seed``: the photo's codes,
        the mean code for regions absent from it.
    """

    def __init__(self, generator: keras.Model, config: SPADEConfig, fast: bool = True,
                 encoder: keras.Model | None = None, style_encoder: keras.Model | None = None,
                 mean_style_codes: np.ndarray | None = None):
        if encoder is not None and not config.use_vae:
            raise ValueError("An encoder was given but the config has use_vae=False.")
        self.sean = config.norm_mode == "sean"
        if style_encoder is not None and not self.sean:
            raise ValueError(f"A style encoder was given but the config has norm_mode={config.norm_mode!r}.")
        self.generator = generator
        self.encoder = encoder
        self.style_encoder = style_encoder
        self.config = config
        self.height, self.width = config.image_size
        self.mean_codes = None
        if self.sean:
            if mean_style_codes is None:
                raise ValueError("A SEAN model needs mean_style_codes [semantic_nc, style_dim]: the style of a "
                                 "region without a style photo (spade_tf.sean_styles.training_mean_styles).")
            mean = np.asarray(mean_style_codes, np.float32)
            if mean.shape != (config.semantic_nc, config.style_dim):
                raise ValueError(f"mean_style_codes has shape {mean.shape}; expected "
                                 f"({config.semantic_nc}, {config.style_dim}) (semantic_nc, style_dim).")
            # A constant of every traced graph (the SavedModel and TFLite files carry it).
            self.mean_codes = tf.constant(mean)
            # One tf.function for the seeded generator that every signature
            # calls: traced once (not once per signature, each with AutoGraph
            # converting every layer: 4x the export time).
            h, w = config.image_size
            specs = [tf.TensorSpec([None, h, w], tf.int32, name="ids")]
            if config.use_instance_map:
                specs.append(tf.TensorSpec([None, h, w], tf.int32, name="instance"))
            specs += [tf.TensorSpec([None, config.semantic_nc, config.style_dim], tf.float32, name="style_codes"),
                      tf.TensorSpec([], tf.int32, name="seed")]
            self._sean_function = tf.function(self._sean_image, input_signature=specs, autograph=False)
        self.fast_reason = unsupported_reason(generator, config) if fast else "fast=False"
        self.fast = None
        if self.fast_reason is None:
            # Variable weights: as graph constants (FastGenerator's
            # constants=True) a CPU call took 0.63x rather than 0.70x of the
            # Keras forward's time, but loading the ADE20K SavedModel peaked
            # at 7.7 GB instead of 1.7 GB and its first call took 17 s.
            self.fast = FastGenerator(generator, config, matmul_max_pixels=FAST_MATMUL_MAX_PIXELS)
            # One tf.function that every signature calls (traced once per
            # input signature, not once per endpoint).
            h, w = self.height, self.width
            specs = [tf.TensorSpec([None, h, w], tf.int32, name="ids")]
            if config.use_instance_map:
                specs.append(tf.TensorSpec([None, h, w], tf.int32, name="edges"))
            if config.use_vae:
                specs.append(tf.TensorSpec([None, config.z_dim], tf.float32, name="latent"))
            if config.use_positional_encoding:
                specs.append(tf.TensorSpec([None, h, w, 2], tf.float32, name="positional"))
            self._fast_function = tf.function(self._fast_image, input_signature=specs, autograph=False)

    def _sean_image(self, ids, *extra):
        instance = extra[0] if self.config.use_instance_map else None
        style_codes, seed = extra[-2:]
        return self._plain_image(ids, instance, style_codes=style_codes, seed=seed)

    def _plain_image(self, label, instance=None, latent=None, style_codes=None, seed=None, positional=None):
        """The Keras generator's uint8 image (no fast path); SEAN: noise from ``seed`` (None: none)."""
        c = self.config
        inputs = {"segmap": make_segmap(label, instance, c)}
        if c.use_vae:
            inputs["latent"] = latent
        if c.use_positional_encoding:
            # CLADE-ICPE's maps, computed from the ids in the graph unless given.
            inputs["positional"] = positional_encoding(label) if positional is None else positional
        if self.sean:
            inputs["style_codes"] = tf.cast(style_codes, tf.float32)
            with seeded_noise(-1 if seed is None else seed):
                image = self.generator(inputs, training=False)
        else:
            image = self.generator(inputs, training=False)
        return to_uint8_graph(tf.cast(image, tf.float32))

    def _fast_image(self, ids, *extra):
        extra = list(extra)
        edges = extra.pop(0) if self.config.use_instance_map else None
        latent = extra.pop(0) if self.config.use_vae else None
        positional = extra.pop(0) if self.config.use_positional_encoding else None
        return uint8_from_pre_tanh(self.fast.pre_tanh(ids, edges, latent, positional))

    # Graph pieces ---------------------------------------------------------
    def check_inputs(self, label, instance=None, latent=None):
        """Asserts (InvalidArgument at run time) the shapes and label ids.

        A loaded SavedModel signature does not check that a request has the
        shape of its ``TensorSpec`` (TF Serving passes a [B, H, W, 1] label
        through), so the graph checks shapes itself. Not with
        ``tf.rank``/``tf.size(tf.shape(x))``/``assert_rank``: the spec's rank is
        known when tracing, so those are constants (folded again by grappler)
        and any rank passes. The rank is read from the values of
        ``tf.shape(x)`` padded with -1s instead: dimension ``rank`` is -1 exactly
        when the rank is not larger, which no folding can know in advance.
        """
        c = self.config
        h, w = self.height, self.width
        label_spec = f"int32 [batch, {h}, {w}] with batch >= 1"
        checks = [check_shape(label, "label", [None, h, w], label_spec)]
        with tf.control_dependencies(checks):
            checks.append(self.check_ids(label, "label"))
        if instance is not None:
            checks.append(check_shape(instance, "instance", [None, h, w], f"{label_spec}, the shape of label"))
            checks.append(tf.debugging.Assert(
                tf.equal(tf.shape(instance)[0], tf.shape(label)[0]),
                [tf.strings.join(["instance and label have different batch sizes: instance ",
                                  shape_text(tf.shape(instance)), ", label ", shape_text(tf.shape(label))])],
                name="check_instance_batch",
            ))
        if latent is not None:
            latent_spec = f"float32 [batch, {c.z_dim}] with the batch of label"
            checks.append(check_shape(latent, "latent", [None, c.z_dim], latent_spec))
            checks.append(tf.debugging.Assert(
                tf.equal(tf.shape(latent)[0], tf.shape(label)[0]),
                [tf.strings.join([f"latent must be {latent_spec}; got shape ", shape_text(tf.shape(latent)),
                                  " for label ", shape_text(tf.shape(label))])],
                name="check_latent_batch",
            ))
        return checks

    def check_ids(self, ids, name: str):
        """An Assert that ``ids`` holds only valid class ids (InvalidArgument naming ``name``)."""
        c = self.config
        valid = valid_ids_mask(ids, c.label_nc, c.contain_dontcare_label)
        bad = tf.boolean_mask(ids, tf.logical_not(valid))
        return tf.debugging.Assert(
            tf.equal(tf.size(bad), 0),
            [f"{name} has class ids out of range (expected "
             f"{valid_label_ids(c.label_nc, c.contain_dontcare_label)}); first bad ids:", bad[:10]],
            name=f"check_{name}_ids", summarize=10,
        )

    def check_batch(self, x, name: str, label, expected: str):
        """An Assert that ``x`` has the batch of ``label``."""
        return tf.debugging.Assert(
            tf.equal(tf.shape(x)[0], tf.shape(label)[0]),
            [tf.strings.join([f"{name} must be {expected}; got shape ", shape_text(tf.shape(x)),
                              " for label ", shape_text(tf.shape(label))])],
            name=f"check_{name}_batch",
        )

    def check_style_codes(self, style_codes, label):
        """Asserts on a SEAN request's ``style_codes``: shape, the batch of ``label``, finite values."""
        c = self.config
        spec = f"float32 [batch, {c.semantic_nc}, {c.style_dim}] (semantic_nc, style_dim) with the batch of label"
        checks = [check_shape(style_codes, "style_codes", [None, c.semantic_nc, c.style_dim], spec),
                  self.check_batch(style_codes, "style_codes", label, spec)]
        # Flattened: a reduction over all axes is traced as one over the spec's
        # three, which a tensor of another rank fails before any Assert names it.
        checks.append(tf.debugging.Assert(
            tf.reduce_all(tf.math.is_finite(tf.reshape(style_codes, [-1]))), ["style_codes has NaN or Inf values"],
            name="check_style_codes_finite"))
        return checks

    def generate(self, label, instance=None, latent=None, style_codes=None, seed=None, positional=None):
        """uint8 [B, H, W, 3] from int32 ids; no input checks (TFLite graphs).

        With the fast path, the ids and edges go to ``FastGenerator`` (no
        one-hot map); otherwise the one-hot ``segmap`` to the generator.
        SEAN models: ``style_codes`` [B, semantic_nc, style_dim] (default the
        mean codes), ACE's noise drawn from ``seed`` (None: no noise).
        """
        c = self.config
        if self.fast is not None:
            args = [tf.cast(label, tf.int32)]  # FastGenerator maps 255 (don't care) itself
            if c.use_instance_map:
                args.append(edge_map_int(instance))
            if c.use_vae:
                args.append(tf.cast(latent, tf.float32))
            if c.use_positional_encoding:
                # CLADE-ICPE's maps, computed from the ids in the graph unless given.
                args.append(positional_encoding(label) if positional is None else tf.cast(positional, tf.float32))
            return self._fast_function(*args)
        if self.sean:
            if style_codes is None:
                shape = [tf.shape(label)[0], c.semantic_nc, c.style_dim]
                style_codes = tf.broadcast_to(self.mean_codes[None], shape)
            if seed is not None:  # the serving graphs' shared function
                args = [tf.cast(label, tf.int32)] + ([tf.cast(instance, tf.int32)] if c.use_instance_map else [])
                return self._sean_function(*args, tf.cast(style_codes, tf.float32), tf.cast(seed, tf.int32))
            # No seed (TFLite graphs): no noise, and no RNG op in the graph.
        return self._plain_image(label, instance, latent, style_codes, positional=positional)

    def latent_from_seed(self, seed, batch):
        """Standard-normal latents [batch, z_dim] from an int32 seed (stateless)."""
        seed = tf.stack([tf.cast(seed, tf.int32), tf.constant(0, tf.int32)])
        return tf.random.stateless_normal([batch, self.config.z_dim], seed=seed)

    def checked(self, label, instance=None, latent=None, seed=None, style_codes=None):
        if self.sean:
            checks = self.check_inputs(label, instance)
            if style_codes is not None:
                checks += self.check_style_codes(style_codes, label)
            with tf.control_dependencies(checks):
                label = tf.identity(label)
                style_codes = None if style_codes is None else tf.identity(style_codes)
            return {"image": self.generate(label, instance, style_codes=style_codes, seed=seed)}
        if latent is None and seed is not None:
            checks = self.check_inputs(label, instance)
            with tf.control_dependencies(checks):
                latent = self.latent_from_seed(seed, tf.shape(label)[0])
        else:
            checks = self.check_inputs(label, instance, latent)
        with tf.control_dependencies(checks):
            # Every input through the checks: the fast graph's function is
            # inlined, and the control edge then gates only its ops without data
            # inputs, so fc's MatMul on an unchecked latent could fail first
            # with TensorFlow's message (seen under load: "Matrix size-incompatible").
            label = tf.identity(label)
            instance = None if instance is None else tf.identity(instance)
            latent = None if latent is None else tf.identity(latent)
            return {"image": self.generate(label, instance, latent)}

    def decode_id_pngs(self, pngs, name: str):
        """string [B] of 8/16-bit grayscale PNGs of ids at the model's size -> int32 [B, H, W].

        Each PNG's header is checked before it is decoded (``decode_png``
        would turn a colour PNG into gray values, and take any size), so a
        wrong request is an ``InvalidArgument`` naming what was expected.
        """
        h, w = self.height, self.width
        expected = f"an 8- or 16-bit grayscale PNG of class ids, {w}x{h}"

        def be32(raw, at):  # big-endian uint32 of the IHDR fields, as int32 (sizes are small)
            b = tf.cast(raw[at:at + 4], tf.int32)
            return ((b[0] * 256 + b[1]) * 256 + b[2]) * 256 + b[3]

        def one(contents):
            is_png = tf.equal(tf.strings.substr(contents, 0, 8), PNG_SIGNATURE)
            check = tf.debugging.Assert(is_png, [f"{name}: not a PNG; expected {expected}"], name=f"check_{name}")
            with tf.control_dependencies([check]):
                raw = tf.io.decode_raw(tf.strings.substr(contents, 16, 10), tf.uint8)  # width, height, depth, colour
            width, height, depth, colour = be32(raw, 0), be32(raw, 4), raw[8], raw[9]
            checks = [
                tf.debugging.Assert(
                    tf.logical_and(tf.equal(colour, 0), tf.logical_or(tf.equal(depth, 8), tf.equal(depth, 16))),
                    [f"{name}: expected {expected}; got PNG colour type", colour, "(0 = grayscale) bit depth", depth]),
                tf.debugging.Assert(
                    tf.logical_and(tf.equal(width, w), tf.equal(height, h)),
                    [f"{name}: expected {expected}; got", width, "x", height]),
            ]
            with tf.control_dependencies(checks):
                return tf.cast(decode_id_png(contents)[..., 0], tf.int32)

        return tf.map_fn(one, pngs, fn_output_signature=tf.TensorSpec([h, w], tf.int32))

    def predict_png(self, label_pngs, instance_pngs=None, seed=None, style_codes=None):
        """``serving_default`` with PNG bytes in and out (TF Serving REST: ``{"b64": ...}``)."""
        label = self.decode_id_pngs(label_pngs, "label_png_bytes")
        instance = None if instance_pngs is None else self.decode_id_pngs(instance_pngs, "instance_png_bytes")
        image = self.checked(label, instance, seed=seed, style_codes=style_codes)["image"]
        return {"image_png_bytes": tf.map_fn(tf.io.encode_png, image, fn_output_signature=tf.string)}

    def encode_style(self, image):
        """uint8 [B, H, W, 3] photos -> {"mean", "logvar"} [B, z_dim], with a shape check."""
        h, w = self.height, self.width
        spec = f"uint8 [batch, {h}, {w}, 3]"
        check = check_shape(image, "image", [None, h, w, 3], spec)
        with tf.control_dependencies([check]):
            x = tf.cast(image, tf.float32) / 127.5 - 1.0
        mean, logvar = self.encoder({"image": x}, training=False)
        return {"mean": tf.cast(mean, tf.float32), "logvar": tf.cast(logvar, tf.float32)}

    def encode_styles(self, style_image, style_label):
        """SEAN: uint8 photos [B, H, W, 3] and their int32 label maps [B, H, W] ->
        {"style_codes" float32 [B, semantic_nc, style_dim], "present" bool [B, semantic_nc]}.

        ``present``: whether the Zencoder saw the region (its channel non-zero
        in the label map nearest-resized to the codes' size, ``region_average``'s
        rule); absent regions have zero codes. With instance maps the style
        label's class boundaries serve as its edge channel.
        """
        from spade_tf.sean_styles import code_size

        c = self.config
        h, w = self.height, self.width
        image_spec = f"uint8 [batch, {h}, {w}, 3]"
        label_spec = f"int32 [batch, {h}, {w}] with the batch of style_image"
        checks = [check_shape(style_image, "style_image", [None, h, w, 3], image_spec),
                  check_shape(style_label, "style_label", [None, h, w], label_spec)]
        with tf.control_dependencies(checks):
            checks.append(self.check_ids(style_label, "style_label"))
            checks.append(tf.debugging.Assert(
                tf.equal(tf.shape(style_label)[0], tf.shape(style_image)[0]),
                [tf.strings.join([f"style_label must be {label_spec}; got shape ", shape_text(tf.shape(style_label)),
                                  " for style_image ", shape_text(tf.shape(style_image))])],
                name="check_style_label_batch"))
        with tf.control_dependencies(checks):
            x = tf.cast(style_image, tf.float32) / 127.5 - 1.0
            ids = tf.identity(tf.cast(style_label, tf.int32))  # a cast to int32 of int32 is no op to wait on
        segmap = make_segmap(ids, ids if c.use_instance_map else None, c)
        codes = self.style_encoder({"image": x, "segmap": segmap}, training=False)
        size = code_size(self.style_encoder)
        ones = tf.ones([tf.shape(segmap)[0], size[0], size[1], 1], tf.float32)
        present = region_average(ones, segmap)[..., 0] > 0.5
        return {"style_codes": tf.cast(codes, tf.float32), "present": present}

    def photo_style_codes(self, style_image, style_label):
        """``encode_styles``' codes, with the mean code for the regions absent from the photos."""
        encoded = self.encode_styles(style_image, style_label)
        return tf.where(encoded["present"][..., None], encoded["style_codes"], self.mean_codes[None])

    def synthesize_from_photo(self, label, instance, style_image, style_label, seed):
        """SEAN: each label map with the style of its photo (``style_image``, ``style_label``)."""
        h, w = self.height, self.width
        check = self.check_batch(style_image, "style_image", label,
                                 f"uint8 [batch, {h}, {w}, 3] with the batch of label (one style photo per label map)")
        with tf.control_dependencies([check]):
            codes = self.photo_style_codes(style_image, style_label)
        return self.checked(label, instance, seed=seed, style_codes=codes)

    # Signatures --------------------------------------------------------------
    def input_specs(self, batch: int | None = None, latent: bool = False) -> list[tf.TensorSpec]:
        """TensorSpecs of a function's inputs: label, [instance], [seed | latent]."""
        h, w = self.height, self.width
        specs = [tf.TensorSpec([batch, h, w], tf.int32, name="label")]
        if self.config.use_instance_map:
            specs.append(tf.TensorSpec([batch, h, w], tf.int32, name="instance"))
        if self.config.use_vae:
            if latent:
                specs.append(tf.TensorSpec([batch, self.config.z_dim], tf.float32, name="latent"))
            else:
                specs.append(tf.TensorSpec([], tf.int32, name="seed"))
        return specs

    def _split(self, args, latent: bool):
        args = list(args)
        label = args.pop(0)
        instance = args.pop(0) if self.config.use_instance_map else None
        extra = args.pop(0) if self.config.use_vae else None
        return label, instance, (extra if latent else None), (None if latent else extra)

    def _sean_endpoints(self) -> dict:
        c = self.config
        h, w = self.height, self.width
        label = [tf.TensorSpec([None, h, w], tf.int32, name="label")]
        png = [tf.TensorSpec([None], tf.string, name="label_png_bytes")]
        if c.use_instance_map:
            label.append(tf.TensorSpec([None, h, w], tf.int32, name="instance"))
            png.append(tf.TensorSpec([None], tf.string, name="instance_png_bytes"))
        codes = [tf.TensorSpec([None, c.semantic_nc, c.style_dim], tf.float32, name="style_codes")]
        photo = [tf.TensorSpec([None, h, w, 3], tf.uint8, name="style_image"),
                 tf.TensorSpec([None, h, w], tf.int32, name="style_label")]
        seed = [tf.TensorSpec([], tf.int32, name="seed")]
        n = len(label)

        def split(args):  # label [, instance], rest
            args = list(args)
            return args[0], (args[1] if n == 2 else None), args[n:]

        def serve(*args):
            label_, instance, (seed_,) = split(args)
            return self.checked(label_, instance, seed=seed_)

        def serve_styles(*args):
            label_, instance, (codes_, seed_) = split(args)
            return self.checked(label_, instance, seed=seed_, style_codes=codes_)

        def serve_png(*args):
            label_, instance, (seed_,) = split(args)
            return self.predict_png(label_, instance, seed_)

        def serve_png_styles(*args):
            label_, instance, (codes_, seed_) = split(args)
            return self.predict_png(label_, instance, seed_, codes_)

        def serve_photo(*args):
            label_, instance, (image_, style_label_, seed_) = split(args)
            return self.synthesize_from_photo(label_, instance, image_, style_label_, seed_)

        endpoints = {
            "serving_default": (serve, label + seed),
            "synthesize_styles": (serve_styles, label + codes + seed),
            "predict_png": (serve_png, png + seed),
            "predict_png_styles": (serve_png_styles, png + codes + seed),
        }
        if self.style_encoder is not None:
            endpoints["encode_styles"] = (self.encode_styles, photo)
            endpoints["synthesize_from_photo"] = (serve_photo, label + photo + seed)
        return endpoints

    def endpoints(self) -> dict:
        """Signature name -> (function, input specs) of the serving SavedModel."""
        if self.sean:
            return self._sean_endpoints()

        def serve(*args):
            label, instance, latent, seed = self._split(args, latent=False)
            return self.checked(label, instance, latent, seed)

        def serve_latent(*args):
            label, instance, latent, seed = self._split(args, latent=True)
            return self.checked(label, instance, latent, seed)

        def serve_png(*args):
            label, instance, _, seed = self._split(args, latent=False)
            return self.predict_png(label, instance, seed)

        png_specs = [tf.TensorSpec([None], tf.string, name="label_png_bytes")]
        if self.config.use_instance_map:
            png_specs.append(tf.TensorSpec([None], tf.string, name="instance_png_bytes"))
        if self.config.use_vae:
            png_specs.append(tf.TensorSpec([], tf.int32, name="seed"))
        # The signatures' input names are the TensorSpecs' names.
        endpoints = {"serving_default": (serve, self.input_specs()), "predict_png": (serve_png, png_specs)}
        if self.config.use_vae:
            endpoints["synthesize_latent"] = (serve_latent, self.input_specs(latent=True))
        if self.encoder is not None:
            image_spec = tf.TensorSpec([None, self.height, self.width, 3], tf.uint8, name="image")
            endpoints["encode_style"] = (self.encode_style, [image_spec])
        return endpoints

    def tflite_endpoint(self, positional_input: bool = False):
        """Batch-1 function without the assertion ops (TFLite has no Assert).

        Inputs ``label`` [1, H, W] int32, ``instance`` (instance models),
        ``latent`` [1, z_dim] float32 (VAE models: TFLite has no stateless RNG,
        so callers draw the standard-normal latent), ``style_codes``
        [1, semantic_nc, style_dim] float32 (SEAN models; no ACE noise, for
        the same reason: the SavedModel's output with a negative ``seed``).
        With ``positional_input`` (CLADE-ICPE), ``positional`` [1, H, W, 2]
        float32 is an input (``positional_endpoint`` computes it) instead of
        being computed in the graph.
        """
        if positional_input:
            if not self.config.use_positional_encoding:
                raise ValueError("positional_input=True needs a CLADE-ICPE model (use_positional_encoding).")
            h, w = self.height, self.width

            def run_given_maps(*args):
                label, instance, latent, _ = self._split(args[:-1], latent=True)
                return {"image": self.generate(label, instance, latent, positional=args[-1])}

            specs = [*self.input_specs(batch=1, latent=True), tf.TensorSpec([1, h, w, 2], tf.float32, "positional")]
            return {"serving_default": (run_given_maps, specs)}
        if self.sean:
            c = self.config
            specs = self.input_specs(batch=1)
            specs.append(tf.TensorSpec([1, c.semantic_nc, c.style_dim], tf.float32, name="style_codes"))

            def run_sean(*args):
                args = list(args)
                instance = args[1] if c.use_instance_map else None
                return {"image": self.generate(args[0], instance, style_codes=args[-1])}

            return {"serving_default": (run_sean, specs)}

        def run(*args):
            label, instance, latent, _ = self._split(args, latent=True)
            return {"image": self.generate(label, instance, latent)}

        return {"serving_default": (run, self.input_specs(batch=1, latent=True))}

    def positional_endpoint(self):
        """Batch-1 function: ``label`` [1, H, W] int32 -> CLADE-ICPE's ``positional`` [1, H, W, 2] float32."""
        def run(label):
            return {"positional": positional_encoding(label)}

        return {"serving_default": (run, [tf.TensorSpec([1, self.height, self.width], tf.int32, "label")])}

    def save(self, path: str, endpoints: dict | None = None) -> None:
        """Writes a SavedModel with ``endpoints`` (default: the serving ones).

        Through ``keras.export.ExportArchive``: it tracks the variables (the
        generator's, or the fast path's) so that the TFLite converter freezes
        them into constants (a plain ``tf.saved_model.save`` of a
        ``tf.Module`` holding the model left them as READ_VARIABLE ops).
        """
        archive = keras.export.ExportArchive()
        # The fast path's own copy of the weights only: tracking the generator
        # too would store an unused second copy.
        archive.track(self.generator if self.fast is None else self.fast)
        for encoder in (self.encoder, self.style_encoder):
            if encoder is not None:
                archive.track(encoder)
        for name, (fn, specs) in (endpoints or self.endpoints()).items():
            archive.add_endpoint(name, tf.function(fn, input_signature=specs))
        archive.write_out(path, verbose=False)
