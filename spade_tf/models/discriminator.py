"""The multi-scale PatchGAN discriminator."""

import keras
import numpy as np
from keras import ops

from spade_tf.config import SPADEConfig
from spade_tf.layers import Conv2D, InstanceNorm, get_initializer

# ZPdesu/SEAN's NLayerDiscriminator (pix2pixHD's) strides every middle conv by
# 2; NVlabs/SPADE's last middle conv has stride 1.
SEAN_LAST_STRIDE = 2


@keras.saving.register_keras_serializable(package="spade_tf")
class NLayerDiscriminator(keras.layers.Layer):
    """One PatchGAN scale; returns every intermediate feature map.

    4x4 convs with PyTorch padding 2: ``model0`` conv(stride 2, bias) ->
    LeakyReLU(0.2); ``model1..n-1`` spectral-norm conv without bias (the
    official norm layer deletes it) -> InstanceNorm -> LeakyReLU at 2x, 4x, 8x
    channels (capped at 512; stride 2, the last ``last_stride``: 1 in SPADE,
    2 in SEAN, whose discriminator is pix2pixHD's); ``model{n}`` conv to one
    channel with bias, no norm.

    Args:
        ndf: channels of the first conv.
        n_layers: official ``n_layers_D``.
        spectral_norm: spectral-normalize the middle convs (``norm_D``).
        kernel_initializer: conv initializer.
        last_stride: stride of the last middle conv (``model{n-1}``).

    Call args:
        inputs: [B, H, W, C] label map concatenated with an image.
        training: spectral-norm power iteration.

    Returns:
        list of ``n_layers + 1`` tensors, the last the patch logits.

    Reference: NVlabs/SPADE ``models/networks/discriminator.py``.
    """

    def __init__(self, ndf=64, n_layers=4, spectral_norm=True, kernel_initializer=None, last_stride=1, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(n_layers, int) or n_layers < 1:
            raise ValueError(f"n_layers={n_layers!r} is not valid; expected an int >= 1.")
        if last_stride not in (1, 2):
            raise ValueError(f"last_stride={last_stride!r} is not valid; expected 1 or 2.")
        self.last_stride = last_stride
        self.ndf = ndf
        self.n_layers = n_layers
        self.spectral_norm = spectral_norm
        self.kernel_initializer = keras.initializers.get(kernel_initializer) if kernel_initializer else None
        common = dict(kernel_initializer=self.kernel_initializer, dtype=self.dtype_policy)
        self.convs = [Conv2D(ndf, 4, strides=2, padding=2, name="model0_conv", **common)]
        self.norms = [None]
        nf = ndf
        for n in range(1, n_layers):
            nf = min(nf * 2, 512)
            stride = last_stride if n == n_layers - 1 else 2
            self.convs.append(Conv2D(
                nf, 4, strides=stride, padding=2, use_bias=False,
                spectral_norm=spectral_norm, name=f"model{n}_conv", **common,
            ))
            self.norms.append(InstanceNorm(name=f"model{n}_norm", dtype=self.dtype_policy))
        self.convs.append(Conv2D(1, 4, strides=1, padding=2, name=f"model{n_layers}_conv", **common))
        self.norms.append(None)
        # Keras 3 (TensorFlow backend) does not make the layers in a list
        # attribute tf.train.Checkpoint dependencies: without these attributes
        # a training checkpoint kept the conv weights only through the
        # optimizer and lost the spectral-norm vectors u, v altogether.
        for conv in self.convs:
            setattr(self, conv.name, conv)

    def build(self, input_shape):
        shape = input_shape
        for conv, norm in zip(self.convs, self.norms):
            conv.build(shape)
            shape = conv.compute_output_shape(shape)
            if norm is not None:
                norm.build(shape)

    def call(self, inputs, training=None):
        results = []
        x = inputs
        last = len(self.convs) - 1
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms)):
            x = conv(x, training=training)
            if norm is not None:
                x = norm(x, training=training)
            if i < last:
                x = ops.leaky_relu(x, 0.2)
            results.append(x)
        return results

    def compute_output_shape(self, input_shape):
        shapes = []
        shape = input_shape
        for conv in self.convs:
            shape = conv.compute_output_shape(shape)
            shapes.append(shape)
        return shapes

    def get_config(self):
        config = super().get_config()
        config.update(
            ndf=self.ndf, n_layers=self.n_layers, spectral_norm=self.spectral_norm, last_stride=self.last_stride,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer)
            if self.kernel_initializer else None,
        )
        return config


