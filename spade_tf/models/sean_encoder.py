"""SEAN's style encoder (Zencoder): image + label map -> one style code per region."""

import keras

from spade_tf.config import SPADEConfig
from spade_tf.layers import Conv2D, InstanceNorm, ReflectionPad2D, RegionAverage, fresh_initializer, get_initializer

# Official Zencoder(3, 512) is built with its default ngf=32 (hard-coded).
ZENCODER_FILTERS = 32


def build_sean_encoder(config: SPADEConfig, name: str = "Zencoder") -> keras.Model:
    """Builds SEAN's Zencoder as a functional ``keras.Model``.

    Inputs: ``"image"`` [B, H, W, 3] in [-1, 1] and ``"segmap"``
    [B, H, W, semantic_nc]. Output: style codes [B, semantic_nc, style_dim]
    (zeros for regions absent from the label map).

    Architecture (official ``Zencoder(input_nc=3, output_nc=512)``, ngf 32,
    two downsamplings), no spectral norm, InstanceNorm without affine terms,
    LeakyReLU(0.2):

    * reflection pad 1, 3x3 conv 3 -> 32 (``conv_in``), norm, lrelu;
    * 3x3 stride-2 convs (PyTorch padding 1) 32 -> 64 (``down_0``) and
      64 -> 128 (``down_1``), each with norm, lrelu;
    * a 3x3 stride-2 transposed conv (padding 1, output padding 1) 128 ->
      256 (``upsample``; official, though its norm is declared for 64 channels:
      PyTorch's affine-free InstanceNorm2d ignores ``num_features``), norm,
      lrelu;
    * reflection pad 1, 3x3 conv 256 -> style_dim (``conv_out``), tanh;
    * region-wise average pooling over the label map nearest-resized to the
      codes' size (H/2, W/2): ``region_average``.

    Official init (``init_weights`` of the generator it belongs to):
    Xavier(0.02) on every conv and the transposed conv, zero biases.

    Key map from an official ``netG`` state dict (``Zencoder.model.<i>``):
    1 -> ``conv_in``, 4 -> ``down_0``, 7 -> ``down_1``, 10 -> ``upsample``
    (PyTorch [in, out, kh, kw] -> Keras [kh, kw, out, in]), 14 -> ``conv_out``.

    Reference: ZPdesu/SEAN ``models/networks/architecture.py`` (``Zencoder``).
    """
    c = config
    height, width = c.image_size
    init = get_initializer(c.init_type, c.init_variance)
    nf = ZENCODER_FILTERS
    image = keras.Input((height, width, 3), name="image")
    segmap = keras.Input((height, width, c.semantic_nc), name="segmap")

    def norm_act(x, i):
        x = InstanceNorm(name=f"norm_{i}")(x)
        return keras.layers.LeakyReLU(0.2, name=f"lrelu_{i}")(x)

    x = ReflectionPad2D(1, name="pad_in")(image)
    x = norm_act(Conv2D(nf, 3, kernel_initializer=init, name="conv_in")(x), 0)
    x = norm_act(Conv2D(2 * nf, 3, strides=2, padding=1, kernel_initializer=init, name="down_0")(x), 1)
    x = norm_act(Conv2D(4 * nf, 3, strides=2, padding=1, kernel_initializer=init, name="down_1")(x), 2)
    # PyTorch ConvTranspose2d(k=3, s=2, padding=1, output_padding=1): of the
    # full (2h + 1)-row transposed convolution it keeps rows 1 .. 2h; Keras'
    # "valid" gives the full one, so one row and column are cropped at the
    # start. (Keras' "same" would keep rows 0 .. 2h - 1: shifted by one.)
    x = keras.layers.Conv2DTranspose(
        8 * nf, 3, strides=2, padding="valid", kernel_initializer=fresh_initializer(init), name="upsample")(x)
    x = keras.layers.Cropping2D(((1, 0), (1, 0)), name="upsample_crop")(x)
    x = norm_act(x, 3)
    x = ReflectionPad2D(1, name="pad_out")(x)
    x = Conv2D(c.style_dim, 3, kernel_initializer=init, name="conv_out")(x)
    codes = keras.layers.Activation("tanh", name="codes")(x)
    style_codes = RegionAverage(name="style_codes", dtype="float32")(codes, segmap)
    return keras.Model({"image": image, "segmap": segmap}, style_codes, name=name)


def encode_styles(encoder: keras.Model, image, segmap, training=False):
    """Style codes of an image's regions: [B, semantic_nc, style_dim].

    Args:
        encoder: the Zencoder (``build_sean_encoder``).
        image: [B, H, W, 3] in [-1, 1].
        segmap: [B, H, W, semantic_nc] label map of the image.

    Raises:
        ValueError: an image or segmap whose shape is not the encoder's.
    """
    for key, value in (("image", image), ("segmap", segmap)):
        expected = tuple(encoder.input[key].shape[1:])
        if tuple(value.shape[1:]) != expected:
            raise ValueError(f"encode_styles: {key} of shape {tuple(value.shape)}; expected [B, "
                             f"{', '.join(map(str, expected))}].")
    return encoder({"image": image, "segmap": segmap}, training=training)


def build_sean_network(config: SPADEConfig, name: str = "sean") -> keras.Model:
    """The official SEAN ``netG`` as one model: the Zencoder's style codes of
    ``"image"`` drive the generator (``build_generator`` with
    ``norm_mode="sean"``) on ``"segmap"``.

    Inputs: ``"segmap"`` [B, H, W, semantic_nc], ``"image"`` [B, H, W, 3].
    Output: [B, H, W, 3] in [-1, 1]. Its sub-models are the layers
    ``"Zencoder"`` and ``"generator"`` (feed the latter edited style codes
    to change regions' styles). Its parameters are the official netG's.
    """
    from spade_tf.models.generator import build_generator

    if config.norm_mode != "sean":
        raise ValueError(f"build_sean_network needs norm_mode='sean'; got norm_mode={config.norm_mode!r}.")
    height, width = config.image_size
    segmap = keras.Input((height, width, config.semantic_nc), name="segmap")
    image = keras.Input((height, width, 3), name="image")
    encoder = build_sean_encoder(config)
    generator = build_generator(config)
    style_codes = encoder({"image": image, "segmap": segmap})
    fake = generator({"segmap": segmap, "style_codes": style_codes})
    return keras.Model({"segmap": segmap, "image": image}, fake, name=name)
