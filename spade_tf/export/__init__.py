"""Export: SavedModel for TensorFlow Serving, Keras file, TFLite; inference loading."""

from spade_tf.export.checkpoint import Restored, find_checkpoint, load_workdir, read_config
from spade_tf.export.exporter import export_model, model_card, next_version
from spade_tf.export.runtime import Synthesizer, load_synthesizer
from spade_tf.export.serving import SynthesisModule
from spade_tf.export.tflite import VARIANTS, convert, make_interpreter, run_tflite

__all__ = [
    "Restored", "SynthesisModule", "Synthesizer", "VARIANTS", "convert", "export_model",
    "find_checkpoint", "load_synthesizer", "load_workdir", "make_interpreter", "model_card",
    "next_version", "read_config", "run_tflite",
]
