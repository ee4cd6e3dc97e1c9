"""Export: SavedModel for TensorFlow Serving, Keras file, TFLite; inference loading.

Names are imported on first use, so that ``export.py --help`` and the flag
definitions do not load TensorFlow.
"""

from spade_tf.utils.lazy import lazy_exports

_EXPORTS = {
    "export_model": "exporter", "model_card": "exporter", "next_version": "exporter",
    "Signature": "runtime", "Synthesizer": "runtime", "load_synthesizer": "runtime",
    "SynthesisModule": "serving",
    "to_tflite": "tflite", "make_interpreter": "tflite", "run_tflite": "tflite", "positional_tflite": "tflite",
    "VARIANTS": "variants",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
