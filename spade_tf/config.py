"""Configuration: one frozen dataclass, named presets, validation, JSON.

Only factories (``build_generator`` and friends) read a config; layers and
models take plain arguments. The presets carry the per-dataset defaults of the
official NVlabs/SPADE option parser (``options/*.py``, ``data/*_dataset.py``).

The config is flat rather than nested so that ``get_preset("coco", ngf=16)``
and the training CLI's flags map one-to-one onto fields; the field groups are
marked below.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
from typing import Any

# Dataset layouts spade_tf.data reads (here so that the entry points list them without TensorFlow).
DATASET_MODES = ("auto", "custom", "coco", "ade20k", "cityscapes", "synthetic")
MIXED_PRECISION = ("none", "mixed_float16", "mixed_bfloat16")  # train.py --mixed_precision
# VAE models' style at evaluation (train.py / evaluate.py --vae_protocol; spade_tf.evaluation.styles).
VAE_PROTOCOLS = ("encode", "random")
# FID/KID feature networks (evaluate.py --fid_network; spade_tf.evaluation.inception).
FID_NETWORKS = ("auto", "standard", "keras")

UPSAMPLING_MODES = {"normal": 5, "more": 6, "most": 7}
PARAM_FREE_NORMS = ("syncbatch", "batch", "instance")
# How the label map modulates the generator's normalized features: SPADE's
# convolutions on the one-hot map (Park et al. 2019), CLADE's learned
# (gamma, beta) per class (Tan et al. 2021, official --norm_mode clade), or
# SEAN's ACE: SPADE blended with per-region style codes (Zhu et al. 2020,
# ZPdesu/SEAN). SEAN's official CelebAMask-HQ setting is the "custom" preset
# with label_nc=19, no instance map, no don't-care label, load and crop 256
# (its README: --dataset_mode custom --label_nc 19 --no_instance
# --load_size 256 --crop_size 256), i.e.
# get_preset("custom", label_nc=19, load_size=256, norm_mode="sean").
NORM_MODES = ("spade", "clade", "sean")
# Defaults a norm mode's official code changes (get_preset applies them unless overridden):
# official SEAN's discriminator has n_layers_D 3 (and stride 2 in every middle conv).
NORM_MODE_DEFAULTS = {"sean": {"n_layers_D": 3}}
GAN_MODES = ("hinge", "ls", "original")
INIT_TYPES = ("xavier", "xavier_uniform", "normal", "kaiming", "orthogonal")
PREPROCESS_MODES = ("resize_and_crop", "scale_width_and_crop", "fixed", "none")


@dataclasses.dataclass(frozen=True)
class SPADEConfig:
    """Every setting of a SPADE model and its training, with official defaults.

    The defaults are those of NVlabs/SPADE's ``train.py`` with no flags
    (which trains COCO-Stuff); presets override the dataset-specific fields.
    """

    preset: str = "custom"

    # --- Labels and data -------------------------------------------------
    label_nc: int = 182  # classes, without the don't-care class
    contain_dontcare_label: bool = False  # adds one channel for id 255
    use_instance_map: bool = True  # adds one instance-edge channel
    preprocess_mode: str = "resize_and_crop"
    load_size: int = 286
    crop_size: int = 256
    aspect_ratio: float = 1.0  # width / height of the generated image
    use_flip: bool = True

    # --- Generator -------------------------------------------------------
    ngf: int = 64
    num_upsampling_layers: str = "normal"
    norm_mode: str = "spade"  # "spade" | "clade" | "sean" (NORM_MODES)
    # CLADE-ICPE (official --add_dist): intra-class positional encoding maps
    # modulate the class-wise gamma/beta; "clade" only.
    use_positional_encoding: bool = False
    param_free_norm_G: str = "syncbatch"  # official norm_G 'spectralspadesyncbatch3x3'
    spade_kernel_size: int = 3
    spade_hidden: int = 128  # hard-coded 'nhidden' in the official SPADE
    use_spectral_norm_G: bool = True
    use_vae: bool = False
    z_dim: int = 256
    # SEAN: length of each region's style code (official hard-coded
    # style_length / Zencoder output_nc 512); "sean" only.
    style_dim: int = 512

    # --- Discriminator and encoder -----------------------------------------
    ndf: int = 64
    num_D: int = 2
    n_layers_D: int = 4
    use_spectral_norm_D: bool = True  # official norm_D 'spectralinstance'
    use_spectral_norm_E: bool = True  # official norm_E 'spectralinstance'

    # --- Initialisation ----------------------------------------------------
    init_type: str = "xavier"
    init_variance: float = 0.02  # official name; it is the gain of xavier

    # --- Losses ----------------------------------------------------------
    gan_mode: str = "hinge"
    use_gan_feat_loss: bool = True
    use_vgg_loss: bool = True
    lambda_feat: float = 10.0
    lambda_vgg: float = 10.0
    lambda_kld: float = 0.05
    vgg_weights: str = ""  # local VGG19 weights file; empty = random weights

    # --- Optimisation -----------------------------------------------------
    batch_size: int = 1
    lr: float = 2e-4
    # Adam betas; None = the official default for the TTUR setting:
    # (0.0, 0.9) with TTUR, (0.5, 0.999) without.
    beta1: float | None = None
    beta2: float | None = None
    use_ttur: bool = True  # G lr / 2, D lr * 2
    niter: int = 50
    niter_decay: int = 0
    D_steps_per_G: int = 1

    def __post_init__(self):
        _validate(self)

    # Derived values ---------------------------------------------------------
    @property
    def semantic_nc(self) -> int:
        """Channels of the generator's label input: one-hot + don't-care + edges."""
        return (
            self.label_nc
            + int(self.contain_dontcare_label)
            + int(self.use_instance_map)
        )

    @property
    def num_classes(self) -> int:
        """Label channels without the edge map: classes + don't-care (CLADE's lookup rows)."""
        return self.label_nc + int(self.contain_dontcare_label)

    @property
    def num_up_layers(self) -> int:
        return UPSAMPLING_MODES[self.num_upsampling_layers]

    @property
    def latent_size(self) -> tuple[int, int]:
        """(height, width) of the generator's first feature map.

        As official ``compute_latent_vector_size``: ``sw = crop // 2**n``,
        ``sh = round(sw / aspect_ratio)``.
        """
        sw = self.crop_size // (2**self.num_up_layers)
        return round(sw / self.aspect_ratio), sw

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) of the generated image."""
        sh, sw = self.latent_size
        scale = 2**self.num_up_layers
        return sh * scale, sw * scale

    @property
    def adam_betas(self) -> tuple[float, float]:
        default = (0.0, 0.9) if self.use_ttur else (0.5, 0.999)
        return (
            default[0] if self.beta1 is None else self.beta1,
            default[1] if self.beta2 is None else self.beta2,
        )

    @property
    def learning_rates(self) -> tuple[float, float]:
        """(generator, discriminator) initial learning rates (TTUR: lr/2, lr*2)."""
        return (self.lr / 2, self.lr * 2) if self.use_ttur else (self.lr, self.lr)

    @property
    def dontcare_channel(self) -> int:
        """The segmap channel that label id 255 is mapped to (only with a don't-care label)."""
        return self.label_nc

    # Overrides and serialisation -------------------------------------------
    def replace(self, **overrides: Any) -> "SPADEConfig":
        _check_names(overrides)
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self, path: str | os.PathLike | None = None) -> str:
        text = json.dumps(self.to_dict(), indent=2, sort_keys=True)
        if path is not None:
            with open(path, "w") as f:
                f.write(text + "\n")
        return text

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "SPADEConfig":
        _check_names(values)
        return cls(**values)

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> "SPADEConfig":
        try:
            with open(path) as f:
                values = json.load(f)
        except FileNotFoundError:
            raise FileNotFoundError(f"Config file {path} does not exist.") from None
        except json.JSONDecodeError as e:
            raise ValueError(f"Config file {path} is not valid JSON: {e}") from None
        return cls.from_dict(values)


