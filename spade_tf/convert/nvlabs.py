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

ZPdesu/SEAN is NVlabs/SPADE with ACE norms (``latest_net_G.pth``; its
``latest_net_D.pth`` has SPADE's discriminator keys and shapes, with official
``n_layers_D`` 3 and stride 2 in every intermediate conv, which
``build_discriminator`` follows for ``norm_mode="sean"``): each block's ``ace_0`` / ``ace_1`` /
``ace_s`` (our ``norm_0`` / ``norm_1`` / ``norm_s``, ``spade_tf.layers.ACE``)
holds ``blending_gamma``, ``blending_beta``, ``noise_var``, the inner SPADE's
convs (``Spade.mlp_shared.0``, ``Spade.mlp_gamma``, ``Spade.mlp_beta``; the
inner SPADE's own param-free norm is never applied, and its batch-norm
buffers are skipped), ACE's batch norm (``param_free_norm``), the per-class
``fc_mu{j}`` linear layers (19 hard-coded; our one [classes, style_dim,
style_dim] kernel, ``fc_mu{j}.weight`` transposed into slice j; the layers
past the label map's channels, which the official forward never calls, are
skipped) and ``conv_gamma`` / ``conv_beta``; the last block (``up_3``,
official ``use_rgb=False``) has no fc_mu or conv_gamma / conv_beta. The same
state dict holds the style encoder as ``Zencoder.model.<i>``
(``import_style_encoder``; ``build_sean_encoder`` gives the map).
``norm_mode="sean"`` selects them.

NVlabs', CLADE's and SEAN's code and pretrained weights are licensed CC BY-NC-SA 4.0: convert
them for your own non-commercial use; this project does not redistribute them.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
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
from spade_tf.models.sean_encoder import build_sean_encoder

__all__ = [
    "ImportedNetworks", "import_checkpoint", "import_discriminator", "import_encoder", "import_generator",
    "import_style_encoder", "write_training_checkpoint",
    # Re-exported: they lived here before torch_io and key_map split off.
    "StateDictMismatchError", "find_checkpoint_files", "load_state_dict",
]

logger = logging.getLogger(__name__)

# ZPdesu/SEAN: ACE.create_gamma_beta_fc_layers makes fc_mu0 .. fc_mu18 whatever
# the label map's channels; its forward calls one per channel.
SEAN_FC_LAYERS = 19
# The Zencoder's layers (build_sean_encoder) and their index in the official
# Zencoder.model Sequential (pads, norms, activations between them).
ZENCODER_LAYERS = {"conv_in": 1, "down_0": 4, "down_1": 7, "upsample": 10, "conv_out": 14}


# ------------------------------------------------------------------ key maps


def _spade_key_map(prefix, spade) -> KeyMap:
    key_map = KeyMap()
    if isinstance(spade.param_free_norm, BatchNorm):
        key_map += batch_norm_key_map(f"{prefix}.param_free_norm", spade.param_free_norm)
    return key_map + _spade_convs_key_map(prefix, spade)


def _spade_convs_key_map(prefix, spade) -> KeyMap:
    return (
        conv_key_map(f"{prefix}.mlp_shared.0", spade.mlp_shared)
        + conv_key_map(f"{prefix}.mlp_gamma", spade.mlp_gamma)
        + conv_key_map(f"{prefix}.mlp_beta", spade.mlp_beta)
    )


