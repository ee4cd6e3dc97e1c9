"""TFLite conversion of the inference graph: float32, float16, dynamic range, int8, int16x8."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable

import numpy as np
import tensorflow as tf

from spade_tf.export.serving import SynthesisModule
from spade_tf.export.variants import CALIBRATED, VARIANTS


def unsupported_reason(variant: str, config) -> str | None:
    """Why ``variant`` cannot be converted for ``config``, or None."""
    if variant in CALIBRATED and config.use_positional_encoding:
        # int16x8: the quantizer asks for a float range of the int32 ids the
        # connected-components loop compares. int8: it converts, but the
        # maps' coordinates and divisions do not survive int8 activations (its
        # DIV fails at run time on a zero divisor).
        return ("CLADE-ICPE computes its positional maps in the graph (pixel coordinates, connected "
                "components, divisions), which integer activations cannot carry; use float16 or dynamic_range")
    return None


def to_tflite(module: SynthesisModule, variant: str,
            representative: Callable[[], Iterable[list[np.ndarray]]] | None = None) -> bytes:
    """Converts the batch-1 graph of ``module`` to a TFLite flatbuffer.

    Args:
        module: the inference module.
        variant: "float32"; "float16" (weights in float16, computed in float32
            on CPUs, float16 on GPU delegates); "dynamic_range" (int8 weights,
            float activations); "int8" (full integer: int8 weights and
            activations, calibrated on ``representative``; the int32 ids in
            and the uint8 image out are unchanged); "int16x8" (int8 weights,
            int16 activations, calibrated likewise; the few ops without an
            int16 kernel, such as the final ROUND, stay float).
        representative: for the calibrated variants, a callable returning an
            iterable of input lists in the function's order (label,
            [instance], [latent]).

    Only builtin ops are allowed (no Flex ops), so the files run with the
    plain LiteRT runtime on phones.
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant={variant!r} is not valid; expected one of {list(VARIANTS)}.")
    # Through a SavedModel written by Keras' ExportArchive, which freezes the
    # variables (from_concrete_functions left them as READ_VARIABLE ops).
    with tempfile.TemporaryDirectory() as tmp:
        module.save(tmp, module.tflite_endpoint())
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp, signature_keys=["serving_default"])
        return _convert(converter, variant, representative)


def _convert(converter, variant, representative):
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if variant == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif variant == "dynamic_range":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif variant in CALIBRATED:
        if representative is None:
            raise ValueError(f"The {variant} variant needs a representative dataset for calibration.")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        if variant == "int8":
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        else:
            converter.target_spec.supported_ops = [
                tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8,
                tf.lite.OpsSet.TFLITE_BUILTINS,
            ]
    return converter.convert()


def run_tflite(model: bytes | str, label: np.ndarray, instance: np.ndarray | None = None,
               latent: np.ndarray | None = None) -> np.ndarray:
    """Runs a converted model on one example with the LiteRT interpreter.

    ``label`` (and ``instance``) int32 [1, H, W], ``latent`` float32 [1, z];
    returns uint8 [1, H, W, 3].
    """
    interpreter = make_interpreter(model)
    runner = interpreter.get_signature_runner()
    inputs = {"label": np.asarray(label, np.int32)}
    if instance is not None:
        inputs["instance"] = np.asarray(instance, np.int32)
    if latent is not None:
        inputs["latent"] = np.asarray(latent, np.float32)
    return runner(**inputs)["image"]


def make_interpreter(model: bytes | str):
    """A LiteRT interpreter (``ai-edge-litert``), else TensorFlow's own."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # pragma: no cover - depends on the install
        Interpreter = tf.lite.Interpreter
    if isinstance(model, (bytes, bytearray)):
        return Interpreter(model_content=bytes(model))
    return Interpreter(model_path=str(model))
