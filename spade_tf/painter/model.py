"""What the painter knows of its model: the card, the classes, start-up label maps."""

from __future__ import annotations

import base64
import io
import json
import os

import numpy as np
from PIL import Image

from spade_tf.config import SPADEConfig
from spade_tf.data.layouts import DataError
from spade_tf.segmap import DONTCARE_ID
from spade_tf.synthesize import check_ids, read_ids
from spade_tf.utils.visualize import label_palette

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Uploads larger than this many pixels are refused before decoding: 8 MiB of
# PNG can inflate to gigabytes. Cityscapes' 2048x1024 is well inside.
MAX_UPLOAD_PIXELS = 4096 * 4096


class PainterModel:
    """A model as the painter serves it.

    Args:
        config: the model's config.
        card: its model card (``model_card.json`` of an export dir, or the
            same fields built from the config).
        synthesizer: the loaded ``Synthesizer``; None when predictions go to
            a TF Serving at ``--serving_url`` (only the card is needed then).
        start_label: int [H, W] ids shown at start-up; default a synthetic
            scene (synthetic preset) or class 0 everywhere.
    """

    def __init__(self, config: SPADEConfig, card: dict, synthesizer=None, start_label: np.ndarray | None = None,
                 mean_style_codes: np.ndarray | None = None):
        self.config = config
        self.card = card
        self.synthesizer = synthesizer
        self.start_label = start_label
        if mean_style_codes is None and synthesizer is not None:
            mean_style_codes = getattr(synthesizer, "mean_style_codes", None)
        # SEAN: float32 [semantic_nc, style_dim], the style of regions without a photo.
        self.mean_style_codes = mean_style_codes

    @property
    def is_sean(self) -> bool:
        return self.config.norm_mode == "sean"

    @property
    def can_encode_styles(self) -> bool:
        """Whether style photos can be encoded here (a loaded SEAN model with its style encoder)."""
        return self.is_sean and self.synthesizer is not None and "encode_styles" in self.synthesizer.signatures

    def sean_info(self) -> dict | None:
        """The page's SEAN settings: style size, channels, mean codes, whether photos can be encoded."""
        if not self.is_sean:
            return None
        c = self.config
        mean = self.mean_style_codes
        return {"style_dim": c.style_dim, "channels": c.semantic_nc,
                "dontcare_channel": c.label_nc if c.contain_dontcare_label else None,
                "mean_style_codes": None if mean is None else np.asarray(mean, np.float32).tolist(),
                "encode": self.can_encode_styles}

    def encode_style_upload(self, photo: bytes, label: bytes) -> dict:
        """A style photo and its label map (uploads) -> ``{"codes": [semantic_nc][style_dim], "present": [...]}``.

        Read as ``synthesize --style_image`` reads them (same size, resized
        and cropped as the training data).

        Raises:
            DataError: not a SEAN model here; unreadable, oversized or mismatched files.
        """
        from spade_tf.sean_styles import read_style_pair

        if not self.can_encode_styles:
            raise DataError("Style photos need a SEAN model (norm_mode='sean') loaded by the painter with its style "
                            f"encoder; this one is norm_mode={self.config.norm_mode!r}"
                            + (" served elsewhere." if self.synthesizer is None else "."))
        for data, what in ((photo, "style photo"), (label, "style label map")):
            width, height = _header_size(data, what, "an image")
            if width * height > MAX_UPLOAD_PIXELS:
                raise DataError(f"The {what} is {width}x{height}; images up to {MAX_UPLOAD_PIXELS} pixels are read.")
        image, ids = read_style_pair(photo, label, self.config, "(upload)", "(upload)")
        codes, present = self.synthesizer.encode_styles(image[None], ids[None])
        return {"codes": codes[0].tolist(), "present": present[0].tolist()}

    @property
    def has_scenes(self) -> bool:
        """Whether ``scene(seed)`` can draw the model's procedural scenes."""
        from spade_tf.data import synthetic

        return self.config.preset == "synthetic" and self.config.label_nc == len(synthetic.CLASS_NAMES)

    def scene(self, seed: int) -> np.ndarray:
        """Label map [H, W] of synthetic scene ``seed`` at the model's size (synthetic preset)."""
        from spade_tf.data import synthetic

        if not self.has_scenes:
            raise DataError(f"Synthetic scenes are drawn with the synthetic preset's classes; this model is "
                            f"'{self.config.preset}' with {self.config.label_nc} classes.")
        return synthetic.scene_labels(seed, *self.config.image_size)

    def start(self) -> np.ndarray:
        if self.start_label is not None:
            return self.start_label
        if self.has_scenes:
            return self.scene(0)
        return np.zeros(self.config.image_size, np.int32)

    def classes(self) -> list[dict]:
        """The palette: ``{"id", "name", "color"}`` per paintable id.

        Colours are ``utils.visualize``'s fixed palette, so the label view
        matches ``synthesize --colorize``. With a don't-care label, id 255 is
        listed (id ``label_nc`` is the same channel).
        """
        c = self.config
        names = self.card.get("label_names") or [f"class {i}" for i in range(c.label_nc)]
        palette = label_palette(256)
        classes = [{"id": i, "name": names[i], "color": palette[i].tolist()} for i in range(c.label_nc)]
        if c.contain_dontcare_label:
            classes.append({"id": DONTCARE_ID, "name": "don't care", "color": palette[DONTCARE_ID].tolist()})
        return classes

    def read_upload(self, data: bytes) -> np.ndarray:
        """An uploaded label map (PNG of ids, 8/16-bit; resized nearest to the model's size) -> ids.

        Raises:
            DataError: not a PNG, colours instead of ids, ids out of range.
        """
        if not data.startswith(PNG_SIGNATURE):
            raise DataError("The upload is not a PNG; expected an 8- or 16-bit grayscale PNG of class ids.")
        width, height = _header_size(data, "upload", "a PNG")
        if width * height > MAX_UPLOAD_PIXELS:
            raise DataError(f"The upload is {width}x{height}; label maps up to {MAX_UPLOAD_PIXELS} pixels are "
                            f"read (it is resized to the model's {self.config.image_size[1]}x"
                            f"{self.config.image_size[0]} anyway).")
        ids = read_ids(io.BytesIO(data), self.config.image_size, name="upload")
        check_ids(ids, "upload", self.config.label_nc, self.config.contain_dontcare_label)
        return ids