FIELD_NAMES = tuple(f.name for f in dataclasses.fields(SPADEConfig))

# Official per-dataset defaults (NVlabs data/*_dataset.py).
PRESETS: dict[str, dict[str, Any]] = {
    # ADE20K: 150 classes, id 0 = 'unknown' kept as its own channel (the
    # official postprocess() result is discarded), no instance maps.
    "ade20k": dict(
        label_nc=150, contain_dontcare_label=True, use_instance_map=False,
        preprocess_mode="resize_and_crop", load_size=286, crop_size=256,
    ),
    # COCO-Stuff: 182 ids, 255 = don't care, instance maps.
    "coco": dict(
        label_nc=182, contain_dontcare_label=True, use_instance_map=True,
        preprocess_mode="resize_and_crop", load_size=286, crop_size=256,
    ),
    # Cityscapes: 35 label ids, instance maps, 512x256 images, batch 16.
    "cityscapes": dict(
        label_nc=35, contain_dontcare_label=False, use_instance_map=True,
        preprocess_mode="fixed", load_size=512, crop_size=512,
        aspect_ratio=2.0, num_upsampling_layers="more", batch_size=16,
    ),
    # The official 'custom' dataset mode; set label_nc to your data's.
    "custom": dict(
        label_nc=13, contain_dontcare_label=False, use_instance_map=False,
        preprocess_mode="resize_and_crop", load_size=286, crop_size=256,
    ),
    # Small model on the built-in procedural scenes: trains on a CPU.
    "synthetic": dict(
        label_nc=8, contain_dontcare_label=False, use_instance_map=False,
        preprocess_mode="none", load_size=64, crop_size=64, ngf=16, ndf=16,
        param_free_norm_G="batch", use_vgg_loss=False, batch_size=4,
    ),
}


