"""Writing the deployable artifacts of a generator.

Layout (``export_model``)::

    <export_dir>/serving/<version>/     SavedModel for TensorFlow Serving
    <export_dir>/generator.keras        inference generator (Keras file)
    <export_dir>/tflite/generator_{float32,float16,dynamic_range,int8,int16x8}.tflite
    <export_dir>/tflite/positional_encoding.tflite  CLADE-ICPE with int16x8: its maps (that file's input)
    <export_dir>/model_card.json, README.md
    <export_dir>/mean_style_codes.npy   SEAN models: the style of a region without a photo

Re-exporting into the same directory adds a serving version (earlier ones are
kept: TensorFlow Serving picks the newest) and replaces the other files;
files of an earlier export that this one does not write (a TFLite variant no
longer asked for) are moved into ``<export_dir>/stale-<time>/``, so that the
top level holds exactly what ``model_card.json`` lists.
"""

from __future__ import annotations

import contextlib
import glob
import io
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable

import keras
import numpy as np

from spade_tf.config import SPADEConfig
from spade_tf.data import synthetic
from spade_tf.export.measure import measure_positional, measure_variants, recommend
from spade_tf.export.runtime import CONFIG_ASSET, MEAN_STYLES_ASSET, MEAN_STYLES_FILE, serving_versions
from spade_tf.export.serving import SynthesisModule
from spade_tf.export.tflite import VARIANTS, positional_tflite, takes_positional, to_tflite, unsupported_reason
from spade_tf.export.variants import CALIBRATED, POSITIONAL_TFLITE, RECOMMENDED_MIN_PSNR_DB
from spade_tf.models import fold_spectral_norm
from spade_tf.sean_styles import MeanStyles
from spade_tf.segmap import valid_label_ids
from spade_tf.utils.files import atomic_write


class OutputError(OSError):
    """A path that cannot be written (read-only, not a directory, disk full...).

    ``str()`` is ``cannot write <path>: <reason>``, one line for the CLIs.
    """

    def __init__(self, path: str, reason: OSError | str):
        if isinstance(reason, OSError):
            super().__init__(reason.errno, reason.strerror or str(reason), path)
        else:
            super().__init__(None, reason, path)

    def __str__(self):
        return f"cannot write {self.filename}: {self.strerror}"


@contextlib.contextmanager
def writing(path: str):
    """Turns an OSError raised inside into an ``OutputError`` naming ``path``."""
    try:
        yield
    except OutputError:
        raise
    except OSError as e:
        raise OutputError(getattr(e, "filename", None) or path, e) from e


def next_version(serving_dir: str) -> int:
    """1 + the largest integer version directory (1 when there is none)."""
    return max(serving_versions(serving_dir), default=0) + 1


