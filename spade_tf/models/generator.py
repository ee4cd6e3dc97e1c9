"""The SPADE generator."""

import keras

from spade_tf.config import SPADEConfig
from spade_tf.layers import (
    ClassMap,
    Conv2D,
    LabelIndex,
    NearestResize,
    SPADEResBlock,
    Upsample2x,
    fresh_initializer,
    get_initializer,
)


def build_generator(config: SPADEConfig, name: str = "generator") -> keras.Model:
    """Builds the SPADE generator of a config as a functional ``keras.Model``.

    Inputs: ``"segmap"`` [B, H, W, semantic_nc] float one-hot label map (plus
    the instance-edge channel), with ``use_vae`` ``"latent"`` [B, z_dim],
    with ``use_positional_encoding`` ``"positional"`` [B, H, W, 2] (CLADE-ICPE
    maps, ``spade_tf.positional``), and with ``norm_mode="sean"``
    ``"style_codes"`` [B, semantic_nc, style_dim] (one per segmap channel,
    from the Zencoder: ``spade_tf.models.sean_encoder``).
    Output: [B, H, W, 3] image in [-1, 1], ``(H, W) = config.image_size``.

    Layer names follow NVlabs' state-dict keys (``fc``, ``head_0``,
    ``G_middle_0/1``, ``up_0..4``, ``conv_img``) so checkpoints map by name.

    Architecture (official ``SPADEGenerator``): from the latent (dense, 'fc')
    or the label map nearest-resized to ``latent_size`` (3x3 conv, 'fc') at
    16 ngf channels; head_0, up, G_middle_0, [up if more/most], G_middle_1,
    then up + up_0..up_3 (16->8->4->2->1 ngf), [up + up_4 to ngf/2 if most];
    LeakyReLU(0.2) -> 3x3 conv -> tanh. ``norm_mode="clade"`` builds the
    same generator with CLADE in place of SPADE in every block (official
    tzt101/CLADE ``--norm_mode clade``); ``fc`` still reads the whole segmap.
    ``norm_mode="sean"`` builds SEAN's generator (ZPdesu/SEAN
    ``SPADEGenerator``): ACE in every block, every block but the last
    (``up_3``, official ``use_rgb=False``) modulated by the style codes. The
    official netG also holds the Zencoder (``build_sean_network`` joins the
    two; the parameter count of official netG is that of both).

    Reference: NVlabs/SPADE ``models/networks/generator.py``;
    ZPdesu/SEAN ``models/networks/generator.py``.
    """
    c = config
    nf = c.ngf
    height, width = c.image_size
    sh, sw = c.latent_size
    init = get_initializer(c.init_type, c.init_variance)

    sean = c.norm_mode == "sean"

    def block(fin, fout, block_name):
        return SPADEResBlock(
            fin, fout, spade_hidden=c.spade_hidden, spade_kernel_size=c.spade_kernel_size,
            norm=c.param_free_norm_G, spectral_norm=c.use_spectral_norm_G,
            kernel_initializer=init, norm_mode=c.norm_mode,
            # SEAN: one style code per segmap channel, the edge map included
            # (official ACE loops over all of segmap's channels).
            classes=c.semantic_nc if sean else c.num_classes,
            instance_edges=c.use_instance_map, positional=c.use_positional_encoding,
            style_dim=c.style_dim, use_style=not (sean and block_name == "up_3"), name=block_name,
        )

    segmap = keras.Input((height, width, c.semantic_nc), name="segmap")
    inputs = {"segmap": segmap}
    if c.use_vae:
        latent = keras.Input((c.z_dim,), name="latent")
        inputs["latent"] = latent
        x = keras.layers.Dense(
            16 * nf * sh * sw, kernel_initializer=fresh_initializer(init), name="fc"
        )(latent)
        # NHWC reshape; PyTorch views NCHW, so importing 'fc' permutes its
        # output units (see the checkpoint importer).
        x = keras.layers.Reshape((sh, sw, 16 * nf), name="fc_reshape")(x)
    else:
        x = NearestResize((sh, sw), name="segmap_downsample")(segmap)
        x = Conv2D(16 * nf, 3, padding=1, kernel_initializer=init, name="fc")(x)

    # Each block's label input: the segmap, or for CLADE its class ids (and
    # edges), taken once here; CLADE-ICPE's maps go beside it.
    if c.norm_mode == "clade":
        conditions = [ClassMap(c.num_classes, c.use_instance_map, name="class_map")(segmap)]
    elif c.norm_mode == "spade":
        # SPADE's mlp_shared convolves a one-hot map: computed from the label
        # index as a lookup, the same numbers at a fraction of the work.
        conditions = [LabelIndex(c.num_classes, c.use_instance_map, name="label_index")(segmap)]
    else:
        conditions = [segmap]
    if c.use_positional_encoding:
        positional = keras.Input((height, width, 2), name="positional")
        inputs["positional"] = positional
        conditions.append(positional)
    # SEAN's style codes go to every block (official passes them to all,
    # up_3 included, whose ACEs do not use them).
    styles = {}
    if sean:
        styles["style_codes"] = inputs["style_codes"] = keras.Input(
            (c.semantic_nc, c.style_dim), name="style_codes")

    def up(x, i):
        return Upsample2x(name=f"up{i}")(x)

    x = block(16 * nf, 16 * nf, "head_0")(x, *conditions, **styles)
    x = up(x, 0)
    x = block(16 * nf, 16 * nf, "G_middle_0")(x, *conditions, **styles)
    n_up = 1
    if c.num_upsampling_layers in ("more", "most"):
        x = up(x, n_up)
        n_up += 1
    x = block(16 * nf, 16 * nf, "G_middle_1")(x, *conditions, **styles)
    channels = [16 * nf, 8 * nf, 4 * nf, 2 * nf, 1 * nf]
    if c.num_upsampling_layers == "most":
        channels.append(nf // 2)
    for i in range(len(channels) - 1):
        x = up(x, n_up)
        n_up += 1
        x = block(channels[i], channels[i + 1], f"up_{i}")(x, *conditions, **styles)
    x = keras.layers.LeakyReLU(0.2, name="lrelu_img")(x)
    x = Conv2D(3, 3, padding=1, kernel_initializer=init, name="conv_img")(x)
    image = keras.layers.Activation("tanh", name="image", dtype="float32")(x)
    return keras.Model(inputs, image, name=name)
