"""Folding spectral normalization into plain weights for inference."""

import keras
from keras import ops

from spade_tf.layers import Conv2D


def _without_spectral_norm(config):
    if isinstance(config, dict):
        return {
            k: (False if k == "spectral_norm" else _without_spectral_norm(v))
            for k, v in config.items()
        }
    if isinstance(config, list):
        return [_without_spectral_norm(v) for v in config]
    return config


def fold_spectral_norm(model: keras.Model) -> keras.Model:
    """Returns a copy of ``model`` with every spectral norm folded in.

    Each spectral-norm ``Conv2D`` becomes a plain one whose kernel is
    ``W / sigma`` with the stored power-iteration vectors (what PyTorch's
    ``spectral_norm`` computes in eval mode); everything else, batch-norm
    moving statistics included, is copied unchanged. The copy has no ``u``,
    ``v`` variables and no training-time power iteration.
    """
    clone = model.__class__.from_config(_without_spectral_norm(model.get_config()))
    folded = {}
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, Conv2D):
            folded[layer.kernel.path] = ops.convert_to_numpy(layer.folded_kernel())
    source = {v.path: v for v in model.variables}
    for variable in clone.variables:
        if variable.path not in source:
            raise ValueError(f"fold_spectral_norm: no source variable for {variable.path}.")
        value = folded.get(variable.path)
        variable.assign(value if value is not None else source[variable.path].value)
    return clone
