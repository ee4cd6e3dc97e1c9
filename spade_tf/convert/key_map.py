"""Filling Keras variables from a PyTorch state dict by a key map, all or nothing.

A ``KeyMap`` says, for every state-dict key, which variable it fills, the
shape PyTorch gives it and how to change its layout; ``assign_state_dict``
checks a state dict against it and assigns only when everything fits. The
``*_key_map`` helpers give the maps of the PyTorch modules that our layers
stand in for, whatever network holds them (SPADE, CLADE, SEAN):
  * ``nn.Conv2d``: kernels OIHW -> HWIO; with spectral norm, ``weight_orig`` /
    ``weight_u`` / ``weight_v`` map to the raw kernel and the ``u`` / ``v``
    vectors of ``spade_tf.layers.Conv2D``, which keeps them exactly as
    PyTorch does, so an imported network computes PyTorch's eval-mode
    ``W / sigma`` (``sigma = u . (W v)``) and training can continue from
    PyTorch's power-iteration state;
  * ``nn.BatchNorm2d(affine=False)``: ``running_mean`` / ``running_var`` ->
    ``moving_mean`` / ``moving_variance`` (``num_batches_tracked`` is not
    used: the momentum is fixed);
  * ``nn.Linear``: weight (out, in) -> kernel (in, out);
  * several PyTorch modules stacked in one variable (SEAN's per-class
    ``fc_mu{j}`` layers in ACE's [classes, in, out] kernel): each key fills
    one slice (``Entry.index``), and the variable is assigned once.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from typing import Any

import keras
import numpy as np

from spade_tf.layers import BatchNorm, Conv2D

logger = logging.getLogger(__name__)


class StateDictMismatchError(ValueError):
    """A state dict does not fit a network: a key it lacks or has no place for, or a shape."""


def identity(x: np.ndarray) -> np.ndarray:
    return x


def oihw_to_hwio(w: np.ndarray) -> np.ndarray:
    return np.transpose(w, (2, 3, 1, 0))


@dataclasses.dataclass(frozen=True)
class Entry:
    """One state-dict key: the variable it fills, its PyTorch shape, the layout change.

    With ``index`` the key fills ``variable[index]`` only (a variable that
    stacks several PyTorch modules' weights along its first axis); the key
    map must then fill every index of that variable.
    """

    key: str
    variable: Any
    torch_shape: tuple[int, ...]
    to_keras: Callable[[np.ndarray], np.ndarray] = identity
    index: int | None = None


@dataclasses.dataclass(frozen=True)
class KeyMap:
    """Where a state dict's keys go.

    Attributes:
        entries: every key the network needs, in the order the official code
            registers them.
        optional: keys a checkpoint may hold that fill nothing (and may lack).
        kept: variables that no key fills, which keep their values (state
            PyTorch does not save, e.g. a noise layer's random-seed state).
    """

    entries: tuple[Entry, ...] = ()
    optional: tuple[str, ...] = ()
    kept: tuple[Any, ...] = ()

    def __add__(self, other: KeyMap) -> KeyMap:
        return KeyMap(self.entries + other.entries, self.optional + other.optional, self.kept + other.kept)


def conv_key_map(prefix: str, conv: Conv2D) -> KeyMap:
    """The keys of an ``nn.Conv2d`` (spectral-normed when ``conv.spectral_norm``) at ``prefix``."""
    kh, kw, cin, cout = (int(d) for d in conv.kernel.shape)
    oihw = (cout, cin, kh, kw)
    bias = (Entry(f"{prefix}.bias", conv.bias, (cout,)),) if conv.use_bias else ()
    if conv.spectral_norm:
        # torch.nn.utils.spectral_norm: parameters bias, weight_orig; buffers
        # weight_u (out,) and weight_v (in * kh * kw,), W reshaped (out, -1)
        # from OIHW, which is the order Conv2D keeps v in.
        return KeyMap(bias + (
            Entry(f"{prefix}.weight_orig", conv.kernel, oihw, oihw_to_hwio),
            Entry(f"{prefix}.weight_u", conv.u, (cout,)),
            Entry(f"{prefix}.weight_v", conv.v, (cin * kh * kw,)),
        ))
    return KeyMap((Entry(f"{prefix}.weight", conv.kernel, oihw, oihw_to_hwio),) + bias)


def batch_norm_key_map(prefix: str, norm: BatchNorm) -> KeyMap:
    """The buffers of an ``nn.BatchNorm2d(affine=False)`` at ``prefix``."""
    n = int(norm.moving_mean.shape[0])
    return KeyMap(
        (
            Entry(f"{prefix}.running_mean", norm.moving_mean, (n,)),
            Entry(f"{prefix}.running_var", norm.moving_variance, (n,)),
        ),
        optional=(f"{prefix}.num_batches_tracked",),
    )


def dense_key_map(prefix: str, dense: keras.layers.Dense,
                  weight_to_keras: Callable[[np.ndarray], np.ndarray] = np.transpose,
                  bias_to_keras: Callable[[np.ndarray], np.ndarray] = identity) -> KeyMap:
    """The keys of an ``nn.Linear`` at ``prefix``.

    ``weight_to_keras`` turns PyTorch's (out, in) weight into the (in, out)
    kernel; pass another where the layers around it lay their features out
    differently (NCHW flatten in PyTorch, NHWC here).
    """
    n_in, n_out = (int(d) for d in dense.kernel.shape)
    return KeyMap((
        Entry(f"{prefix}.weight", dense.kernel, (n_out, n_in), weight_to_keras),
        Entry(f"{prefix}.bias", dense.bias, (n_out,), bias_to_keras),
    ))


def assign_state_dict(model: keras.Model, state_dict: Mapping[str, np.ndarray], key_map: KeyMap,
                      source: str = "state dict", *, what: str = "network", target: str = "the model",
                      advice: str | None = None) -> keras.Model:
    """Assigns every variable of ``model`` from ``state_dict``, or none of them.

    Args:
        model: the built network; ``key_map`` must cover every variable.
        state_dict: ``{key: array}`` in the layout ``key_map`` names (see
            ``torch_io.normalize_state_dict``).
        key_map: where each key goes.
        source: a name for messages (the file).
        what, target, advice: words for the error: "<source>: the <what>
            checkpoint does not fit <target>: ... Nothing was loaded; <advice>."

    Returns:
        ``model``, filled.

    Raises:
        StateDictMismatchError: naming the first key whose shape differs (both
            shapes), or else the first key the checkpoint lacks, or else the
            first key the model has no place for; before any assignment.
        RuntimeError: ``key_map`` maps a key twice or leaves a variable out
            (a bug in the importer, not in the file).
    """
    _check_covers(model, key_map, what)
    problem = _first_mismatch(state_dict, key_map)
    if problem:
        hint = f"; {advice}" if advice else ""
        raise StateDictMismatchError(
            f"{source}: the {what} checkpoint does not fit {target}: {problem}. Nothing was loaded{hint}."
        )
    stacked = {}  # id(variable) -> (variable, value being filled slice by slice)
    for entry in key_map.entries:
        value = entry.to_keras(np.asarray(state_dict[entry.key], dtype=np.float32))
        if entry.index is None:
            entry.variable.assign(value)
        else:
            _, full = stacked.setdefault(
                id(entry.variable), (entry.variable, np.zeros(entry.variable.shape, np.float32)))
            full[entry.index] = value
    for variable, full in stacked.values():
        variable.assign(full)
    logger.info("%s: imported %d tensors into the %s", source, len(key_map.entries), what)
    return model


def _check_covers(model, key_map: KeyMap, what: str) -> None:
    keys = [e.key for e in key_map.entries]
    if len(set(keys)) != len(keys):
        raise RuntimeError(f"{what}: the importer maps a key twice.")
    covered = {id(e.variable) for e in key_map.entries if e.index is None} | {id(v) for v in key_map.kept}
    slices = {}
    for e in key_map.entries:
        if e.index is not None:
            filled = slices.setdefault(id(e.variable), set())
            if e.index in filled:
                raise RuntimeError(f"{what}: the importer maps two keys to {e.variable.path}[{e.index}].")
            filled.add(e.index)
    unmapped = []
    for v in model.variables:
        if id(v) in covered:
            continue
        if id(v) not in slices:
            unmapped.append(v.path)
            continue
        # A stacked variable is covered when every slice along its first axis is, and no other.
        extra = sorted(slices[id(v)] - set(range(v.shape[0])))
        if extra:
            raise RuntimeError(f"{what}: the importer maps a key to {v.path}[{extra[0]}], past its end.")
        unmapped += [f"{v.path}[{i}]" for i in range(v.shape[0]) if i not in slices[id(v)]]
    if unmapped:
        raise RuntimeError(f"{what}: the importer maps no key to {unmapped}; it is out of date with the model.")


def _first_mismatch(state: Mapping[str, np.ndarray], key_map: KeyMap) -> str | None:
    """What is wrong first (shape, then missing, then unused key) and the counts; None if all fits."""
    by_key = {e.key: e for e in key_map.entries}
    mismatched, unused = [], []
    for key, value in state.items():  # in the file's order
        entry = by_key.get(key)
        if entry is None:
            if key not in key_map.optional:
                unused.append(key)
        elif tuple(value.shape) != entry.torch_shape:
            mismatched.append((key, tuple(value.shape), entry.torch_shape))
    missing = [e.key for e in key_map.entries if e.key not in state]
    if not (mismatched or missing or unused):
        return None
    if mismatched:
        key, got, want = mismatched[0]
        first = f"{key!r} has shape {got} in the checkpoint, but the model expects {want}"
    elif missing:
        first = f"the model needs {missing[0]!r}, which the checkpoint lacks"
    else:
        first = f"the checkpoint's {unused[0]!r} (shape {tuple(state[unused[0]].shape)}) has no place in the model"
    return (
        f"{first}. In all: {len(mismatched)} key(s) differ in shape, {len(missing)} are missing from the "
        f"checkpoint, {len(unused)} are not used by the model"
    )
