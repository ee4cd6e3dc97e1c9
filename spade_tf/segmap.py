"""Label maps -> the generator's input: the one place that knows the encoding.

A label map holds class ids ``0..label_nc-1``, plus ``DONTCARE_ID`` (255)
where the preset has a don't-care label. The generator's ``segmap`` is their
one-hot encoding, [..., H, W, semantic_nc]: ``label_nc`` class channels, then
one channel for don't-care (id 255 -> channel ``label_nc``), then the
instance-edge map when instance maps are used (as NVlabs'
``preprocess_input``). Training, evaluation, the serving graphs and the CLIs
all encode and check ids with these functions.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from spade_tf.config import SPADEConfig

DONTCARE_ID = 255  # the id of "don't care" pixels in label maps (not a channel index)


def valid_label_ids(label_nc: int, contain_dontcare_label: bool) -> str:
    """The valid ids, as error messages state them."""
    if contain_dontcare_label:
        return f"0..{label_nc} or {DONTCARE_ID} (don't care)"
    return f"0..{label_nc - 1}"


def valid_ids_mask(ids, label_nc: int, contain_dontcare_label: bool):
    """True where ``ids`` (a NumPy array or a tensor) are valid class ids: the one id-range rule.

    ``0..label_nc-1``, and with a don't-care label also ``label_nc`` and 255
    (the official loaders accept both: ``label_nc`` is the don't-care channel).
    """
    top = label_nc - 1 + int(contain_dontcare_label)
    valid = (ids >= 0) & (ids <= top)
    if contain_dontcare_label:
        valid = valid | (ids == DONTCARE_ID)
    return valid


def out_of_range_ids(ids: np.ndarray, label_nc: int, contain_dontcare_label: bool) -> np.ndarray:
    """The distinct ids of ``ids`` that are not valid class ids (sorted)."""
    ids = np.unique(np.asarray(ids))
    return ids[~valid_ids_mask(ids, label_nc, contain_dontcare_label)]


def edge_map(instance):
    """Instance edges: 1 where a pixel's id differs from a 4-neighbour's.

    As official ``get_edges``: both pixels of a differing horizontal or
    vertical pair are edges. ``instance`` is [..., H, W]; returns float32.
    """
    return tf.cast(edge_map_int(instance), tf.float32)


def edge_map_int(instance):
    """``edge_map`` as int32 0/1, with integer arithmetic only.

    ``min(|a - b|, 1)`` rather than a comparison, and pads and maxima of
    ints rather than of booleans: TFLite's PAD has no bool kernel, and its
    int16x8 quantizer asks for a float range of any int32 tensor that meets
    a comparison (NOT_EQUAL), which the exported graphs must avoid. Ids are
    image ids (PNG values), far from int32 overflow.
    """
    t = tf.cast(instance, tf.int32)
    dx = tf.minimum(tf.abs(t[..., :, 1:] - t[..., :, :-1]), 1)
    dy = tf.minimum(tf.abs(t[..., 1:, :] - t[..., :-1, :]), 1)
    rank = len(t.shape)
    pad_w = lambda left: [[0, 0]] * (rank - 1) + [[1, 0] if left else [0, 1]]  # noqa: E731
    pad_h = lambda top: [[0, 0]] * (rank - 2) + [[1, 0] if top else [0, 1], [0, 0]]  # noqa: E731
    return tf.maximum(
        tf.maximum(tf.pad(dx, pad_w(True)), tf.pad(dx, pad_w(False))),
        tf.maximum(tf.pad(dy, pad_h(True)), tf.pad(dy, pad_h(False))),
    )


def label_channels(label, label_nc: int, contain_dontcare_label: bool):
    """Label ids -> channel indices: 255 (don't care) becomes ``label_nc``."""
    label = tf.cast(label, tf.int32)
    if contain_dontcare_label:
        label = tf.where(tf.equal(label, DONTCARE_ID), label_nc, label)
    return label


def make_segmap(label, instance, config: SPADEConfig):
    """[..., H, W] label ids (+ instance ids) -> [..., H, W, semantic_nc] float32."""
    ids = label_channels(label, config.label_nc, config.contain_dontcare_label)
    depth = config.label_nc + int(config.contain_dontcare_label)
    segmap = tf.one_hot(ids, depth, dtype=tf.float32)
    if config.use_instance_map:
        segmap = tf.concat([segmap, edge_map(instance)[..., None]], axis=-1)
    return segmap