def _atomic_dir(final: str, write: Callable[[str], None]) -> None:
    """Writes a directory next to ``final`` and renames it into place.

    TensorFlow Serving polls ``serving/``: it must never see half a version.
    """
    parent = os.path.dirname(final)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-", dir=parent)
    try:
        write(tmp)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def export_model(
    generator: keras.Model,
    config: SPADEConfig,
    export_dir: str,
    *,
    version: int | None = None,
    step: int | None = None,
    source: str | None = None,
    calibration: Iterable[dict[str, np.ndarray]] | None = None,
    calibration_source: str = "",
    tflite_variants: Iterable[str] = VARIANTS,
    measure: bool = True,
    encoder: keras.Model | None = None,
    style_encoder: keras.Model | None = None,
    mean_styles: MeanStyles | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Writes every artifact of ``generator``; returns a dict of their paths.

    Args:
        generator: a generator of ``config`` (spectral norm folded here).
        config: its config.
        export_dir: output directory (created).
        version: serving version; default the next integer.
        step: training steps, for the model card.
        source: where the weights came from, for the model card.
        calibration: examples ``{"label": int32 [H, W], "instance": ...}`` for
            the int8 and int16x8 models (a few hundred label maps from the
            training data); its first four also measure the files' PSNR.
        calibration_source: what ``calibration`` is, for the model card.
        tflite_variants: which TFLite files to write.
        measure: time each TFLite file and take its PSNR against float32 (or
            the SavedModel's graph without float32) for the model card.
        encoder: a VAE model's style encoder: the SavedModel gets its
            ``encode_style`` signature (photo -> latent mean and log-variance),
            which ``evaluate.py`` uses for the official VAE protocol.
        style_encoder: a SEAN model's Zencoder: the SavedModel gets
            ``encode_styles`` and ``synthesize_from_photo``.
        mean_styles: a SEAN model's mean style codes
            (``sean_styles.training_mean_styles``; required for SEAN): the
            style of every region a request brings no photo or codes for,
            stored in the graphs and as ``mean_style_codes.npy``. The
            calibration examples' ``"image"`` photos (``calibration_examples(...,
            images=True)``), when they have them and ``style_encoder`` is given,
            are encoded into the int8 calibration's style codes; otherwise the
            mean codes calibrate.

    Raises:
        FileExistsError: ``serving/<version>`` exists already (nothing is
            overwritten; pick another ``--version``).
        OutputError: a path that cannot be written (read-only, not a directory).
    """
    tflite_variants = list(tflite_variants)
    sean = config.norm_mode == "sean"
    if sean and mean_styles is None:
        raise ValueError("A SEAN model's export needs its mean style codes (mean_styles: "
                         "spade_tf.sean_styles.training_mean_styles on the training data).")
    if not sean and (style_encoder is not None or mean_styles is not None):
        raise ValueError(f"A style encoder or mean style codes were given but the config has "
                         f"norm_mode={config.norm_mode!r}.")
    for variant in tflite_variants:
        if variant not in VARIANTS:
            raise ValueError(f"TFLite variant {variant!r} is not valid; expected some of {list(VARIANTS)}.")
    skipped = {v: unsupported_reason(v, config) for v in tflite_variants if unsupported_reason(v, config)}
    for variant, reason in skipped.items():
        log(f"skipping generator_{variant}.tflite: {reason}")
    tflite_variants = [v for v in tflite_variants if v not in skipped]
    serving_dir = os.path.join(export_dir, "serving")
    version = next_version(serving_dir) if version is None else int(version)
    if version < 1:
        raise ValueError(f"version={version} is not valid; TensorFlow Serving versions are integers >= 1.")
    version_dir = os.path.join(serving_dir, str(version))
    if os.path.exists(version_dir):
        raise FileExistsError(f"{version_dir} exists already; pass another --version (next free: "
                              f"{next_version(serving_dir)}).")

    if os.path.exists(export_dir) and not os.path.isdir(export_dir):
        raise OutputError(export_dir, "exists and is not a directory")
    with writing(export_dir):
        os.makedirs(export_dir, exist_ok=True)

    folded = fold_spectral_norm(generator)
    module = SynthesisModule(folded, config, encoder=fold_spectral_norm(encoder) if encoder is not None else None,
                             style_encoder=style_encoder,
                             mean_style_codes=mean_styles.codes if mean_styles is not None else None)
    paths = {}

    def write_serving(tmp):
        module.save(tmp)
        os.makedirs(os.path.join(tmp, os.path.dirname(CONFIG_ASSET)), exist_ok=True)
        config.to_json(os.path.join(tmp, CONFIG_ASSET))
        if mean_styles is not None:
            np.save(os.path.join(tmp, MEAN_STYLES_ASSET), mean_styles.codes)

    start = time.perf_counter()
    with writing(version_dir):
        _atomic_dir(version_dir, write_serving)
    paths["serving"] = version_dir
    log(f"wrote {version_dir} ({time.perf_counter() - start:.0f} s)")

    keras_path = os.path.join(export_dir, "generator.keras")
    tmp = os.path.join(export_dir, ".tmp-generator.keras")
    with writing(keras_path):
        folded.save(tmp)
        os.replace(tmp, keras_path)
    paths["keras"] = keras_path
    log(f"wrote {keras_path}")
    if mean_styles is not None:
        path = os.path.join(export_dir, MEAN_STYLES_FILE)
        with writing(path):
            buffer = io.BytesIO()
            np.save(buffer, mean_styles.codes)
            atomic_write(path, buffer.getvalue())
        paths["mean_style_codes"] = path
        log(f"wrote {path} (mean style codes of {mean_styles.source})")

    tflite_dir = os.path.join(export_dir, "tflite")
    if tflite_variants:
        with writing(tflite_dir):
            os.makedirs(tflite_dir, exist_ok=True)
    calibration = list(calibration) if calibration is not None else None
    for variant in tflite_variants:
        representative = None
        if variant in CALIBRATED:
            if not calibration:
                raise ValueError(f"The {variant} TFLite model needs calibration label maps (none were given).")
            representative = _representative(calibration, config, module)
        start = time.perf_counter()
        path = os.path.join(tflite_dir, f"generator_{variant}.tflite")
        flatbuffer = to_tflite(module, variant, representative)
        with writing(path):
            atomic_write(path, flatbuffer)
        paths[f"tflite_{variant}"] = path
        log(f"wrote {path} ({os.path.getsize(path) / 2**20:.1f} MiB, {time.perf_counter() - start:.0f} s)")
    if any(takes_positional(v, config) for v in tflite_variants):
        path = os.path.join(tflite_dir, POSITIONAL_TFLITE)
        with writing(path):
            atomic_write(path, positional_tflite(module))
        paths["tflite_positional_encoding"] = path
        log(f"wrote {path} (CLADE-ICPE's maps, the input 'positional' of "
            f"{', '.join(f'generator_{v}.tflite' for v in tflite_variants if takes_positional(v, config))})")

    measured = None
    if measure and tflite_variants:
        measured = _measure(module, config, {v: paths[f"tflite_{v}"] for v in tflite_variants}, calibration,
                            paths.get("tflite_positional_encoding"))
        for name, m in measured["variants"].items():
            quality = "reference" if m["psnr_db"] is None else f"PSNR {m['psnr_db']} dB"
            log(f"  {name}: {m['size_bytes'] / 2**20:.1f} MiB, {m['latency_ms']:.1f} ms, {quality}")
    paths["model_card"] = os.path.join(export_dir, "model_card.json")
    paths["readme"] = os.path.join(export_dir, "README.md")
    files = {k: os.path.relpath(v, export_dir) for k, v in paths.items()}
    _move_stale(export_dir, set(files.values()), log)
    calibrated = any(v in CALIBRATED for v in tflite_variants)
    card = model_card(config, version=version, step=step, source=source, encode_style=encoder is not None,
                      calibration_source=calibration_source if calibrated else None,
                      files=files, measured={**(measured or {}), **({"skipped": skipped} if skipped else {})},
                      encode_styles=style_encoder is not None, mean_styles=mean_styles)
    with writing(paths["model_card"]):
        atomic_write(paths["model_card"], (json.dumps(card, indent=2) + "\n").encode())
    with writing(paths["readme"]):
        atomic_write(paths["readme"], model_readme(card).encode())
    return paths


def _move_stale(export_dir: str, current: set[str], log: Callable[[str], None]) -> None:
    """Moves the files an earlier export wrote and this one did not into ``stale-<time>/``.

    Only the exporter's own files (TFLite variants, leftovers of an
    interrupted write); earlier ``serving/<version>`` directories stay, as
    TensorFlow Serving versions. Moved rather than deleted: they may be the
    only copy of a variant someone still ships.
    """
    owned = [os.path.join("tflite", os.path.basename(p)) for pattern in ("generator_*.tflite*", POSITIONAL_TFLITE + "*")
             for p in glob.glob(os.path.join(export_dir, "tflite", pattern))]
    owned += [os.path.basename(p) for pattern in (".tmp-generator.keras", "model_card.json.tmp*", "README.md.tmp*",
                                                  MEAN_STYLES_FILE, MEAN_STYLES_FILE + ".tmp*")
              for p in glob.glob(os.path.join(export_dir, pattern))]
    stale = sorted(rel for rel in owned if rel not in current)
    if not stale:
        return
    base = os.path.join(export_dir, "stale-" + time.strftime("%Y%m%d-%H%M%S"))
    target, n = base, 1
    while os.path.exists(target):
        target, n = f"{base}-{n}", n + 1
    for rel in stale:
        destination = os.path.join(target, rel)
        with writing(destination):
            os.makedirs(os.path.dirname(destination), exist_ok=True)
            shutil.move(os.path.join(export_dir, rel), destination)
        log(f"moved {rel} (from an earlier export, not written by this one) to "
            f"{os.path.relpath(destination, export_dir)}")
    tflite_dir = os.path.join(export_dir, "tflite")
    if os.path.isdir(tflite_dir) and not os.listdir(tflite_dir):
        os.rmdir(tflite_dir)


def _measure(module: SynthesisModule, config: SPADEConfig, paths: dict[str, str],
             calibration: list[dict] | None, positional_path: str | None = None) -> dict:
    """The model card's TFLite figures (see ``measure.measure_variants``)."""
    from spade_tf.export.calibration import random_layouts

    examples = (calibration or random_layouts(config, 4))[:4]
    inputs = list(_representative(examples, config, module)())
    reference, against = None, "float32 TFLite"
    if "float32" not in paths:
        reference = [module.generate(**x).numpy() for x in inputs]
        against = "the SavedModel's graph"
    maps = None
    if positional_path is not None:
        # The files that take the maps get them from positional_encoding.tflite, as on a device.
        maps = measure_positional(positional_path, inputs)
        inputs = [{**x, "positional": p} for x, p in zip(inputs, maps.pop("outputs"))]
    variants = measure_variants(paths, inputs, reference)
    if maps is not None:
        for name in variants:
            if takes_positional(name, config):
                variants[name]["positional_from"] = maps["file"]
    return {
        **({"positional_encoding": maps} if maps is not None else {}),
        "variants": variants,
        "psnr": f"worst of {len(inputs)} label maps ({'calibration' if calibration else 'random'}), "
                f"against {against}",
        "latency": f"median of 5 batch-1 calls, LiteRT interpreter, {os.cpu_count()} CPU cores of the exporting "
                   "machine",
        "recommended_on_device": recommend(variants),
        "recommendation_rule": f"the fastest file (here) with PSNR >= {RECOMMENDED_MIN_PSNR_DB:g} dB",
    }


