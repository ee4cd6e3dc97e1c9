"""Data: dataset layouts, validation, tf.data pipelines, synthetic scenes."""

from spade_tf.data.layouts import DATASET_MODES, DataError, DatasetFiles, detect_mode, find_files
from spade_tf.data.validation import check_pair, validate_files

__all__ = [
    "DATASET_MODES", "DataError", "DatasetFiles", "check_pair", "detect_mode", "find_files",
    "validate_files",
]