def _ace_key_map(prefix, ace) -> KeyMap:
    """ZPdesu/SEAN's ``ACE``, in its state-dict order: own parameters, then the
    inner ``Spade``, ``param_free_norm``, ``fc_mu{j}``, ``conv_gamma``, ``conv_beta``."""
    key_map = KeyMap((
        Entry(f"{prefix}.blending_gamma", ace.blending_gamma, (1,)),
        Entry(f"{prefix}.blending_beta", ace.blending_beta, (1,)),
        Entry(f"{prefix}.noise_var", ace.noise_var, (ace.channels,)),
    ), kept=(ace.seed_generator.state,))  # the noise's seed: PyTorch's global RNG, not saved
    # The inner SPADE's param-free norm (norm_G's type) is built but never
    # called: with batch norm its (initial) buffers are saved, and skipped here.
    inner = f"{prefix}.Spade"
    key_map += KeyMap(optional=tuple(f"{inner}.param_free_norm.{buffer}"
                                     for buffer in ("running_mean", "running_var", "num_batches_tracked")))
    key_map += _spade_convs_key_map(inner, ace)
    if isinstance(ace.param_free_norm, BatchNorm):
        key_map += batch_norm_key_map(f"{prefix}.param_free_norm", ace.param_free_norm)
    if not ace.use_style:
        return key_map
    d = ace.style_dim
    for j in range(ace.classes):
        # nn.Linear weight (out, in) -> slice j of the [classes, in, out] kernel.
        key_map += KeyMap((
            Entry(f"{prefix}.fc_mu{j}.weight", ace.fc_mu_kernel, (d, d), np.transpose, index=j),
            Entry(f"{prefix}.fc_mu{j}.bias", ace.fc_mu_bias, (d,), index=j),
        ))
    # Official layers past the label map's channels: never called.
    key_map += KeyMap(optional=tuple(f"{prefix}.fc_mu{j}.{p}" for j in range(ace.classes, SEAN_FC_LAYERS)
                                     for p in ("weight", "bias")))
    return key_map + conv_key_map(f"{prefix}.conv_gamma", ace.conv_gamma) + conv_key_map(
        f"{prefix}.conv_beta", ace.conv_beta)


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
    suffixes = ["0", "1"] + (["s"] if block.learned_shortcut else [])
    # Our norm_<i> are SPADE's and CLADE's norm_<i>, SEAN's ace_<i>.
    official, norm_key_map = {
        "spade": ("norm", _spade_key_map), "clade": ("norm", _clade_key_map), "sean": ("ace", _ace_key_map),
    }[block.norm_mode]
    key_map = KeyMap()
    for i in suffixes:
        key_map += conv_key_map(f"{name}.conv_{i}", getattr(block, f"conv_{i}"))
    for i in suffixes:
        key_map += norm_key_map(f"{name}.{official}_{i}", getattr(block, f"norm_{i}"))
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
    key_map += conv_key_map("conv_img", model.get_layer("conv_img"))
    if c.norm_mode == "sean":
        # Official SEAN's netG also holds the Zencoder: import_style_encoder's.
        key_map += KeyMap(optional=tuple(f"Zencoder.model.{i}.{p}" for i in ZENCODER_LAYERS.values()
                                         for p in ("weight", "bias")))
    return key_map


def _style_encoder_key_map(model, config: SPADEConfig) -> KeyMap:
    """Official SEAN ``Zencoder.model.<i>``: convs, and one ConvTranspose2d
    whose weight is [in, out, kh, kw] (Keras Conv2DTranspose: [kh, kw, out, in])."""
    key_map = KeyMap()
    for name, i in ZENCODER_LAYERS.items():
        layer = model.get_layer(name)
        if isinstance(layer, keras.layers.Conv2DTranspose):
            kh, kw, cout, cin = (int(d) for d in layer.kernel.shape)
            key_map += KeyMap((
                Entry(f"Zencoder.model.{i}.weight", layer.kernel, (cin, cout, kh, kw), _iohw_to_hwoi),
                Entry(f"Zencoder.model.{i}.bias", layer.bias, (cout,)),
            ))
        else:
            key_map += conv_key_map(f"Zencoder.model.{i}", layer)
    return key_map


def _iohw_to_hwoi(w: np.ndarray) -> np.ndarray:
    return np.transpose(w, (2, 3, 1, 0))


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
        "norm_mode", "use_positional_encoding", "style_dim",
    ),
    "discriminator": ("ndf", "num_D", "n_layers_D", "semantic_nc", "use_spectral_norm_D"),
    "encoder": ("ngf", "crop_size", "z_dim", "use_spectral_norm_E"),
    "style encoder": ("norm_mode", "style_dim"),
}


