"""Reading TensorBoard scalars back in tests."""

import glob

import tensorflow as tf


def read_scalars(logdir):
    """{tag: [(step, value)]} of the scalar summaries in the event files under ``logdir``."""
    scalars = {}
    for path in sorted(glob.glob(f"{logdir}/**/events.out.tfevents.*", recursive=True)):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                array = tf.make_ndarray(value.tensor)
                if array.ndim == 0:  # not the sample images
                    scalars.setdefault(value.tag, []).append((event.step, float(array)))
    return scalars
