"""Loading a model for inference from an export dir, a SavedModel or a workdir."""

from __future__ import annotations

import json
import os
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from spade_tf.config import SPADEConfig
from spade_tf.export.serving import SynthesisModule
from spade_tf.models import fold_spectral_norm
from spade_tf.workdir import is_workdir, load_generator, read_config

CONFIG_ASSET = os.path.join("assets.extra", "spade_config.json")
MEAN_STYLES_FILE = "mean_style_codes.npy"  # SEAN: [semantic_nc, style_dim] float32, in the export dir
MEAN_STYLES_ASSET = os.path.join("assets.extra", MEAN_STYLES_FILE)  # and beside the SavedModel's config


class Signature:
    """One serving signature: named tensors in, a dict of named tensors out.

    The same interface for a loaded SavedModel's signature and for the
    ``tf.function`` a workdir is served with, so that a server can describe
    and call either (the painter's TF Serving REST API).

    Args:
        inputs: input name -> ``tf.TensorSpec``.
        function: called with the inputs as keyword tensors; returns a dict.
        outputs: output name -> ``tf.TensorSpec``, or a function returning it
            (a workdir's functions are traced on first use, not at load).
    """

    def __init__(self, inputs: dict[str, tf.TensorSpec], function: Callable[..., dict],
                 outputs: dict[str, tf.TensorSpec] | Callable[[], dict[str, tf.TensorSpec]]):
        self.inputs = inputs
        self._function = function
        self._outputs = outputs

    @classmethod
    def from_concrete_function(cls, concrete) -> Signature:
        """A loaded SavedModel's signature (``loaded.signatures[name]``)."""
        return cls(dict(concrete.structured_input_signature[1]), concrete, dict(concrete.structured_outputs))

    @property
    def outputs(self) -> dict[str, tf.TensorSpec]:
        if callable(self._outputs):
            self._outputs = self._outputs()
        return self._outputs

    def __call__(self, **inputs) -> dict:
        return self._function(**inputs)


def _traced_signature(fn, specs: list[tf.TensorSpec]) -> Signature:
    """A positional ``SynthesisModule`` endpoint as a keyword-called ``Signature``."""
    function = tf.function(fn, input_signature=specs)
    names = [s.name for s in specs]

    def call(**inputs):
        return function(*[inputs[name] for name in names])

    def outputs():
        traced = function.get_concrete_function().structured_outputs
        return {k: tf.TensorSpec(v.shape, v.dtype, k) for k, v in traced.items()}

    return Signature({s.name: s for s in specs}, call, outputs)