def _representative(examples: list[dict], config: SPADEConfig, module: SynthesisModule | None = None):
    """The TFLite converter's representative inputs: dicts by name (a list would be fed in
    the converted graph's own input order), with SEAN models the ``style_codes`` of each
    example's photo."""
    rng = np.random.default_rng(0)
    if config.norm_mode == "sean":
        return _sean_representative(examples, config, module)

    def generate():
        for example in examples:
            inputs = {"label": np.asarray(example["label"], np.int32)[None]}
            if config.use_instance_map:
                inputs["instance"] = np.asarray(example["instance"], np.int32)[None]
            if config.use_vae:
                inputs["latent"] = rng.standard_normal((1, config.z_dim)).astype(np.float32)
            yield inputs

    return generate


def _sean_representative(examples: list[dict], config: SPADEConfig, module: SynthesisModule):
    """SEAN: each example's label map with the codes of its photo (the mean code for the
    regions it lacks), as ``synthesize_from_photo`` would use; the mean codes without a photo."""
    codes = []
    for example in examples:
        if "image" in example and module.style_encoder is not None:
            codes.append(module.photo_style_codes(example["image"][None], np.asarray(example["label"], np.int32)[None])
                         .numpy())
        else:
            codes.append(module.mean_codes.numpy()[None])

    def generate():
        for example, style_codes in zip(examples, codes):
            inputs = {"label": np.asarray(example["label"], np.int32)[None]}
            if config.use_instance_map:
                inputs["instance"] = np.asarray(example["instance"], np.int32)[None]
            inputs["style_codes"] = style_codes.astype(np.float32)
            yield inputs

    return generate


