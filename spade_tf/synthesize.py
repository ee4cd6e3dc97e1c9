"""Synthesize images from label maps with a trained or exported model.

    python -m spade_tf.synthesize --model=exported/synthetic --labels=my_labels/ --out=out/ --colorize

``--model``: an export dir, a ``serving/<version>`` SavedModel or a training
workdir. ``--labels``: a PNG of class ids (8- or 16-bit grayscale) or a
directory of them; they are resized (nearest) to the model's size. Writes
``<name>.png`` per label map (``<name>_<seed>.png`` for several VAE samples),
and ``<name>_label.png`` colour-coded beside it with ``--colorize``.

SEAN models (``norm_mode="sean"``) paint each region with a style code: by
default its class's mean style code (``mean_style_codes.npy`` of the
export); ``--style_image=photo.jpg --style_label=photo_label.png`` takes every
region's style from one photo, and ``--region_style=<class name or id>:<image>,<label>``
(repeatable, applied after it) one class's style from another; classes
that no photo shows keep the mean code. A photo and its label map must have
the same size; both are resized and cropped to the model's size as the
training data was (``preprocess_mode``). ``--seed`` draws ACE's noise (the
same seed, the same image; -1: none).

    python -m spade_tf.synthesize --model=exported/sean --labels=labels/ --out=out/ \
      --style_image=photo.jpg --style_label=photo_label.png --region_style=sky:sunset.jpg,sunset_label.png
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys

import numpy as np
from absl import app, flags
from PIL import Image

from spade_tf.data.layouts import DataError
from spade_tf.data.validation import LABEL_MODES
from spade_tf.segmap import out_of_range_ids, valid_label_ids

FLAGS = flags.FLAGS


def define_flags() -> None:
    """The CLI's flags, defined when it runs (not at import: importing this module defines none)."""
    if "labels" in FLAGS:
        return
    flags.DEFINE_string("model", None, "Export dir, SavedModel or training workdir.")
    flags.DEFINE_string("labels", None, "A label-map PNG or a directory of them.")
    flags.DEFINE_string("instances", None, "Instance-map PNG or directory (same file names), for instance models.")
    flags.DEFINE_string("out", None, "Output directory.")
    flags.DEFINE_bool("colorize", False, "Also write the colour-coded label map beside each output.")
    flags.DEFINE_integer("num_samples", 1, "Style samples per label map (VAE models).", lower_bound=1)
    flags.DEFINE_integer("seed", 0, "First style seed (VAE models); the seed of ACE's noise (SEAN models; -1: none).")
    flags.DEFINE_integer("batch_size", 4, "Label maps per call.", lower_bound=1)
    flags.DEFINE_string("checkpoint", None, "With a training workdir as --model: a checkpoint step or path "
                        "instead of the newest.")
    flags.DEFINE_string("style_image", None, "SEAN models: a photo whose regions give every region its style "
                        "(with --style_label).")
    flags.DEFINE_string("style_label", None, "SEAN models: the label map of --style_image (grayscale PNG of ids, "
                        "the photo's size).")
    flags.DEFINE_multi_string("region_style", [], "SEAN models: <class name or id>:<image>,<label>: that class's "
                              "style from another photo (repeatable).")


@dataclasses.dataclass(frozen=True)
class RegionStyle:
    """``--region_style``: one class's style from a photo and its label map."""

    spec: str
    target: str  # class name or id, as given
    image: str
    label: str


def parse_region_style(spec: str) -> RegionStyle:
    """``<class name or id>:<image>,<label>`` -> RegionStyle; DataError naming the format."""
    target, sep, files = spec.partition(":")
    image, comma, label = files.rpartition(",")
    if not (sep and comma and target.strip() and image and label):
        raise DataError(f"--region_style={spec}: expected <class name or id>:<image>,<label>, e.g. "
                        "sky:photo.jpg,photo_label.png.")
    return RegionStyle(spec, target.strip(), image, label)


def class_names(model: str | None, config) -> list[str] | None:
    """The class names of a model: its export's model card, else those this project knows (synthetic)."""
    from spade_tf.export.exporter import label_names

    if isinstance(model, str):
        for card in (os.path.join(model, "model_card.json"),
                     os.path.join(os.path.dirname(os.path.dirname(os.path.normpath(model))), "model_card.json")):
            if os.path.isfile(card):
                with open(card) as f:
                    names = json.load(f).get("label_names")
                if names:
                    return names
    return label_names(config)