def parse_overrides(items) -> dict[str, Any]:
    """``["key=value", ...]`` (the ``--set`` flag) -> overrides; values are JSON, else strings.

    Raises:
        ValueError: an item without ``=``.
    """
    out = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--set={item!r}: expected key=value.")
        key, value = item.split("=", 1)
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value  # a plain string
    return out


def get_preset(name: str, **overrides: Any) -> SPADEConfig:
    """Returns the config of a named preset with keyword overrides applied.

    Args:
        name: one of ``PRESETS`` ("ade20k", "coco", "cityscapes", "custom",
            "synthetic").
        **overrides: any ``SPADEConfig`` field, e.g. ``ngf=16``. With
            ``norm_mode`` the defaults of that norm mode's official code
            (``NORM_MODE_DEFAULTS``) come before the overrides.

    Raises:
        ValueError: for an unknown preset, an unknown field or a bad value.
    """
    if name not in PRESETS:
        raise ValueError(
            f"Unknown preset {name!r}; expected one of {sorted(PRESETS)}."
        )
    _check_names(overrides)
    norm_mode = overrides.get("norm_mode", PRESETS[name].get("norm_mode", "spade"))
    return SPADEConfig(preset=name, **{**PRESETS[name], **NORM_MODE_DEFAULTS.get(norm_mode, {}), **overrides})


def _check_names(values: dict[str, Any]) -> None:
    for key in values:
        if key not in FIELD_NAMES:
            close = difflib.get_close_matches(key, FIELD_NAMES, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"Unknown config field {key!r}.{hint}")


def _choice(name: str, value: Any, choices) -> None:
    if value not in choices:
        raise ValueError(f"{name}={value!r} is not valid; expected one of {list(choices)}.")


def _positive(config: SPADEConfig, *names: str) -> None:
    for name in names:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ValueError(f"{name}={value!r} is not valid; expected a positive number.")


def _check_type(name: str, type_name: str, value: Any) -> None:
    """Type checks by the field's annotation (a string: ``from __future__ import annotations``).

    Runs before the range checks: a string from ``--set lr=abc`` would
    otherwise fail later with a TypeError, and NaN passes every comparison
    (``nan <= 0`` is False) and would train on NaN losses.
    """
    if type_name == "bool" and not isinstance(value, bool):
        raise ValueError(f"{name}={value!r} is not valid; expected True or False.")
    if type_name == "int" and (isinstance(value, bool) or not isinstance(value, int)):
        raise ValueError(f"{name}={value!r} is not valid; expected an integer.")
    if type_name == "str" and not isinstance(value, str):
        raise ValueError(f"{name}={value!r} is not valid; expected a string.")
    if type_name in ("float", "float | None"):
        if value is None and type_name == "float | None":
            return
        finite = isinstance(value, (int, float)) and not isinstance(value, bool)
        try:
            finite = finite and math.isfinite(value)
        except OverflowError:  # an int too large for a float
            finite = False
        if not finite:
            none = " or None" if type_name == "float | None" else ""
            raise ValueError(f"{name}={value!r} is not valid; expected a finite number{none}.")