def label_names(config: SPADEConfig) -> list[str] | None:
    """Class names where this project knows them (the synthetic scenes)."""
    if config.preset == "synthetic" and config.label_nc == len(synthetic.CLASS_NAMES):
        return list(synthetic.CLASS_NAMES)
    return None


def model_card(config: SPADEConfig, *, version: int, step: int | None, source: str | None,
               calibration_source: str | None, files: dict, measured: dict | None = None,
               encode_style: bool = False, encode_styles: bool = False,
               mean_styles: MeanStyles | None = None) -> dict:
    h, w = config.image_size
    sean = config.norm_mode == "sean"
    inputs = {"label": f"int32 [batch, {h}, {w}] class ids"}
    if config.use_instance_map:
        inputs["instance"] = f"int32 [batch, {h}, {w}] instance ids (only equality matters)"
    if config.use_vae:
        inputs["seed"] = "int32 scalar (style sample; synthesize_latent takes 'latent' float32 [batch, z_dim])"
    if sean:
        inputs["seed"] = SEAN_SEED
    png = f"string [batch]: 8- or 16-bit grayscale PNGs of {{}} ids, {w}x{h} (REST: {{{{\"b64\": ...}}}})"
    png_inputs = {"label_png_bytes": png.format("class")}
    if config.use_instance_map:
        png_inputs["instance_png_bytes"] = png.format("instance")
    if config.use_vae:
        png_inputs["seed"] = "int32 scalar (style sample)"
    if sean:
        png_inputs["seed"] = SEAN_SEED
    tflite = {"input_shape": [1, h, w], "calibration": calibration_source,
              "note": "no input checks in TFLite graphs: ids out of range give all-zero one-hot rows"}
    if "tflite_positional_encoding" in files:  # CLADE-ICPE with an int16x8 file
        tflite["positional"] = (f"generator_int16x8.tflite takes 'positional' float32 [1, {h}, {w}, 2], the output "
                                f"of tflite/{POSITIONAL_TFLITE} (label int32 [1, {h}, {w}] -> positional); the other "
                                "files compute CLADE-ICPE's maps themselves")
    if sean:
        tflite["style_codes"] = (f"float32 [1, {config.semantic_nc}, {config.style_dim}] (mean_style_codes.npy[None] "
                                 "for the mean styles); no ACE noise: the SavedModel's output with seed -1")
    return {
        "model": "SPADE generator (spade-tf)",
        "preset": config.preset,
        "label_nc": config.label_nc,
        "valid_label_ids": valid_label_ids(config.label_nc, config.contain_dontcare_label),
        "label_names": label_names(config),
        "use_instance_map": config.use_instance_map,
        "use_vae": config.use_vae,
        "image_size": [h, w],
        "training_steps": step,
        "source": source,
        "serving_version": version,
        "signature": {"name": "serving_default", "inputs": inputs,
                      "outputs": {"image": f"uint8 [batch, {h}, {w}, 3] RGB"}},
        "png_signature": {"name": "predict_png", "inputs": png_inputs,
                          "outputs": {"image_png_bytes": f"string [batch]: RGB PNGs, {w}x{h}"}},
        "style_signature": {"name": "encode_style", "inputs": {"image": f"uint8 [batch, {h}, {w}, 3] RGB photo"},
                            "outputs": {"mean": f"float32 [batch, {config.z_dim}]",
                                        "logvar": f"float32 [batch, {config.z_dim}]"},
                            "use": "latent = mean + exp(logvar / 2) * N(0, 1) -> synthesize_latent"}
        if encode_style else None,
        "sean": _sean_card(config, encode_styles, mean_styles) if sean else None,
        "tflite": {**tflite, **(measured or {})},
        "files": files,
        "config": config.to_dict(),
    }