@keras.saving.register_keras_serializable(package="spade_tf")
class AvgPoolExcludePad(keras.layers.Layer):
    """3x3 average pooling, stride 2, padding 1, padded cells not counted.

    ``F.avg_pool2d(x, 3, 2, padding=1, count_include_pad=False)``, the
    official downsampling between discriminator scales. Keras' "same" pooling
    pads asymmetrically, so this pads explicitly and divides the window sums
    by the number of real cells in each window.
    """

    def call(self, inputs):
        h, w = inputs.shape[1], inputs.shape[2]
        padded = ops.pad(inputs, [[0, 0], [1, 1], [1, 1], [0, 0]])
        sums = ops.average_pool(padded, 3, strides=2, padding="valid") * 9.0
        counts = _window_counts(h, 1)[:, None] * _window_counts(w, 1)[None, :]
        return sums / ops.cast(counts[None, :, :, None], sums.dtype)

    def compute_output_shape(self, input_shape):
        def size(n):
            return None if n is None else (n - 1) // 2 + 1

        return (input_shape[0], size(input_shape[1]), size(input_shape[2]), input_shape[3])


def _window_counts(n, pad):
    """Real (unpadded) cells in each 3-wide, stride-2 window along an axis."""
    out = (n + 2 * pad - 3) // 2 + 1
    starts = np.arange(out) * 2 - pad
    return (np.minimum(starts + 3, n) - np.maximum(starts, 0)).astype(np.float32)


def build_discriminator(config: SPADEConfig, name: str = "discriminator") -> keras.Model:
    """Builds the multi-scale discriminator of a config.

    Inputs: ``"segmap"`` [B, H, W, semantic_nc] and ``"image"`` [B, H, W, 3],
    concatenated label map first (as official). Output: a list of ``num_D``
    scales, each a list of ``n_layers_D + 1`` feature maps; the last of each is
    the patch logits. Scale ``i`` sees the input average-pooled ``i`` times.

    Feed real and fake images in one batch (concatenated on the batch axis),
    as NVlabs does, so that both share normalization statistics.
    """
    c = config
    height, width = c.image_size
    init = get_initializer(c.init_type, c.init_variance)
    segmap = keras.Input((height, width, c.semantic_nc), name="segmap")
    image = keras.Input((height, width, 3), name="image")
    x = keras.layers.Concatenate(axis=-1, name="concat")([segmap, image])
    outputs = []
    for i in range(c.num_D):
        d = NLayerDiscriminator(
            c.ndf, c.n_layers_D, spectral_norm=c.use_spectral_norm_D,
            kernel_initializer=init, last_stride=SEAN_LAST_STRIDE if c.norm_mode == "sean" else 1,
            name=f"discriminator_{i}",
        )
        outputs.append(d(x))
        if i < c.num_D - 1:
            x = AvgPoolExcludePad(name=f"downsample_{i}")(x)
    return keras.Model({"segmap": segmap, "image": image}, outputs, name=name)


def as_scales(predictions):
    """Discriminator output as a list of scales, each a list of feature maps.

    Keras unwraps a functional model's one-element output list, so with
    ``num_D=1`` the model returns the scale's list of feature maps directly.
    """
    if predictions and not isinstance(predictions[0], (list, tuple)):
        return [list(predictions)]
    return [list(scale) for scale in predictions]
