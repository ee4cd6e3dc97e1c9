"""The base of layers that read a one-hot segmap's label channels and its optional edge channel."""

import keras


class SegmapReader(keras.layers.Layer):
    """A layer of a segmap ``[B, H, W, classes (+1)]``: ``classes`` one-hot label
    channels (classes + don't-care), then the instance-edge channel with
    ``instance_edges``. Subclasses: SPADE's ``LabelIndex``, CLADE's ``ClassMap``.

    Args:
        classes: label channels of the segmap (classes + don't-care).
        instance_edges: whether the segmap ends with the edge channel.
    """

    def __init__(self, classes, instance_edges=False, **kwargs):
        super().__init__(**kwargs)
        self.classes = classes
        self.instance_edges = bool(instance_edges)

    def labels(self, segmap):
        return segmap[..., :self.classes]

    def edges(self, segmap):
        """The edge channel, [B, H, W] (only with ``instance_edges``)."""
        return segmap[..., self.classes]

    def get_config(self):
        config = super().get_config()
        config.update(classes=self.classes, instance_edges=self.instance_edges)
        return config