def _check_norm_mode(state_dict, config: SPADEConfig, source: str) -> None:
    """A checkpoint of another norm mode than the config's (SPADE, CLADE, SEAN), ICPE's
    convs without use_positional_encoding (or the reverse), or SEAN settings that the
    checkpoint contradicts, are named as such, with the setting that fits it."""
    keys = list(state_dict)
    # SEAN's ACE holds a SPADE (Spade.mlp_shared): look for SEAN first.
    sean = any(".ace_0." in k or k.startswith("Zencoder.") for k in keys)
    clade = any(".class_specified_affine." in k for k in keys)
    spade = any(".mlp_shared." in k for k in keys)
    dist = any(".dist_conv_w." in k for k in keys)
    found = "sean" if sean else "clade" if clade else "spade" if spade else None
    problem = None
    if found and found != config.norm_mode:
        problem = (f"its normalization layers are {found.upper()}'s but the config has "
                   f"norm_mode={config.norm_mode!r}; pass --set=norm_mode={found}")
    elif clade and dist != config.use_positional_encoding:
        problem = (f"it {'has' if dist else 'has no'} CLADE-ICPE positional-encoding convs (dist_conv_w), but the "
                   f"config has use_positional_encoding={config.use_positional_encoding}; pass "
                   f"--set=use_positional_encoding={str(dist).lower()}")
    elif sean:
        problem = _sean_problem(state_dict, config)
    if problem:
        raise StateDictMismatchError(f"{source}: {problem}. Nothing was loaded.")


def _sean_problem(state_dict, config: SPADEConfig) -> str | None:
    """What of the config a SEAN checkpoint contradicts, beyond a shape: ACE's batch
    norm, and the label-map channels (one style layer fc_mu<j> per channel)."""
    c = config
    if c.param_free_norm_G == "instance" and any(
            re.search(r"\.ace_0\.param_free_norm\.running_mean$", k) for k in state_dict):
        return ("its ACE layers normalize with batch norm (official ACE hard-codes 'spadesyncbatch3x3'; "
                "norm_G only sets its inner SPADE's norm, which is never applied), but the config has "
                "param_free_norm_G='instance'; pass --set=param_free_norm_G=syncbatch")
    fc_mu = sum(1 for k in state_dict if re.fullmatch(r"head_0\.ace_0\.fc_mu\d+\.weight", k))
    fc = state_dict.get("fc.weight")
    channels = int(fc.shape[1]) if fc is not None and np.ndim(fc) == 4 else None
    if channels is None or channels == c.semantic_nc:
        return None  # fewer fc_mu than channels (not official's): the missing key is named
    fix = [f"--set=label_nc={channels}"]
    fix += ["--set=use_instance_map=false"] if c.use_instance_map else []
    fix += ["--set=contain_dontcare_label=false"] if c.contain_dontcare_label else []
    style = (f"; each ACE uses one of its per-class style layers fc_mu0..fc_mu{fc_mu - 1} per channel"
             if fc_mu else "")
    also = " (official SEAN's CelebAMask-HQ model)" if channels == SEAN_FC_LAYERS else ""
    return (f"its label maps have {channels} channels (fc.weight{style}), but the config's have "
            f"{c.semantic_nc} ({_label_channels(c)}); pass {' '.join(fix)}{also}, or label_nc, "
            f"contain_dontcare_label and use_instance_map that add up to {channels}")


def _label_channels(c: SPADEConfig) -> str:
    return (f"label_nc={c.label_nc}, contain_dontcare_label={c.contain_dontcare_label}, "
            f"use_instance_map={c.use_instance_map}")


def _import(build, key_map_of, state_dict, what: str, config: SPADEConfig, source: str):
    state_dict = normalize_state_dict(state_dict, source)
    if what in ("generator", "style encoder"):  # both from net_G; checked before building anything
        _check_norm_mode(state_dict, config, source)
    if what == "style encoder":  # the rest of net_G is the generator's
        state_dict = {k: v for k, v in state_dict.items() if k.startswith("Zencoder.")}
    model = build(config)
    key_map = key_map_of(model, config)
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
    return _import(build_generator, _generator_key_map, state_dict, "generator", config, source)