class Synthesizer:
    """Label ids in, uint8 images out, whatever the model was loaded from.

    Attributes:
        config: the model's ``SPADEConfig``.
        source: the path it was loaded from.
        step: training steps when known.
        signatures: name -> ``Signature``: those of the SavedModel, or the
            same functions traced from a workdir's generator.
        version: the serving version (of ``serving/<version>``; 1 for a
            workdir or a SavedModel outside a version directory).
    """

    def __init__(self, config: SPADEConfig, signatures: dict[str, Signature], source: str,
                 step: int | None = None, version: int = 1, mean_style_codes: np.ndarray | None = None):
        self.config = config
        self.source = source
        self.step = step
        self.signatures = signatures
        self.version = version
        # SEAN: float32 [semantic_nc, style_dim], the style of regions without a photo.
        self.mean_style_codes = mean_style_codes

    @property
    def is_sean(self) -> bool:
        """Whether the model is SEAN (per-region style codes)."""
        return self.config.norm_mode == "sean"

    def _ids(self, label, instance) -> dict:
        inputs = {"label": _int32_ids(label, "label")}
        if self.config.use_instance_map:
            if instance is None:
                raise ValueError("This model uses instance maps: pass 'instance' [B, H, W] int ids.")
            inputs["instance"] = _int32_ids(instance, "instance")
        return inputs

    @property
    def image_size(self) -> tuple[int, int]:
        return self.config.image_size

    def __call__(self, label, instance=None, seed: int = 0) -> np.ndarray:
        """``label`` (and ``instance``) int [B, H, W] -> uint8 [B, H, W, 3].

        ``seed`` picks the style sample of VAE models and draws a SEAN model's
        noise (negative: none); ignored otherwise. SEAN models paint every
        region with its mean style code.

        Raises:
            tf.errors.InvalidArgumentError: bad shape or class ids.
            ValueError: ``instance`` missing for a model that uses it; ids that
                are not integers (float, bool) or do not fit in int32.
        """
        inputs = self._ids(label, instance)
        if self.config.use_vae or self.is_sean:
            inputs["seed"] = tf.constant(seed, tf.int32)
        return self.signatures["serving_default"](**inputs)["image"].numpy()

    def _need_sean(self, what: str, signature: str | None = None) -> None:
        if not self.is_sean:
            raise ValueError(f"{what} is for SEAN models (norm_mode='sean'); {self.source} is "
                             f"norm_mode={self.config.norm_mode!r}.")
        if signature is not None and signature not in self.signatures:
            raise KeyError(f"{self.source} has no {signature} signature (no style encoder, or exported by an "
                           "older spade-tf); export it again from its training workdir.")

    def encode_styles(self, image, label) -> tuple[np.ndarray, np.ndarray]:
        """SEAN: uint8 photos [B, H, W, 3] and their label maps [B, H, W] (at the model's size) ->
        (style_codes float32 [B, semantic_nc, style_dim], present bool [B, semantic_nc]).

        Absent regions (``present`` False) have zero codes; ``with_mean``
        (``spade_tf.sean_styles``) fills them with ``mean_style_codes``.

        Raises:
            ValueError: not a SEAN model; a photo that is not uint8.
            KeyError: a model without its style encoder.
            tf.errors.InvalidArgumentError: bad shapes or ids (naming the input).
        """
        self._need_sean("encode_styles", "encode_styles")
        image = np.asarray(image)
        if image.dtype != np.uint8:
            raise ValueError(f"encode_styles takes uint8 RGB images; got dtype {image.dtype}.")
        out = self.signatures["encode_styles"](style_image=tf.constant(image),
                                               style_label=_int32_ids(label, "style_label"))
        return out["style_codes"].numpy(), out["present"].numpy()

    def synthesize_styles(self, label, style_codes, instance=None, seed: int = 0) -> np.ndarray:
        """SEAN: ``label`` [B, H, W] with ``style_codes`` float32 [B, semantic_nc, style_dim] -> uint8 images."""
        self._need_sean("synthesize_styles")
        inputs = self._ids(label, instance)
        inputs["style_codes"] = tf.constant(np.asarray(style_codes, np.float32))
        inputs["seed"] = tf.constant(seed, tf.int32)
        return self.signatures["synthesize_styles"](**inputs)["image"].numpy()

    def synthesize_from_photo(self, label, style_image, style_label, instance=None, seed: int = 0) -> np.ndarray:
        """SEAN: each label map with the styles of its photo (one per label map); regions
        absent from the photo take the mean style code."""
        self._need_sean("synthesize_from_photo", "synthesize_from_photo")
        inputs = self._ids(label, instance)
        inputs["style_image"] = tf.constant(np.asarray(style_image, np.uint8))
        inputs["style_label"] = _int32_ids(style_label, "style_label")
        inputs["seed"] = tf.constant(seed, tf.int32)
        return self.signatures["synthesize_from_photo"](**inputs)["image"].numpy()

    def synthesize_latent(self, label, instance=None, latent=None) -> np.ndarray:
        """A VAE model's ``synthesize_latent``: ``latent`` float32 [B, z_dim] instead of a seed."""
        if not self.config.use_vae:
            raise ValueError("synthesize_latent is for VAE models (use_vae); this model has no latent.")
        inputs = {"label": _int32_ids(label, "label")}
        if self.config.use_instance_map:
            if instance is None:
                raise ValueError("This model uses instance maps: pass 'instance' [B, H, W] int ids.")
            inputs["instance"] = _int32_ids(instance, "instance")
        inputs["latent"] = tf.constant(np.asarray(latent, np.float32))
        return self.signatures["synthesize_latent"](**inputs)["image"].numpy()

    @property
    def can_encode(self) -> bool:
        """Whether the model has a style encoder (``encode_style``)."""
        return "encode_style" in self.signatures

    def encode_style(self, image) -> tuple[np.ndarray, np.ndarray]:
        """uint8 photos [B, H, W, 3] -> (mean, logvar) float32 [B, z_dim] of their style latents.

        Raises:
            KeyError: a model without the encoder (not VAE, or exported without it).
        """
        if not self.can_encode:
            raise KeyError(f"{self.source} has no style encoder (encode_style signature): "
                           + ("not a VAE model." if not self.config.use_vae else
                              "export it again from its training workdir."))
        image = np.asarray(image)
        if image.dtype != np.uint8:
            raise ValueError(f"encode_style takes uint8 RGB images; got dtype {image.dtype}.")
        out = self.signatures["encode_style"](image=tf.constant(image))
        return out["mean"].numpy(), out["logvar"].numpy()

    def predict_png_styles(self, label_pngs, style_codes, instance_pngs=None, seed: int = 0) -> list[bytes]:
        """SEAN: ``predict_png`` with ``style_codes`` float32 [B, semantic_nc, style_dim]."""
        self._need_sean("predict_png_styles", "predict_png_styles")
        inputs = {"label_png_bytes": tf.constant(list(label_pngs), tf.string),
                  "style_codes": tf.constant(np.asarray(style_codes, np.float32)), "seed": tf.constant(seed, tf.int32)}
        if self.config.use_instance_map:
            inputs["instance_png_bytes"] = tf.constant(list(instance_pngs or label_pngs), tf.string)
        return list(self.signatures["predict_png_styles"](**inputs)["image_png_bytes"].numpy())

    def predict_png(self, label_pngs, instance_pngs=None, seed: int = 0) -> list[bytes]:
        """The ``predict_png`` signature: 8/16-bit grayscale PNGs of ids -> RGB PNGs.

        ``instance_pngs`` for instance models (default: the label maps, whose
        class boundaries then act as instance edges); ``seed`` for VAE models.

        Raises:
            tf.errors.InvalidArgumentError: a PNG that is not an id map of the
                model's size, or ids out of range (the message says which).
            KeyError: a SavedModel exported before ``predict_png`` existed.
        """
        if "predict_png" not in self.signatures:
            raise KeyError(f"{self.source} has no predict_png signature (exported by an older spade-tf); "
                           "export it again.")
        inputs = {"label_png_bytes": tf.constant(list(label_pngs), tf.string)}
        if self.config.use_instance_map:
            inputs["instance_png_bytes"] = tf.constant(list(instance_pngs or label_pngs), tf.string)
        if self.config.use_vae or self.is_sean:
            inputs["seed"] = tf.constant(seed, tf.int32)
        return list(self.signatures["predict_png"](**inputs)["image_png_bytes"].numpy())