def resolve_class(target: str, names: list[str] | None, config, spec: str) -> int:
    """A class name (case-insensitive) or id -> its id; DataError listing the names."""
    if target.lstrip("-").isdigit():
        return int(target)
    lowered = [n.lower() for n in names or []]
    if target.lower() in lowered:
        return lowered.index(target.lower())
    known = f"one of {names}" if names else "an id (this model records no class names)"
    raise DataError(f"--region_style={spec}: no class {target!r}; expected {known}.")


def style_codes(synth, model, style_image: str | None = None, style_label: str | None = None,
                region_styles: list[RegionStyle] = (), log=print):
    """A SEAN model's style codes [semantic_nc, style_dim]: the mean codes, then the regions
    of ``style_image``, then each ``region_styles`` class from its photo.

    Raises:
        DataError: a missing or unreadable photo or label map, a label map not
            of its photo's size, an unknown class, a class its photo lacks.
    """
    from spade_tf.sean_styles import class_channel, read_style_pair, with_mean

    c = synth.config
    codes = np.array(synth.mean_style_codes, np.float32)

    def encode(image, label):
        photo, ids = read_style_pair(image, label, c)
        encoded, present = synth.encode_styles(photo[None], ids[None])
        return encoded[0], present[0]

    if style_image is not None:
        encoded, present = encode(style_image, style_label)
        codes = with_mean(encoded[None], present[None], codes)[0]
        log(f"styles of {int(present.sum())} regions from {style_image}")
    names = class_names(model, c)
    for region in region_styles:
        class_id = resolve_class(region.target, names, c, region.spec)
        try:
            channel = class_channel(class_id, c)
        except DataError as e:
            raise DataError(f"--region_style={region.spec}: {e}") from None
        encoded, present = encode(region.image, region.label)
        if not present[channel]:
            name = f"{names[class_id]} ({class_id})" if names and class_id < len(names) else f"id {class_id}"
            raise DataError(f"--region_style={region.spec}: class {name} is not in {region.label} (at the style "
                            "encoder's resolution, after resizing to the model's size).")
        codes[channel] = encoded[channel]
    return codes


def list_pngs(path: str) -> list[str]:
    if os.path.isdir(path):
        files = sorted(os.path.join(path, f) for f in os.listdir(path) if f.lower().endswith(".png"))
        if not files:
            raise DataError(f"No .png label maps in {path}.")
        return files
    if not os.path.isfile(path):
        raise DataError(f"Label path {path} does not exist.")
    return [path]


def read_ids(path, size: tuple[int, int], what: str = "Label map", name: str | None = None) -> np.ndarray:
    """An int32 [H, W] id map, resized (nearest) to ``size``; DataError naming the file.

    ``path``: a file name or a binary file object (the painter's uploads),
    then named ``name`` in errors.
    """
    name = name or path
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode not in LABEL_MODES:
                raise DataError(f"{what} {name} has mode {img.mode}; expected a grayscale PNG of ids "
                                f"({', '.join(LABEL_MODES)}), not colours.")
            if img.size != (size[1], size[0]):
                img = img.resize((size[1], size[0]), Image.NEAREST)
            return np.asarray(img, dtype=np.int32)
    except DataError:
        raise
    except Exception as e:  # PIL raises many types for corrupt files
        raise DataError(f"{what} {name} cannot be read as an image: {e}") from e


def check_ids(ids: np.ndarray, path: str, label_nc: int, contain_dontcare_label: bool) -> None:
    bad = out_of_range_ids(ids, label_nc, contain_dontcare_label)
    if bad.size:
        raise DataError(f"Label map {path} has ids {bad[:10].tolist()} out of range; the model expects "
                        f"{valid_label_ids(label_nc, contain_dontcare_label)}.")


def _check_out(out: str) -> None:
    """OutputError when ``out`` cannot become a directory (a file, or under one)."""
    from spade_tf.export.exporter import OutputError

    if os.path.exists(out) and not os.path.isdir(out):
        raise OutputError(out, "exists and is not a directory (--out is the folder the images go to)")
    parent = os.path.dirname(os.path.abspath(out))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise OutputError(out, f"{parent} is a file, not a directory")


