"""TFLite conversion of the inference graph: float32, float16, dynamic range, int8, int16x8."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable

import numpy as np
import tensorflow as tf

from spade_tf.export.serving import SynthesisModule
from spade_tf.export.variants import CALIBRATED, VARIANTS
from spade_tf.positional import NAME_SCOPE


def unsupported_reason(variant: str, config) -> str | None:
    """Why ``variant`` cannot be converted for ``config``, or None."""
    if variant == "int16x8" and config.norm_mode == "sean":
        # SEAN has no fast path (serving.SynthesisModule): its graph one-hot
        # encodes the ids with ONE_HOT, which the int16x8 quantizer gives int16
        # on/off values that LiteRT's ONE_HOT kernel refuses at run time
        # ("off_value->type != op_context.dtype (FLOAT32 != INT16)"; an
        # equality with the channel indices instead is fused back into ONE_HOT).
        return ("SEAN's graph one-hot encodes the label with ONE_HOT, whose int16x8-quantized form LiteRT cannot "
                "run; use float16 or dynamic_range")
    if variant == "int8" and config.norm_mode == "sean":
        # It converts (calibrated on the training photos' style codes:
        # exporter._sean_representative), but SEAN has no fast graph, and the
        # full-int8 form of the plain Keras graph loses the picture: 9-14 dB
        # against float32 on a SEAN model trained 150 steps on the synthetic
        # scenes (SPADE's plain graph: 17.5 dB, where its fast graph keeps
        # 37 dB). Denylisting ACE's ops from quantization did not change it.
        return ("SEAN has no fast graph, and the full-int8 file of its Keras graph measured 9-14 dB against float32 "
                "(unusable); use dynamic_range (int8 weights, 55 dB) or float16")
    return None


def takes_positional(variant: str, config) -> bool:
    """Whether ``generator_<variant>.tflite`` takes CLADE-ICPE's maps as an input.

    Only int16x8: it goes through TFLite's older quantizer, which has no
    denylist and refuses the maps' connected-components WHILE loop ("Max and
    min for dynamic tensors should be recorded during calibration: ...
    while_cond_arg0"); the MLIR quantizer, which has one (the int8 file keeps
    the loop in float32 with it), writes int16 tensors with non-zero zero
    points in its 16x8 mode, which LiteRT refuses ("input2->params.zero_point
    != 0"). So that file reads the maps from ``positional_encoding.tflite``
    (float32, ``positional_tflite``) rather than computing them.
    """
    return variant == "int16x8" and bool(config.use_positional_encoding)


def positional_tflite(module: SynthesisModule) -> bytes:
    """The float32 TFLite file of CLADE-ICPE's maps: ``label`` int32 [1, H, W] ->
    ``positional`` float32 [1, H, W, 2], as the generator graphs compute them."""
    return _convert_endpoint(module, module.positional_endpoint(), "float32")


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
            iterable of input dicts by name (``label``, [``instance``],
            [``latent``], [``style_codes``]); lists are fed in the converted
            graph's own input order, which need not be the signature's.

    With ``takes_positional(variant, config)`` the file takes ``positional``
    [1, H, W, 2] float32 as one more input (computed here for calibration).

    Only builtin ops are allowed (no Flex ops), so the files run with the
    plain LiteRT runtime on phones.
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant={variant!r} is not valid; expected one of {list(VARIANTS)}.")
    # Through a SavedModel written by Keras' ExportArchive, which freezes the
    # variables (from_concrete_functions left them as READ_VARIABLE ops).
    reason = unsupported_reason(variant, module.config)
    if reason:
        raise ValueError(f"The {variant} TFLite variant is not available for this model: {reason}.")
    # CLADE-ICPE's maps (pixel coordinates, segment sums, divisions) stay in
    # float32 in the int8 file: int8 activations cannot carry them.
    float_scope = NAME_SCOPE if module.config.use_positional_encoding else None
    given_maps = takes_positional(variant, module.config)
    if given_maps and representative is not None:
        representative = _with_positional(representative)
    return _convert_endpoint(module, module.tflite_endpoint(positional_input=given_maps), variant, representative,
                             float_scope)


def _convert_endpoint(module, endpoint, variant, representative=None, float_scope=None) -> bytes:
    """``endpoint`` (a concrete function of ``module``) through a SavedModel to TFLite."""
    with tempfile.TemporaryDirectory() as tmp:
        module.save(tmp, endpoint)
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp, signature_keys=["serving_default"])
        return _convert(converter, variant, representative, float_scope)


def _with_positional(representative):
    """Calibration inputs (dicts) with CLADE-ICPE's maps of each label added."""
    from spade_tf.positional import positional_encoding

    def generate():
        for inputs in representative():
            if not isinstance(inputs, dict):
                raise TypeError("Calibration inputs for a file that takes 'positional' must be dicts by name.")
            yield {**inputs, "positional": positional_encoding(tf.constant(inputs["label"], tf.int32)).numpy()}

    return generate


def _convert(converter, variant, representative, float_scope=None):
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
            if float_scope:
                return _quantize_except(converter, float_scope)
        else:
            converter.target_spec.supported_ops = [
                tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8,
                tf.lite.OpsSet.TFLITE_BUILTINS,
            ]
    return converter.convert()


def _quantize_except(converter, scope: str) -> bytes:
    """int8 quantization that leaves the ops named ``scope/...`` in float32.

    The converter's own int8 path is calibration followed by the MLIR
    quantizer; this runs the same two steps, passing the ops of ``scope``
    to the quantizer's denylist (as ``tf.lite.experimental.QuantizationDebugger``
    does for selective quantization), so QUANTIZE/DEQUANTIZE ops sit at their
    boundary.
    """
    from tensorflow.lite.python.convert import mlir_quantize

    converter._experimental_calibrate_only = True
    calibrated = converter.convert()
    interpreter = make_interpreter(calibrated)
    names = {t["index"]: t["name"] for t in interpreter.get_tensor_details()}
    denylisted = sorted({
        names[i] for op in interpreter._get_ops_details() for i in op["outputs"]
        if names.get(i, "").startswith(scope + "/")
    })
    if not denylisted:
        raise RuntimeError(f"No op of the TFLite graph is named {scope}/...: cannot keep them in float.")
    return mlir_quantize(calibrated, denylisted_nodes=denylisted)


def run_tflite(model: bytes | str, label: np.ndarray, instance: np.ndarray | None = None,
               latent: np.ndarray | None = None, style_codes: np.ndarray | None = None,
               positional: np.ndarray | None = None) -> np.ndarray:
    """Runs a converted model on one example with the LiteRT interpreter.

    ``label`` (and ``instance``) int32 [1, H, W], ``latent`` float32 [1, z],
    ``style_codes`` float32 [1, semantic_nc, style_dim] (SEAN), ``positional``
    float32 [1, H, W, 2] (the CLADE-ICPE files that take it); returns uint8
    [1, H, W, 3].
    """
    interpreter = make_interpreter(model)
    runner = interpreter.get_signature_runner()
    inputs = {"label": np.asarray(label, np.int32)}
    if instance is not None:
        inputs["instance"] = np.asarray(instance, np.int32)
    if latent is not None:
        inputs["latent"] = np.asarray(latent, np.float32)
    if style_codes is not None:
        inputs["style_codes"] = np.asarray(style_codes, np.float32)
    if positional is not None:
        inputs["positional"] = np.asarray(positional, np.float32)
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