def _int32_ids(array, name: str) -> tf.Tensor:
    """Integer ids as int32; refuses what ``tf.constant(x, tf.int32)`` would silently change.

    Floats are refused even with whole values: a float label map is most often
    an image or a normalised tensor passed by mistake. Ids outside int32 would
    wrap around to other (possibly valid) classes.
    """
    array = np.asarray(array)
    if array.dtype.kind not in "iu":
        raise ValueError(f"{name} must be an integer array of ids; got dtype {array.dtype} "
                         f"(cast with .astype(np.int32) if it holds whole class ids).")
    info = np.iinfo(np.int32)
    if array.size and (array.min() < info.min or array.max() > info.max):
        raise ValueError(f"{name} has ids {array.min()}..{array.max()} outside int32 "
                         f"[{info.min}, {info.max}]; expected class ids.")
    return tf.constant(array.astype(np.int32))


def _load_saved_model(saved: str):
    """``tf.saved_model.load`` with one-line errors naming the damaged file.

    TF raises OSError, ValueError, IndexError or an OpError (with multi-line
    messages) for a truncated saved_model.pb or variables file.
    """
    try:
        return tf.saved_model.load(saved)
    except Exception as e:  # noqa: BLE001 - re-raised with the file named
        text = str(e)
        detail = " ".join(text.strip().split("\n")[0].split())[:300]
        if "saved_model.pb" in text or "MetaGraph" in text:
            what = f"{os.path.join(saved, 'saved_model.pb')} is truncated or corrupt"
        else:
            variables = os.path.join(saved, "variables")
            files = sorted(os.listdir(variables)) if os.path.isdir(variables) else []
            what = (f"the variables of {saved} ({variables}{os.sep}: {', '.join(files) or 'no files'}) "
                    "are missing, truncated or corrupt")
        raise ValueError(f"{what} ({type(e).__name__}: {detail}); export the model again.") from e


def serving_versions(serving_dir: str) -> list[int]:
    """The integer version directories of a TF Serving model directory, ascending (TF Serving's rule)."""
    if not os.path.isdir(serving_dir):
        return []
    return sorted(int(d) for d in os.listdir(serving_dir) if d.isdigit())