def synthesize(model, labels: str, out: str, instances: str | None = None, colorize: bool = False,
               num_samples: int = 1, seed: int = 0, batch_size: int = 4, log=print,
               checkpoint: str | int | None = None, style_image: str | None = None,
               style_label: str | None = None, region_styles: list[str] = ()) -> list[str]:
    """Writes one PNG per label map (and sample); returns the written paths.

    ``checkpoint`` picks a training checkpoint (a step or a path) when
    ``model`` is a training workdir; the newest otherwise. ``style_image``
    and ``style_label``, ``region_styles`` (``<class>:<image>,<label>``):
    a SEAN model's styles (see the module docstring).

    Raises:
        DataError: a label, instance, style photo or style label map that
            cannot be used, naming it; style arguments for a model that is not
            SEAN.
        OutputError: ``out`` or an image in it cannot be written.
    """
    from spade_tf.export import load_synthesizer
    from spade_tf.export.exporter import writing
    from spade_tf.utils.visualize import colorize as colour
    from spade_tf.utils.visualize import save_png

    _check_out(out)  # before loading a model for nothing
    if (style_image is None) != (style_label is None):
        raise DataError("--style_image and --style_label go together: a photo and its label map.")
    regions = [parse_region_style(spec) for spec in region_styles]
    styled = style_image is not None or bool(regions)
    missing = [(what, path) for what, path in
               [("Style photo", style_image), ("Style label map", style_label)]
               + [(w, p) for r in regions for w, p in (("Style photo", r.image), ("Style label map", r.label))]
               if path is not None and not os.path.isfile(path)]
    if missing:
        raise DataError(f"{missing[0][0]} {missing[0][1]} does not exist.")
    synth = load_synthesizer(model, checkpoint) if isinstance(model, str) else model
    c = synth.config
    sean = c.norm_mode == "sean"
    if styled and not sean:
        flag = "--style_image" if style_image is not None else "--region_style"
        raise DataError(f"{flag} is for SEAN models (norm_mode='sean'), which take per-region style codes; "
                        f"{synth.source} is norm_mode={c.norm_mode!r}.")
    codes = style_codes(synth, model, style_image, style_label, regions, log) if styled else None
    size = c.image_size
    paths = list_pngs(labels)
    # Read and check every file before writing anything.
    label_maps, instance_maps = [], []
    for path in paths:
        ids = read_ids(path, size)
        check_ids(ids, path, c.label_nc, c.contain_dontcare_label)
        label_maps.append(ids)
        if c.use_instance_map:
            if instances is None:
                instance_maps.append(ids)  # class boundaries as edges
            else:
                inst_path = os.path.join(instances, os.path.basename(path)) if os.path.isdir(instances) else instances
                if not os.path.isfile(inst_path):
                    raise DataError(f"No instance map {inst_path} for label map {path}.")
                instance_maps.append(read_ids(inst_path, size, "Instance map"))
    if c.use_instance_map and instances is None:
        log("note: the model uses instance maps and none were given: using class boundaries as instance edges")
    samples = num_samples if c.use_vae or sean else 1  # SEAN: samples of ACE's noise
    with writing(out):
        os.makedirs(out, exist_ok=True)
    written = []
    for start in range(0, len(paths), batch_size):
        chunk = slice(start, start + batch_size)
        label = np.stack(label_maps[chunk])
        instance = np.stack(instance_maps[chunk]) if c.use_instance_map else None
        for s in range(samples):
            if codes is not None:
                batch_codes = np.broadcast_to(codes, (len(label), *codes.shape))
                images = synth.synthesize_styles(label, batch_codes, instance, seed=seed + s)
            else:
                images = synth(label, instance, seed=seed + s)
            for path, ids, image in zip(paths[chunk], label, images):
                stem = os.path.splitext(os.path.basename(path))[0]
                name = f"{stem}_{seed + s}.png" if samples > 1 else f"{stem}.png"
                target = os.path.join(out, name)
                with writing(target):
                    save_png(image, target)
                written.append(target)
                if colorize and s == 0:
                    target = os.path.join(out, f"{stem}_label.png")
                    with writing(target):
                        save_png(np.concatenate([colour(ids), image], axis=1), target)
        log(f"{min(start + batch_size, len(paths))}/{len(paths)} label maps")
    return written


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    for name in ("model", "labels", "out"):
        if getattr(FLAGS, name) is None:
            raise app.UsageError(f"--{name} is required.")
    from spade_tf.export.exporter import OutputError

    try:
        written = synthesize(FLAGS.model, FLAGS.labels, FLAGS.out, FLAGS.instances, FLAGS.colorize,
                             FLAGS.num_samples, FLAGS.seed, FLAGS.batch_size, checkpoint=FLAGS.checkpoint,
                             style_image=FLAGS.style_image, style_label=FLAGS.style_label,
                             region_styles=FLAGS.region_style)
    except (DataError, FileNotFoundError, ValueError, OutputError) as e:
        # ValueError includes a damaged SavedModel (load_synthesizer names the file).
        sys.exit(f"error: {e}")
    print(f"done: {len(written)} images in {FLAGS.out}")


def run() -> None:
    define_flags()
    app.run(main)


if __name__ == "__main__":
    run()