SEAN_SEED = ("int32 scalar: draws ACE's noise (official SEAN adds it at inference); the same seed gives the same "
             "image, a negative seed adds no noise (what the TFLite files compute)")


def _sean_card(config: SPADEConfig, encode_styles: bool, mean_styles: MeanStyles | None) -> dict:
    """The model card's SEAN part: the style signatures and the mean style codes."""
    h, w = config.image_size
    codes = f"float32 [batch, {config.semantic_nc}, {config.style_dim}] (one per segmap channel)"
    label = {"label": f"int32 [batch, {h}, {w}] class ids"}
    if config.use_instance_map:
        label["instance"] = f"int32 [batch, {h}, {w}] instance ids"
    photo = {"style_image": f"uint8 [batch, {h}, {w}, 3] RGB photo",
             "style_label": f"int32 [batch, {h}, {w}] its class ids"}
    image = {"image": f"uint8 [batch, {h}, {w}, 3] RGB"}
    signatures = {
        "serving_default": "every region with its class's mean style code",
        "synthesize_styles": {"inputs": {**label, "style_codes": codes, "seed": "int32 scalar"}, "outputs": image},
        "predict_png_styles": {"inputs": {"label_png_bytes": "as predict_png", "style_codes": codes,
                                          "seed": "int32 scalar"},
                               "outputs": {"image_png_bytes": "as predict_png"}},
    }
    if encode_styles:
        signatures["encode_styles"] = {
            "inputs": photo,
            "outputs": {"style_codes": f"{codes}: zeros for regions absent from the photo",
                        "present": f"bool [batch, {config.semantic_nc}]: whether the encoder saw each region"}}
        signatures["synthesize_from_photo"] = {
            "inputs": {**label, **photo, "seed": "int32 scalar"}, "outputs": image,
            "use": "one style photo per label map; regions absent from it take the mean style code"}
    card = {"style_dim": config.style_dim, "signatures": signatures,
            "noise": SEAN_SEED,
            "style_rows": "row c of style_codes is segmap channel c: class id c, then don't care (id 255) and "
                          "the instance-edge channel where the model has them"}
    if mean_styles is not None:
        card["mean_style_codes"] = {"file": MEAN_STYLES_FILE, "shape": list(mean_styles.codes.shape),
                                    "source": mean_styles.source,
                                    "images_per_class": [int(n) for n in mean_styles.counts]}
    return card