def import_discriminator(state_dict: Mapping[str, np.ndarray], config: SPADEConfig,
                         source: str = "state dict") -> keras.Model:
    """Builds ``build_discriminator(config)`` and fills it from an NVlabs ``net_D`` state dict.

    Official keys ``discriminator_<i>.model0.0.weight``,
    ``discriminator_<i>.model<n>.0.0.weight_orig`` / ``_u`` / ``_v`` (the
    spectral-norm convs), ``discriminator_<i>.model<last>.0.weight``.

    Raises:
        StateDictMismatchError: as ``import_generator``.
    """
    return _import(build_discriminator, _discriminator_key_map, state_dict, "discriminator", config, source)


def import_encoder(state_dict: Mapping[str, np.ndarray], config: SPADEConfig,
                   source: str = "state dict") -> keras.Model:
    """Builds ``build_encoder(config)`` and fills it from an NVlabs ``net_E`` state dict.

    The official encoder only works at ``crop_size >= 256`` (its dense layers
    take 4x4 maps) and always has 256 outputs: use ``z_dim=256``.

    Raises:
        StateDictMismatchError: as ``import_generator``.
    """
    return _import(build_encoder, _encoder_key_map, state_dict, "encoder", config, source)


def import_style_encoder(state_dict: Mapping[str, np.ndarray], config: SPADEConfig,
                         source: str = "state dict") -> keras.Model:
    """Builds ``build_sean_encoder(config)`` and fills it from a ZPdesu/SEAN ``net_G`` state dict.

    The official netG holds its Zencoder: its ``Zencoder.model.<i>`` keys
    are this model's, the others the generator's (``import_generator``,
    which skips these). ``config.style_dim`` must be the checkpoint's
    (official 512).

    Raises:
        StateDictMismatchError: as ``import_generator``; also for a checkpoint
            that is not SEAN's.
    """
    return _import(build_sean_encoder, _style_encoder_key_map, state_dict, "style encoder", config, source)


@dataclasses.dataclass
class ImportedNetworks:
    """The networks of an NVlabs checkpoint; ``None`` where its file was absent.

    ``style_encoder``: SEAN's Zencoder (``norm_mode="sean"``), from ``net_G``.
    """

    generator: keras.Model
    discriminator: keras.Model | None = None
    encoder: keras.Model | None = None
    files: dict[str, str] = dataclasses.field(default_factory=dict)
    style_encoder: keras.Model | None = None


def import_checkpoint(path: str | os.PathLike, config: SPADEConfig,
                      include_discriminator: bool = True) -> ImportedNetworks:
    """Imports ``net_G`` and, when present, ``net_D`` and ``net_E`` of an NVlabs checkpoint.

    With ``norm_mode="sean"`` (ZPdesu/SEAN), ``net_G`` also gives the style
    encoder (``style_encoder``); SEAN's ``net_D`` loads into SPADE's
    discriminator (same keys and shapes; SEAN's strides with ``norm_mode="sean"``).

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
    state = load_state_dict(files["G"])
    networks = ImportedNetworks(generator=import_generator(state, config, files["G"]), files=files)
    if config.norm_mode == "sean":
        networks.style_encoder = import_style_encoder(state, config, files["G"])
    del state
    if include_discriminator and "D" in files:
        networks.discriminator = import_discriminator(load_state_dict(files["D"]), config, files["D"])
    if "E" in files:
        networks.encoder = import_encoder(load_state_dict(files["E"]), config, files["E"])
    return networks


# ------------------------------------------------------- training checkpoint


def write_training_checkpoint(config: SPADEConfig, workdir: str | os.PathLike,
                              generator: keras.Model, discriminator: keras.Model | None = None,
                              encoder: keras.Model | None = None,
                              style_encoder: keras.Model | None = None) -> str:
    """Writes imported networks as step 0 of a training run that ``train`` resumes.

    See ``spade_tf.workdir.write_initial_checkpoint``, which this calls.
    """
    from spade_tf.workdir import write_initial_checkpoint  # TensorFlow-specific, as the trainer

    return write_initial_checkpoint(config, os.fspath(workdir), generator, discriminator, encoder,
                                    style_encoder)
