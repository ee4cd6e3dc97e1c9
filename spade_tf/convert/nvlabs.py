"""Import NVlabs/SPADE PyTorch checkpoints (``latest_net_G.pth`` and friends), and tzt101/CLADE's.

The official trainer saves ``<checkpoints_dir>/<name>/<epoch>_net_{G,D,E}.pth``
with ``torch.save(net.state_dict())``; ``torch_io`` finds and reads those
files. This module holds what is SPADE's own: the key maps of the official
generator, discriminator and encoder onto the Keras networks built from a
``SPADEConfig``. ``key_map.assign_state_dict`` checks every key and shape and
refuses anything that does not fit exactly: a key the model lacks, a weight
the checkpoint lacks, or a shape that differs raises
``StateDictMismatchError`` before a single variable is assigned.

Layouts beyond the per-layer ones of ``key_map`` (convs, spectral norm, batch
norm, linear layers): the VAE generator's ``fc`` output is viewed as NCHW by
PyTorch and reshaped as NHWC here, and the encoder's ``fc_mu`` / ``fc_var``
take an NCHW flatten in PyTorch and an NHWC one here: their rows / columns
are permuted.

tzt101/CLADE is NVlabs/SPADE with ``SPADELight`` norms (``best_net_G.pth``
in its released ``checkpoints/<name>[_dist]/``): the same generator keys
except each norm's ``class_specified_affine.weight`` / ``.bias`` (the class
tables, [classes, channels] on both sides), ``class_specified_affine.
dist_conv_w`` / ``dist_conv_b`` with ICPE (``_dist`` models) and
``inst_conv`` with instance maps; ``norm_mode="clade"`` (and
``use_positional_encoding``) in the config select them.

NVlabs' and CLADE's code and pretrained weights are licensed CC BY-NC-SA 4.0: convert them
for your own non-commercial use; this project does not redistribute them.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping

import keras
import numpy as np

from spade_tf.config import SPADEConfig
from spade_tf.convert.key_map import (
    Entry,
    KeyMap,
    StateDictMismatchError,
    assign_state_dict,
    batch_norm_key_map,
    conv_key_map,
    dense_key_map,
    identity,
)
from spade_tf.convert.torch_io import find_checkpoint_files, load_state_dict, normalize_state_dict
from spade_tf.layers import BatchNorm
from spade_tf.models import build_discriminator, build_encoder, build_generator

__all__ = [
    "ImportedNetworks", "import_checkpoint", "import_discriminator", "import_encoder", "import_generator",
    "write_training_checkpoint",
    # Re-exported: they lived here before torch_io and key_map split off.
    "StateDictMismatchError", "find_checkpoint_files", "load_state_dict",
]


# ------------------------------------------------------------------ key maps


def _spade_key_map(prefix, spade) -> KeyMap:
    key_map = KeyMap()
    if isinstance(spade.param_free_norm, BatchNorm):
        key_map += batch_norm_key_map(f"{prefix}.param_free_norm", spade.param_free_norm)
    return (
        key_map
        + conv_key_map(f"{prefix}.mlp_shared.0", spade.mlp_shared)
        + conv_key_map(f"{prefix}.mlp_gamma", spade.mlp_gamma)
        + conv_key_map(f"{prefix}.mlp_beta", spade.mlp_beta)
    )


def _clade_key_map(prefix, clade) -> KeyMap:
    """tzt101/CLADE's ``SPADELight``: param_free_norm, class_specified_affine (weight, bias,
    [dist_conv_w, dist_conv_b]), [inst_conv]; the class tables are [classes, channels] in both."""
    key_map = KeyMap()
    if isinstance(clade.param_free_norm, BatchNorm):
        key_map += batch_norm_key_map(f"{prefix}.param_free_norm", clade.param_free_norm)
    affine = f"{prefix}.class_specified_affine"
    shape = (clade.classes, clade.channels)
    key_map += KeyMap((Entry(f"{affine}.weight", clade.class_weight, shape),
                       Entry(f"{affine}.bias", clade.class_bias, shape)))
    if clade.positional:
        key_map += conv_key_map(f"{affine}.dist_conv_w", clade.dist_conv_w)
        key_map += conv_key_map(f"{affine}.dist_conv_b", clade.dist_conv_b)
    if clade.instance_edges:
        key_map += conv_key_map(f"{prefix}.inst_conv", clade.inst_conv)
    return key_map


def _resblock_key_map(name, block) -> KeyMap:
    # Registration order of the official SPADEResnetBlock.
    convs = ["conv_0", "conv_1"] + (["conv_s"] if block.learned_shortcut else [])
    norms = ["norm_0", "norm_1"] + (["norm_s"] if block.learned_shortcut else [])
    norm_key_map = _clade_key_map if block.norm_mode == "clade" else _spade_key_map
    key_map = KeyMap()
    for conv in convs:
        key_map += conv_key_map(f"{name}.{conv}", getattr(block, conv))
    for norm in norms:
        key_map += norm_key_map(f"{name}.{norm}", getattr(block, norm))
    return key_map


def _generator_key_map(model, config: SPADEConfig) -> KeyMap:
    c = config
    fc = model.get_layer("fc")
    if c.use_vae:
        sh, sw = c.latent_size
        channels = 16 * c.ngf

        # PyTorch: fc(z).view(-1, C, sh, sw) (NCHW); here Reshape((sh, sw, C)).
        def weight(w):
            z = w.shape[1]
            return w.reshape(channels, sh, sw, z).transpose(1, 2, 0, 3).reshape(-1, z).T

        def bias(b):
            return b.reshape(channels, sh, sw).transpose(1, 2, 0).reshape(-1)

        key_map = dense_key_map("fc", fc, weight, bias)
    else:
        key_map = conv_key_map("fc", fc)
    blocks = ["head_0", "G_middle_0", "G_middle_1", "up_0", "up_1", "up_2", "up_3"]
    if c.num_upsampling_layers == "most":
        blocks.append("up_4")
    for name in blocks:
        key_map += _resblock_key_map(name, model.get_layer(name))
    return key_map + conv_key_map("conv_img", model.get_layer("conv_img"))


def _discriminator_key_map(model, config: SPADEConfig) -> KeyMap:
    key_map = KeyMap()
    for i in range(config.num_D):
        d = model.get_layer(f"discriminator_{i}")
        last = len(d.convs) - 1
        for n, conv in enumerate(d.convs):
            # Official: model0 = [conv, lrelu]; model1.. = [[conv (SN), IN], lrelu]
            # (get_nonspade_norm_layer wraps conv and norm in a Sequential);
            # the last is [conv].
            inner = "0" if n in (0, last) else "0.0"
            key_map += conv_key_map(f"discriminator_{i}.model{n}.{inner}", conv)
    return key_map


def _encoder_key_map(model, config: SPADEConfig) -> KeyMap:
    key_map = KeyMap()
    k = 1
    while any(layer.name == f"layer{k}" for layer in model.layers):
        # Official: layer<k> = Sequential(conv (SN, bias removed), InstanceNorm).
        key_map += conv_key_map(f"layer{k}.0", model.get_layer(f"layer{k}"))
        k += 1
    h, w, channels = (int(d) for d in model.get_layer("flatten").input.shape[1:])

    # PyTorch flattens NCHW, Keras NHWC: permute the weight's input columns.
    def weight(wt):
        z = wt.shape[0]
        return wt.reshape(z, channels, h, w).transpose(0, 2, 3, 1).reshape(z, -1).T

    for name in ("fc_mu", "fc_var"):
        key_map += dense_key_map(name, model.get_layer(name), weight, identity)
    return key_map


# ---------------------------------------------------------------- loading


def _describe(config: SPADEConfig, fields) -> str:
    values = ", ".join(f"{f}={getattr(config, f)!r}" for f in fields)
    return f"preset={config.preset!r}, {values}"


_FIELDS = {
    "generator": (
        "ngf", "semantic_nc", "num_upsampling_layers", "crop_size", "aspect_ratio", "use_vae",
        "z_dim", "spade_hidden", "spade_kernel_size", "param_free_norm_G", "use_spectral_norm_G",
        "norm_mode", "use_positional_encoding",
    ),
    "discriminator": ("ndf", "num_D", "n_layers_D", "semantic_nc", "use_spectral_norm_D"),
    "encoder": ("ngf", "crop_size", "z_dim", "use_spectral_norm_E"),
}


def _check_norm_mode(state_dict, config: SPADEConfig, source: str) -> None:
    """A CLADE checkpoint for a SPADE config (or the reverse, or ICPE's convs without
    use_positional_encoding) is named as such, with the setting that fits it."""
    keys = list(state_dict)
    clade = any(".class_specified_affine." in k for k in keys)
    spade = any(".mlp_shared." in k for k in keys)
    dist = any(".dist_conv_w." in k for k in keys)
    found = "clade" if clade else "spade" if spade else None
    problem = None
    if found and found != config.norm_mode:
        problem = (f"its normalization layers are {found.upper()}'s but the config has "
                   f"norm_mode={config.norm_mode!r}; pass --set=norm_mode={found}")
    elif clade and dist != config.use_positional_encoding:
        problem = (f"it {'has' if dist else 'has no'} CLADE-ICPE positional-encoding convs (dist_conv_w), but the "
                   f"config has use_positional_encoding={config.use_positional_encoding}; pass "
                   f"--set=use_positional_encoding={str(dist).lower()}")
    if problem:
        raise StateDictMismatchError(f"{source}: {problem}. Nothing was loaded.")


def _assign(model, key_map: KeyMap, state_dict, what: str, config: SPADEConfig, source: str):
    state_dict = normalize_state_dict(state_dict, source)
    if what == "generator":
        _check_norm_mode(state_dict, config, source)
    return assign_state_dict(
        model, state_dict, key_map, source, what=what,
        target=f"the config ({_describe(config, _FIELDS[what])})",
        advice="use the preset and settings the checkpoint was trained with (see its opt.txt)",
    )


def import_generator(state_dict: Mapping[str, np.ndarray], config: SPADEConfig,
                     source: str = "state dict") -> keras.Model:
    """Builds ``build_generator(config)`` and fills it from an NVlabs ``net_G`` state dict.

    Spectral norm is kept (raw kernel + u, v), so the model can train on;
    ``fold_spectral_norm`` gives the inference copy. In inference
    (``training=False``) it computes what the PyTorch generator computes in
    eval mode.

    Args:
        state_dict: ``{key: array}`` (see ``load_state_dict``).
        config: the config the checkpoint was trained with (preset, ``ngf``,
            ``num_upsampling_layers``, ``use_vae``, ...).
        source: a name for error messages (the file).

    Raises:
        StateDictMismatchError: naming the first key whose shape differs (both
            shapes), or else the first missing or unused key.
    """
    model = build_generator(config)
    return _assign(model, _generator_key_map(model, config), state_dict, "generator", config, source)


def import_discriminator(state_dict: Mapping[str, np.ndarray], config: SPADEConfig,
                         source: str = "state dict") -> keras.Model:
    """Builds ``build_discriminator(config)`` and fills it from an NVlabs ``net_D`` state dict.

    Official keys ``discriminator_<i>.model0.0.weight``,
    ``discriminator_<i>.model<n>.0.0.weight_orig`` / ``_u`` / ``_v`` (the
    spectral-norm convs), ``discriminator_<i>.model<last>.0.weight``.

    Raises:
        StateDictMismatchError: as ``import_generator``.
    """
    model = build_discriminator(config)
    return _assign(model, _discriminator_key_map(model, config), state_dict, "discriminator", config, source)


def import_encoder(state_dict: Mapping[str, np.ndarray], config: SPADEConfig,
                   source: str = "state dict") -> keras.Model:
    """Builds ``build_encoder(config)`` and fills it from an NVlabs ``net_E`` state dict.

    The official encoder only works at ``crop_size >= 256`` (its dense layers
    take 4x4 maps) and always has 256 outputs: use ``z_dim=256``.

    Raises:
        StateDictMismatchError: as ``import_generator``.
    """
    model = build_encoder(config)
    return _assign(model, _encoder_key_map(model, config), state_dict, "encoder", config, source)


@dataclasses.dataclass
class ImportedNetworks:
    """The networks of an NVlabs checkpoint; ``None`` where its file was absent."""

    generator: keras.Model
    discriminator: keras.Model | None = None
    encoder: keras.Model | None = None
    files: dict[str, str] = dataclasses.field(default_factory=dict)


def import_checkpoint(path: str | os.PathLike, config: SPADEConfig,
                      include_discriminator: bool = True) -> ImportedNetworks:
    """Imports ``net_G`` and, when present, ``net_D`` and ``net_E`` of an NVlabs checkpoint.

    Args:
        path: checkpoint directory or ``<epoch>_net_G.pth`` (see
            ``find_checkpoint_files``).
        config: the config the checkpoint was trained with.
        include_discriminator: also import ``net_D`` when present (only
            needed to continue training).

    Raises:
        ValueError: a ``net_E`` file without ``use_vae`` in the config.
        StateDictMismatchError, ImportError, FileNotFoundError: see the
            functions this calls.
    """
    files = find_checkpoint_files(path)
    if "E" in files and not config.use_vae:
        raise ValueError(
            f"{files['E']} exists: the checkpoint was trained with --use_vae, but the config "
            "has use_vae=False. Set use_vae=True (z_dim=256)."
        )
    networks = ImportedNetworks(
        generator=import_generator(load_state_dict(files["G"]), config, files["G"]), files=files
    )
    if include_discriminator and "D" in files:
        networks.discriminator = import_discriminator(load_state_dict(files["D"]), config, files["D"])
    if "E" in files:
        networks.encoder = import_encoder(load_state_dict(files["E"]), config, files["E"])
    return networks


# ------------------------------------------------------- training checkpoint


def write_training_checkpoint(config: SPADEConfig, workdir: str | os.PathLike,
                              generator: keras.Model, discriminator: keras.Model | None = None,
                              encoder: keras.Model | None = None) -> str:
    """Writes imported networks as step 0 of a training run that ``train`` resumes.

    See ``spade_tf.workdir.write_initial_checkpoint``, which this calls.
    """
    from spade_tf.workdir import write_initial_checkpoint  # TensorFlow-specific, as the trainer

    return write_initial_checkpoint(config, os.fspath(workdir), generator, discriminator, encoder)