def _variants_table(tflite: dict) -> str:
    variants = tflite.get("variants")
    if not variants:
        return ""
    rows = [f"| {name} | {v['size_bytes'] / 2**20:.1f} | {v['latency_ms']:.1f} | "
            f"{'reference' if v['psnr_db'] is None else v['psnr_db']} |" for name, v in variants.items()]
    recommended = tflite.get("recommended_on_device")
    advice = (f"Recommended on device: `generator_{recommended}.tflite` ({tflite['recommendation_rule']})."
              if recommended else f"No file meets {tflite['recommendation_rule']}: ship float32 or float16.")
    return "\n".join([
        "", f"Measured at export (PSNR: {tflite['psnr']}; latency: {tflite['latency']}):", "",
        "| file | MiB | ms | PSNR dB |", "| --- | --- | --- | --- |", *rows, "", advice, ""])


def model_readme(card: dict) -> str:
    h, w = card["image_size"]
    names = card["signature"]["inputs"]
    png_files = "label.png" + (" instance.png" if "instance" in names else "")
    if "seed" in names:
        # A scalar seed fits only TF Serving's columnar format ("inputs": tensors as they are).
        extra = ", 'instance': np.zeros((1, H, W), int).tolist()" if "instance" in names else ""
        rest_body = "'inputs': {'label': np.zeros((1, H, W), int).tolist()" + extra + ", 'seed': 0}"
        rest_doc = "`inputs` holds each input as a tensor with its batch axis, and the scalar `seed`"
        field = "outputs"
        png_body = ("'inputs': {'label_png_bytes': [b64('label.png')]"
                    + (", 'instance_png_bytes': [b64('instance.png')]" if "instance" in names else "")
                    + ", 'seed': 0}")
    else:
        extra = ", 'instance': np.zeros((H, W), int).tolist()" if "instance" in names else ""
        rest_body = "'instances': [{'label': np.zeros((H, W), int).tolist()" + extra + "}]"
        rest_doc = "`instances` holds one object per image"
        field = "predictions"
        png_body = ("'instances': [{'label_png_bytes': b64('label.png')"
                    + (", 'instance_png_bytes': b64('instance.png')" if "instance" in names else "") + "}]")
    grpc_inputs = "    ('label_png_bytes', 'label.png'),\n" + (
        "    ('instance_png_bytes', 'instance.png'),\n" if "instance" in names else "")
    grpc_seed = '\nrequest.inputs["seed"].CopyFrom(tf.make_tensor_proto(0, tf.int32))' if "seed" in names else ""
    tflite_extra = ""
    if "instance" in names:
        tflite_extra += ", instance=np.zeros((1, H, W), np.int32)"
    if card["use_vae"]:
        tflite_extra += ", latent=np.random.standard_normal((1, z_dim)).astype(np.float32)"
    sean = card.get("sean")
    if sean:
        tflite_extra += ",\n               style_codes=np.load(\"mean_style_codes.npy\")[None]"
    return f"""# SPADE generator ({card['preset']}, {h}x{w})

Exported by spade-tf from {card['source'] or 'a training checkpoint'}, after {card['training_steps']} training steps.
Inputs: {json.dumps(names)}; valid ids {card['valid_label_ids']}. Output: `image` uint8 [batch, {h}, {w}, 3].
Label names: {card['label_names'] or 'not recorded (see your dataset)'}.

## TensorFlow Serving

```sh
docker run -p 8501:8501 -p 8500:8500 \\
  -v "$PWD/serving:/models/spade" -e MODEL_NAME=spade tensorflow/serving
```

REST ({rest_doc}; here one all-zeros label map):

```sh
python -c "import json, numpy as np; H, W = {h}, {w}; \\
print(json.dumps({{'signature_name': 'serving_default', \\
{rest_body}}}))" > request.json
curl -s -X POST -d @request.json http://localhost:8501/v1/models/spade:predict > response.json
```

The response is `{{"{field}": [[[[r, g, b], ...]]]}}`: uint8 values, [H][W][3] per image.
Bad ids or shapes come back as HTTP 400 with the InvalidArgument message.

### PNG in, PNG out (`predict_png`)

A label map as a grayscale PNG of ids ({w}x{h}, 8- or 16-bit; here {png_files}) instead of a JSON
array; TF Serving's REST API carries bytes as `{{"b64": ...}}`:

```sh
python -c "import base64, json; b64 = lambda f: {{'b64': base64.b64encode(open(f, 'rb').read()).decode()}}; \\
print(json.dumps({{'signature_name': 'predict_png', {png_body}}}))" > request_png.json
curl -s -X POST -d @request_png.json http://localhost:8501/v1/models/spade:predict \\
  | python -c "import base64, json, sys; \\
open('out.png', 'wb').write(base64.b64decode(json.load(sys.stdin)['{field}'][0]['b64']))"
```

gRPC (port 8500) with `pip install tensorflow-serving-api grpcio` (beside `tensorflow-cpu`, add `--no-deps`:
it depends on the full `tensorflow` package):

```python
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2

request = predict_pb2.PredictRequest()
request.model_spec.name = "spade"
request.model_spec.signature_name = "predict_png"
for name, path in [
{grpc_inputs}]:
    request.inputs[name].CopyFrom(tf.make_tensor_proto([open(path, "rb").read()])){grpc_seed}
# send:
import grpc
from tensorflow_serving.apis import prediction_service_pb2_grpc

stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel("localhost:8500"))
response = stub.Predict(request, 30.0)
open("out.png", "wb").write(tf.make_ndarray(response.outputs["image_png_bytes"])[0])
```

## TFLite (LiteRT)

```python
import numpy as np
from ai_edge_litert.interpreter import Interpreter
H, W = {h}, {w}
runner = Interpreter(model_path="tflite/generator_float32.tflite").get_signature_runner()
image = runner(label=np.zeros((1, H, W), np.int32){tflite_extra})["image"]  # uint8 [1, H, W, 3]
```

Variants: float32 (reference), float16 (half-size weights), dynamic_range (int8 weights),
int8 (full integer), int16x8 (int8 weights, int16 activations); the last two calibrated on
{card['tflite']['calibration'] or 'n/a'}.
{_positional_readme(card)}{_variants_table(card['tflite'])}
TFLite graphs do not check their inputs: validate ids before calling them.
{_sean_readme(card) if sean else ""}
Full config: `model_card.json`.
"""


