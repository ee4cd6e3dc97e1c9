"""The TFLite variants the exporter writes (no TensorFlow import: export.py's flags use it)."""

VARIANTS = ("float32", "float16", "dynamic_range", "int8", "int16x8")
CALIBRATED = ("int8", "int16x8")  # need representative label maps
# On-device recommendation: the fastest file within this PSNR of float32.
RECOMMENDED_MIN_PSNR_DB = 40.0
# CLADE-ICPE: the float32 file computing the positional maps that the
# files of ``tflite.takes_positional`` variants take as an input.
POSITIONAL_TFLITE = "positional_encoding.tflite"