def ids_json(ids: np.ndarray) -> dict:
    """Ids [H, W] -> ``{"height", "width", "ids"}`` (base64 of little-endian uint16), for the page."""
    ids = np.asarray(ids)
    return {"height": int(ids.shape[0]), "width": int(ids.shape[1]),
            "ids": base64.b64encode(ids.astype("<u2").tobytes()).decode("ascii")}


def load_painter_model(path: str, *, checkpoint: str | int | None = None, labels: str | None = None,
                       load_weights: bool = True, log=print) -> PainterModel:
    """Reads ``path`` (export dir, SavedModel or training workdir) for the painter.

    Args:
        path: the model.
        checkpoint: with a workdir, a checkpoint step or path (default: newest).
        labels: a label-map PNG to start with (resized nearest to the model's size).
        load_weights: False when a TF Serving answers the predictions (only
            the card and the config are read).
        log: progress messages.

    Raises:
        FileNotFoundError, ValueError: as ``load_synthesizer``.
        DataError: an unusable ``labels`` file.
    """
    from spade_tf.export.exporter import model_card
    from spade_tf.export.runtime import load_config, load_synthesizer, resolve_model_path

    kind, resolved = resolve_model_path(path)
    config = load_config(path)
    start = None
    if labels is not None:
        start = read_ids(labels, config.image_size)
        check_ids(start, labels, config.label_nc, config.contain_dontcare_label)
    synthesizer = None
    if load_weights:
        synthesizer = load_synthesizer(path, checkpoint, log=log)
        if "predict_png" not in synthesizer.signatures:
            raise ValueError(f"{synthesizer.source} has no predict_png signature (exported by an older "
                             "spade-tf); export it again.")
    card = None
    if kind == "saved_model":
        # The export dir's card, when it describes this version: at <path> or above serving/<version>.
        version_dir = os.path.normpath(resolved)
        candidate = os.path.join(os.path.dirname(os.path.dirname(version_dir)), "model_card.json")
        if os.path.isfile(candidate):
            with open(candidate) as f:
                card = json.load(f)
            if str(card.get("serving_version")) != os.path.basename(version_dir):
                card = None
    if card is None:
        version = synthesizer.version if synthesizer is not None else 1
        card = model_card(config, version=version, step=getattr(synthesizer, "step", None), source=path,
                          calibration_source=None, files={})
    mean = None
    if config.norm_mode == "sean" and synthesizer is None and kind == "saved_model":
        from spade_tf.export.runtime import MEAN_STYLES_ASSET

        mean_path = os.path.join(resolved, MEAN_STYLES_ASSET)
        mean = np.load(mean_path) if os.path.isfile(mean_path) else None
    model = PainterModel(config, card, synthesizer, start, mean_style_codes=mean)
    if synthesizer is not None:
        # The first call traces or warms up the graph: pay it before the URL is printed.
        import tensorflow as tf

        label = tf.io.encode_png(np.asarray(model.start(), np.uint16)[..., None]).numpy()
        synthesizer.predict_png([label])
        if model.is_sean:
            synthesizer.predict_png_styles([label], np.asarray(model.mean_style_codes)[None])
        log(f"loaded {synthesizer.source} ({config.preset}, {config.image_size[1]}x{config.image_size[0]}, "
            f"{config.label_nc} classes)")
    return model


def _header_size(data: bytes, what: str, kind: str) -> tuple[int, int]:
    """(width, height) of an uploaded image from its header (no pixels decoded).

    Raises:
        DataError: "The <what> cannot be read as <kind>: ..." (PIL raises many types for corrupt files).
    """
    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.size
    except Exception as e:
        raise DataError(f"The {what} cannot be read as {kind}: {e}") from e
