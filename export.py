"""Export a trained SPADE generator for TensorFlow Serving, Keras and TFLite.

    python export.py --workdir=runs/synthetic --export_dir=exported/synthetic
    python export.py --torch_checkpoint=checkpoints/coco_pretrained --preset=coco --export_dir=exported/coco

Writes serving/<version>/ (SavedModel), generator.keras, tflite/*.tflite and a
model card; see README.md.
"""

from spade_tf.export.cli import run

if __name__ == "__main__":
    run()
