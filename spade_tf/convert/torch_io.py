"""Reading PyTorch state dicts saved by NVlabs-style trainers, as NumPy arrays.

Generic to the official SPADE code base and the variants built on it (CLADE,
SEAN): the files (``<checkpoints_dir>/<name>/<epoch>_net_{G,D,E}.pth``,
written by ``util.save_network`` with ``torch.save(net.state_dict())``), the
tensors, and the spectral-norm layouts of other PyTorch versions. Nothing
here knows a network's key names; ``key_map`` and the per-network importers
(``nvlabs``) do.

torch is optional (``pip install "spade-tf[torch]"``) and imported only by
``load_state_dict``; everything else works on NumPy arrays.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping

import numpy as np

logger = logging.getLogger(__name__)

TORCH_MISSING = (
    'Reading PyTorch checkpoints needs PyTorch, an optional dependency: pip install "spade-tf[torch]" '
    "(the CPU wheel is enough)."
)


def find_checkpoint_files(path: str | os.PathLike) -> dict[str, str]:
    """The official checkpoint files at ``path``: ``{"G": ..., "D": ..., "E": ...}``.

    Args:
        path: a checkpoint directory (``checkpoints/<name>``: its
            ``latest_net_G.pth`` and, when present, ``latest_net_D.pth`` and
            ``latest_net_E.pth``; without a ``latest`` one, ``best_net_G.pth``,
            the name of tzt101/CLADE's released models), or one generator
            file ``<epoch>_net_G.pth`` (then the ``D`` and ``E`` files of the
            same epoch beside it).

    Returns:
        A dict with "G" and whichever of "D", "E" exist.

    Raises:
        FileNotFoundError: naming what was looked for (and the generator files
            a directory does hold, if any).
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        folder, prefix = path, "latest"
        generator = os.path.join(folder, "latest_net_G.pth")
        if not os.path.isfile(generator) and os.path.isfile(os.path.join(folder, "best_net_G.pth")):
            prefix, generator = "best", os.path.join(folder, "best_net_G.pth")
        if not os.path.isfile(generator):
            found = sorted(f for f in os.listdir(folder) if f.endswith("_net_G.pth"))
            hint = (
                f" It holds {', '.join(found)}: pass one of them as the checkpoint."
                if found else " It holds no *_net_G.pth file."
            )
            raise FileNotFoundError(f"Checkpoint directory {path} has no latest_net_G.pth "
                                    f"(nor best_net_G.pth).{hint}")
    elif os.path.isfile(path):
        generator = path
        folder, name = os.path.split(path)
        match = re.fullmatch(r"(.*)_net_G\.pth", name)
        prefix = match.group(1) if match else None
    else:
        raise FileNotFoundError(f"PyTorch checkpoint {path} does not exist.")
    files = {"G": generator}
    if prefix is not None:
        for net in ("D", "E"):
            candidate = os.path.join(folder, f"{prefix}_net_{net}.pth")
            if os.path.isfile(candidate):
                files[net] = candidate
    return files


def _import_torch():
    try:
        import torch
    except ImportError as e:
        raise ImportError(TORCH_MISSING) from e
    return torch


def load_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Reads a PyTorch state dict as NumPy arrays, in the file's key order.

    Args:
        path: a ``.pth`` file, or a checkpoint directory (its
            ``latest_net_G.pth``). A ``.npz`` of the same arrays is read
            without torch.

    Returns:
        ``{key: array}``; half-precision tensors come back as float32.

    Raises:
        ImportError: torch is not installed (says how to install it).
        FileNotFoundError, ValueError: naming the file when it cannot be read
            or is not a state dict.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        path = find_checkpoint_files(path)["G"]
    if not os.path.isfile(path):
        raise FileNotFoundError(f"PyTorch checkpoint {path} does not exist.")
    if path.endswith(".npz"):
        with np.load(path) as f:
            return strip_module_prefix({k: f[k] for k in f.files}, path)
    torch = _import_torch()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a bad or unsafe file
        raise ValueError(
            f"Cannot read PyTorch checkpoint {path}: {e}. Expected a state dict saved with "
            "torch.save(net.state_dict()), as NVlabs/SPADE saves latest_net_G.pth."
        ) from None
    return strip_module_prefix(_to_numpy(torch, state, path), path)


def _to_numpy(torch, state, path: str) -> dict[str, np.ndarray]:
    if not isinstance(state, Mapping):
        raise ValueError(
            f"PyTorch checkpoint {path} holds a {type(state).__name__}, not a state dict "
            "(a dict of tensors)."
        )
    arrays = {}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise ValueError(
                f"PyTorch checkpoint {path}: {key!r} is a {type(value).__name__}, not a tensor; "
                "expected a state dict (a dict of tensors)."
            )
        value = value.detach().cpu()
        if value.is_floating_point() and value.dtype != torch.float64:
            value = value.float()  # float16 / bfloat16 have no (or no exact) NumPy view
        arrays[key] = value.numpy()
    return arrays


def strip_module_prefix(state: Mapping[str, np.ndarray], source: str) -> Mapping[str, np.ndarray]:
    """``state`` without the ``module.`` prefix that ``DataParallel`` puts on every key."""
    if state and all(k.startswith("module.") for k in state):
        logger.info("%s: stripping the DataParallel 'module.' prefix from every key", source)
        return {k[len("module."):]: v for k, v in state.items()}
    return state


def upgrade_spectral_norm(state: dict[str, np.ndarray], source: str) -> dict[str, np.ndarray]:
    """Brings other spectral-norm layouts to ``weight_orig`` / ``weight_u`` / ``weight_v``.

    * ``torch.nn.utils.parametrizations.spectral_norm`` (newer PyTorch) saves
      ``parametrizations.weight.original`` and ``parametrizations.weight.0._u``
      / ``._v``: the same tensors under other names.
    * PyTorch < 1.0 saved ``weight_orig``, ``weight`` (= W / sigma) and
      ``weight_u`` but no ``weight_v``; PyTorch's own load hook then solves
      for v so that ``u . (W v) = sigma``: done the same way here.

    Returns a new dict; ``state`` is left as it was.
    """
    renamed = {}
    for key, value in state.items():
        key = re.sub(r"\.parametrizations\.weight\.original$", ".weight_orig", key)
        key = re.sub(r"\.parametrizations\.weight\.0\._([uv])$", r".weight_\1", key)
        renamed[key] = value
    state = renamed
    for key in [k for k in state if k.endswith(".weight_orig")]:
        base = key[: -len("_orig")]
        if base + "_v" in state or base not in state or base + "_u" not in state:
            continue
        w_orig = state[key].astype(np.float64)
        w_mat = w_orig.reshape(w_orig.shape[0], -1)
        u = state[base + "_u"].astype(np.float64)
        sigma = np.mean(w_orig / state.pop(base).astype(np.float64))
        v = np.linalg.lstsq(w_mat, u, rcond=None)[0]  # pinv(W) u, as PyTorch's hook
        v *= sigma / (u @ (w_mat @ v))
        state[base + "_v"] = v.astype(np.float32)
        logger.info("%s: %s: pre-1.0 spectral-norm layout, solved weight_v from weight", source, base)
    return state


def normalize_state_dict(state: Mapping[str, np.ndarray], source: str) -> dict[str, np.ndarray]:
    """A copy of ``state`` in the layout the key maps expect.

    No ``module.`` prefix (``load_state_dict`` strips it already, but a state
    dict may come from elsewhere), spectral norm as ``weight_orig`` /
    ``weight_u`` / ``weight_v``.
    """
    return upgrade_spectral_norm(strip_module_prefix(dict(state), source), source)
