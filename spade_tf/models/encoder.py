"""The VAE style encoder."""

import keras

from spade_tf.config import SPADEConfig
from spade_tf.layers import Conv2D, InstanceNorm, fresh_initializer, get_initializer


def build_encoder(config: SPADEConfig, name: str = "encoder") -> keras.Model:
    """Builds the style encoder: image -> (mean, logvar) of the latent.

    Official ``ConvEncoder``: the image is bilinearly resized to 256x256 (it
    already is at crop 256); five (six when ``crop_size >= 256``) 3x3 stride-2
    convs with PyTorch padding 1, spectral norm, no bias, InstanceNorm, with
    ngf, 2, 4, 8, 8, 8 ngf channels (the official encoder reads ``ngf``, not
    ``nef``), LeakyReLU(0.2) after each; flatten; two dense layers to
    ``z_dim``. The official dense layers take 4x4 maps, which only six convs
    give: below crop 256 its forward pass fails. Here the dense layers take
    what the convs give (8x8), so small-crop VAE models work; importing an
    official checkpoint needs crop >= 256 anyway.

    Inputs: ``"image"`` [B, H, W, 3] in [-1, 1]. Outputs: ``[mean, logvar]``,
    each [B, z_dim].

    Reference: NVlabs/SPADE ``models/networks/encoder.py``.
    """
    c = config
    height, width = c.image_size
    init = get_initializer(c.init_type, c.init_variance)
    nf = c.ngf
    image = keras.Input((height, width, 3), name="image")
    x = image
    if (height, width) != (256, 256):
        x = keras.layers.Resizing(256, 256, interpolation="bilinear", name="resize")(x)
    channels = [nf, 2 * nf, 4 * nf, 8 * nf, 8 * nf]
    if c.crop_size >= 256:
        channels.append(8 * nf)
    for i, filters in enumerate(channels):
        x = Conv2D(
            filters, 3, strides=2, padding=1, use_bias=False,
            spectral_norm=c.use_spectral_norm_E, kernel_initializer=init,
            name=f"layer{i + 1}",
        )(x)
        x = InstanceNorm(name=f"layer{i + 1}_norm")(x)
        x = keras.layers.LeakyReLU(0.2, name=f"actvn{i + 1}")(x)
    # NHWC flatten; PyTorch flattens NCHW, so importing fc_mu / fc_var
    # permutes their input rows (see the checkpoint importer).
    x = keras.layers.Flatten(name="flatten")(x)
    mean = keras.layers.Dense(c.z_dim, kernel_initializer=fresh_initializer(init), name="fc_mu", dtype="float32")(x)
    logvar = keras.layers.Dense(c.z_dim, kernel_initializer=fresh_initializer(init), name="fc_var", dtype="float32")(x)
    return keras.Model({"image": image}, [mean, logvar], name=name)