def _latest_version(serving_dir: str) -> str:
    versions = serving_versions(serving_dir)
    if not versions:
        raise FileNotFoundError(f"{serving_dir} has no numbered SavedModel version.")
    return os.path.join(serving_dir, str(versions[-1]))


def resolve_model_path(path: str) -> tuple[str, str]:
    """What ``path`` is: ``("workdir", path)`` or ``("saved_model", <the SavedModel dir>)``.

    An export dir resolves to its newest ``serving/<version>``.

    Raises:
        FileNotFoundError: naming what was expected at ``path``.
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"Model path {path} does not exist.")
    if is_workdir(path):
        return "workdir", path
    saved = path
    if os.path.isdir(os.path.join(path, "serving")):
        saved = _latest_version(os.path.join(path, "serving"))
    if not os.path.isfile(os.path.join(saved, "saved_model.pb")):
        raise FileNotFoundError(
            f"{path} is neither an export dir (serving/<version>/), a SavedModel nor a training "
            "workdir (config.json + checkpoints/)."
        )
    config_path = os.path.join(saved, CONFIG_ASSET)
    if not os.path.isfile(config_path):
        raise FileNotFoundError(f"{config_path} is missing: was {saved} exported by spade-tf?")
    return "saved_model", saved


def load_config(path: str) -> SPADEConfig:
    """The config of what ``load_synthesizer(path)`` would load, without loading any weights."""
    kind, resolved = resolve_model_path(path)
    if kind == "workdir":
        return read_config(resolved)
    return SPADEConfig.from_json(os.path.join(resolved, CONFIG_ASSET))


def load_synthesizer(path: str, checkpoint: str | int | None = None,
                     style_images: int | None = None, log: Callable[[str], None] | None = None) -> Synthesizer:
    """Loads ``path``: an export dir, one ``serving/<version>`` SavedModel, or a workdir.

    A workdir is read from its latest checkpoint (or ``checkpoint``) without
    exporting anything; a SEAN workdir's mean style codes are computed on
    ``style_images`` (default ``sean_styles.DEFAULT_STYLE_IMAGES``) images of
    its training data, as export does (``log`` says so).

    Raises:
        FileNotFoundError: naming what was expected at ``path``.
        ValueError: a damaged SavedModel, naming the file; a SEAN workdir
            whose training data is unknown.
    """
    from spade_tf.sean_styles import DEFAULT_STYLE_IMAGES, training_mean_styles

    kind, saved = resolve_model_path(path)
    if kind == "workdir":
        restored = load_generator(path, checkpoint)
        encoder = fold_spectral_norm(restored.encoder) if restored.encoder is not None else None
        mean = None
        if restored.config.norm_mode == "sean":
            styles = training_mean_styles(restored.style_encoder, restored.config,
                                          style_images or DEFAULT_STYLE_IMAGES, workdir=path)
            (log or (lambda _: None))(f"mean style codes of {styles.source}")
            mean = styles.codes
        module = SynthesisModule(fold_spectral_norm(restored.generator), restored.config, encoder=encoder,
                                 style_encoder=restored.style_encoder, mean_style_codes=mean)
        # The SavedModel's signatures, traced here instead of loaded.
        signatures = {name: _traced_signature(fn, specs) for name, (fn, specs) in module.endpoints().items()}
        return Synthesizer(restored.config, signatures, path, restored.step, mean_style_codes=mean)
    config = SPADEConfig.from_json(os.path.join(saved, CONFIG_ASSET))
    loaded = _load_saved_model(saved)
    signatures = {name: Signature.from_concrete_function(concrete) for name, concrete in loaded.signatures.items()}
    name = os.path.basename(os.path.normpath(saved))
    version = int(name) if name.isdigit() else 1
    step = None
    card = os.path.join(path, "model_card.json")
    if os.path.isfile(card):
        with open(card) as f:
            step = json.load(f).get("training_steps")
    mean = None
    if config.norm_mode == "sean":
        mean_path = os.path.join(saved, MEAN_STYLES_ASSET)
        if not os.path.isfile(mean_path):
            raise FileNotFoundError(f"{mean_path} is missing: export the SEAN model again.")
        mean = np.load(mean_path)
    synthesizer = Synthesizer(config, signatures, saved, step, version, mean_style_codes=mean)
    synthesizer._loaded = loaded  # keeps the variables alive
    return synthesizer
