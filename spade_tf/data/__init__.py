"""Data: dataset layouts, tf.data pipelines and the built-in synthetic scenes."""