def _validate(c: SPADEConfig) -> None:
    for f in dataclasses.fields(c):
        _check_type(f.name, f.type, getattr(c, f.name))
    _choice("num_upsampling_layers", c.num_upsampling_layers, UPSAMPLING_MODES)
    _choice("param_free_norm_G", c.param_free_norm_G, PARAM_FREE_NORMS)
    _choice("norm_mode", c.norm_mode, NORM_MODES)
    if c.use_positional_encoding and c.norm_mode != "clade":
        raise ValueError(
            f"use_positional_encoding=True is not valid with norm_mode={c.norm_mode!r}; "
            "it is CLADE's intra-class positional encoding (norm_mode='clade')."
        )
    if c.norm_mode == "sean":
        _validate_sean(c)
    _choice("gan_mode", c.gan_mode, GAN_MODES)
    _choice("init_type", c.init_type, INIT_TYPES)
    _choice("preprocess_mode", c.preprocess_mode, PREPROCESS_MODES)
    _choice("spade_kernel_size", c.spade_kernel_size, (3, 5))
    _positive(
        c, "label_nc", "load_size", "crop_size", "aspect_ratio", "ngf", "ndf",
        "num_D", "n_layers_D", "z_dim", "spade_hidden", "batch_size", "lr",
        "init_variance", "D_steps_per_G", "style_dim",
    )
    if c.label_nc > 255 - int(c.contain_dontcare_label):
        raise ValueError(f"label_nc={c.label_nc} is not valid; ids must fit in 0..254.")
    scale = 2**c.num_up_layers
    if c.crop_size % scale:
        raise ValueError(
            f"crop_size={c.crop_size} is not valid with num_upsampling_layers="
            f"{c.num_upsampling_layers!r}: it must be a multiple of {scale}."
        )
    if round(c.crop_size // scale / c.aspect_ratio) < 1:
        raise ValueError(
            f"aspect_ratio={c.aspect_ratio} is not valid with crop_size="
            f"{c.crop_size}: the generated image would have no rows."
        )
    if c.preprocess_mode in ("resize_and_crop", "scale_width_and_crop") and c.load_size < max(
        round(c.crop_size / c.aspect_ratio), c.crop_size
    ):
        raise ValueError(
            f"load_size={c.load_size} is not valid with crop_size={c.crop_size}: "
            f"{c.preprocess_mode!r} crops from the resized image, so load_size >= crop size."
        )
    if c.num_upsampling_layers == "most" and c.ngf < 2:
        raise ValueError(f"ngf={c.ngf} is not valid with 'most'; it needs ngf >= 2.")
    for name in ("beta1", "beta2"):
        value = getattr(c, name)
        if value is not None and (isinstance(value, bool) or not 0.0 <= value < 1.0):
            raise ValueError(f"{name}={value!r} is not valid; expected a number in [0, 1) or None.")
    for name in ("lambda_feat", "lambda_vgg", "lambda_kld"):
        if getattr(c, name) < 0:
            raise ValueError(f"{name}={getattr(c, name)} is not valid; expected >= 0.")
    if c.niter < 0 or c.niter_decay < 0:
        raise ValueError(f"niter={c.niter}, niter_decay={c.niter_decay}: expected >= 0.")


def _validate_sean(c: SPADEConfig) -> None:
    """SEAN settings the official code (ZPdesu/SEAN) can build and run.

    Official SEAN trains with its defaults: norm_G 'spectralspadesyncbatch3x3'
    (spectral norm on the block convs; 3x3 SPADE convs; ACE's own param-free
    norm is hard-coded 'spadesyncbatch3x3' whatever norm_G says), ngf 64,
    num_upsampling_layers 'normal', no VAE. It hard-codes 19 per-class
    ``fc_mu`` layers, so it only runs with at most 19 segmap channels; here
    there is one per segmap channel (``semantic_nc``), which for CelebAMask-HQ
    (19 classes, no instance map, no don't-care) is the same network.
    """
    if c.use_vae:
        raise ValueError(
            "use_vae=True is not valid with norm_mode='sean': SEAN's style comes from "
            "per-region style codes (the Zencoder), not a VAE latent; official SEAN has no VAE path."
        )
    if c.num_upsampling_layers == "most":
        raise ValueError(
            "num_upsampling_layers='most' is not valid with norm_mode='sean': official SEAN builds "
            "up_4 but never calls it (its forward is commented out), and its conv_img then gets "
            "ngf channels instead of ngf // 2; use 'normal' (official default) or 'more'."
        )
