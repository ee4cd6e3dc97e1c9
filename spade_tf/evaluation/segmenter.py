"""A user-supplied segmentation SavedModel, run on generated images."""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf


class Segmenter:
    """Wraps a segmentation SavedModel for the mIoU / accuracy evaluation.

    The contract the SavedModel must meet (wrap your network in a
    ``tf.Module`` that does its own normalisation if it does not):

    * Input: one tensor of RGB images [B, H, W, 3] with values 0..255, uint8
      or float (the wrapper casts to the signature's dtype; floats are not
      rescaled). Any mean/std normalisation happens inside the model. H and W
      are the generated images' size; a model that needs another size
      resizes inside.
    * Output: either logits / probabilities [B, H', W', C] (the class is the
      argmax) or class ids [B, H', W'] (any integer dtype). With a signature
      that returns several outputs, the one named ``logits``,
      ``predictions``, ``class_ids`` or ``output_0`` is used.
    * Class ids are the evaluation's (``protocol.segmentation_protocol``):
      COCO-Stuff ids 0..181, ADE20K 0..149 (annotation id - 1), Cityscapes
      trainIds 0..18.

    The ``serving_default`` signature is called when the SavedModel has one;
    otherwise the loaded object itself must be callable (a ``tf.function``
    ``__call__`` with a traced input signature). Predictions of another size
    than the label maps are resized to it, nearest-neighbour.

    Args:
        path: the SavedModel directory.

    Call args:
        images: uint8 [B, H, W, 3].
        size: (height, width) of the label maps (default: the images').

    Returns:
        int32 NumPy [B, height, width] class ids.
    """

    OUTPUT_NAMES = ("logits", "predictions", "class_ids", "output_0")

    def __init__(self, path: str):
        if not os.path.isdir(path):
            raise FileNotFoundError(f"Segmenter SavedModel directory {path} does not exist.")
        try:
            self._loaded = tf.saved_model.load(path)
        except Exception as e:  # TF raises OSError/ValueError/protobuf errors for a bad directory
            raise ValueError(f"Segmenter {path} is not a loadable TensorFlow SavedModel: {e}") from e
        self.path = path
        signatures = getattr(self._loaded, "signatures", {})
        if "serving_default" in signatures:
            fn = signatures["serving_default"]
            specs = fn.structured_input_signature[1]
            if len(specs) != 1:
                raise ValueError(
                    f"Segmenter {path}: serving_default takes {sorted(specs)}; expected exactly one image input."
                )
            (self._input_name, spec), = specs.items()
            self._dtype = spec.dtype
            self._fn = lambda x: fn(**{self._input_name: x})
        elif callable(self._loaded):
            self._fn = self._loaded
            self._dtype = self._traced_dtype(self._loaded) or tf.float32
        else:
            raise ValueError(
                f"Segmenter {path} has no serving_default signature and is not callable; export it with "
                "tf.saved_model.save(module, path, signatures=...) (see Segmenter's docstring)."
            )

    @staticmethod
    def _traced_dtype(obj):
        call = getattr(obj, "__call__", None)
        concrete = getattr(call, "concrete_functions", None) or []
        for c in concrete:
            args = c.structured_input_signature[0]
            if args and isinstance(args[0], tf.TensorSpec):
                return args[0].dtype
        return None

    def __call__(self, images, size: tuple[int, int] | None = None) -> np.ndarray:
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"Segmenter: expected images [B, H, W, 3], got shape {images.shape}.")
        size = tuple(size or images.shape[1:3])
        x = tf.cast(tf.constant(images), self._dtype)
        out = self._fn(x)
        if isinstance(out, dict):
            out = self._pick(out)
        out = tf.convert_to_tensor(out)
        rank = out.shape.rank
        if rank == 4:
            ids = tf.argmax(out, axis=-1, output_type=tf.int32)
        elif rank == 3 and out.dtype.is_integer:
            ids = tf.cast(out, tf.int32)
        else:
            raise ValueError(
                f"Segmenter {self.path} returned {out.dtype.name} of shape {out.shape}; expected logits "
                "[B, H, W, C] or integer class ids [B, H, W]."
            )
        if int(ids.shape[0]) != len(images):
            raise ValueError(f"Segmenter {self.path} returned {ids.shape[0]} maps for {len(images)} images.")
        if tuple(ids.shape[1:3]) != size:
            ids = tf.image.resize(ids[..., None], size, method="nearest")[..., 0]
        return ids.numpy().astype(np.int32)

    def _pick(self, outputs: dict):
        if len(outputs) == 1:
            return next(iter(outputs.values()))
        for name in self.OUTPUT_NAMES:
            if name in outputs:
                return outputs[name]
        raise ValueError(
            f"Segmenter {self.path} returns {sorted(outputs)}; expected one output, or one named one of "
            f"{list(self.OUTPUT_NAMES)}."
        )