def _positional_readme(card: dict) -> str:
    """CLADE-ICPE: which TFLite file takes the positional maps, and how to chain the two."""
    if "positional" not in card["tflite"]:
        return ""
    return f"""
CLADE-ICPE: {card['tflite']['positional']}. Chain them:

```python
label = np.zeros((1, H, W), np.int32)  # your ids
maps = Interpreter(model_path="tflite/{POSITIONAL_TFLITE}").get_signature_runner()(label=label)["positional"]
image = Interpreter(model_path="tflite/generator_int16x8.tflite").get_signature_runner()(
    label=label, positional=maps)["image"]
```
"""


def _sean_readme(card: dict) -> str:
    """The export README's SEAN section: styles from codes and photos."""
    sean = card["sean"]
    h, w = card["image_size"]
    nc, dim = sean["mean_style_codes"]["shape"] if "mean_style_codes" in sean else ("semantic_nc", "style_dim")
    source = sean.get("mean_style_codes", {}).get("source", "the training images")
    photo = ""
    if "encode_styles" in sean["signatures"]:
        instance = ", 'instance': [ids.tolist()]" if card["use_instance_map"] else ""
        photo = f"""
`synthesize_from_photo` takes the styles from a photo: `style_image` uint8 [batch, {h}, {w}, 3] and its
label map `style_label` int32 [batch, {h}, {w}] (one per label map, at the model's size: resize and crop
them as the training data was; `python -m spade_tf.synthesize --style_image=... --style_label=...` does).
Regions absent from the photo take the mean style code:

```sh
python -c "import json, numpy as np; from PIL import Image; \\
ids = np.asarray(Image.open('label.png')); photo = np.asarray(Image.open('photo.png').convert('RGB')); \\
style = np.asarray(Image.open('photo_label.png')); \\
print(json.dumps({{'signature_name': 'synthesize_from_photo', 'inputs': {{'label': [ids.tolist()]{instance}, \\
'style_image': [photo.tolist()], 'style_label': [style.tolist()], 'seed': 0}}}}))" > request_photo.json
curl -s -X POST -d @request_photo.json http://localhost:8501/v1/models/spade:predict > response.json
```

`encode_styles` (`style_image`, `style_label` -> `style_codes`, `present`) gives a photo's codes, to mix
regions of several photos: take row c from the photo whose `present[c]` is true.
"""
    return f"""
## Styles (SEAN)

A SEAN generator paints each region with a style code, float32 [{dim}], one per segmap channel
(row c = segmap channel c: class id c, then don't care and the instance-edge channel where the
model has them). `serving_default` and `predict_png` use the **mean style codes**
(`mean_style_codes.npy`, [{nc}, {dim}]: per class, the mean of the codes the style encoder gave it
over {source} where the class is present). `synthesize_styles` (and
`predict_png_styles`) take `style_codes` [batch, {nc}, {dim}] instead.

`seed` (every image signature): {sean['noise']}.
{photo}
The TFLite files take `label` and `style_codes` [1, {nc}, {dim}] and add no noise.
"""
