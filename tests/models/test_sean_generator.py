"""SEAN: the Zencoder, the generator with ACE blocks, and the two as official netG."""


import keras
import numpy as np
import pytest
from helpers import keras_round_trip, n_trainable, one_hot_segmap, to_numpy

from spade_tf import build_generator, build_sean_encoder, build_sean_network, get_preset
from spade_tf.layers import ACE, set_noise
from spade_tf.models import encode_styles

CELEBAMASK_HQ = dict(label_nc=19, load_size=256, norm_mode="sean")  # official README flags


def small(**overrides):
    return get_preset("custom", **{
        "label_nc": 4, "crop_size": 64, "load_size": 64, "ngf": 4, "spade_hidden": 8, "style_dim": 8,
        "norm_mode": "sean", **overrides})


def official_netg_parameters(label_nc, ngf, style_dim=512, hidden=128, upsampling="normal"):
    """Trainable parameters of official SEAN's netG, module by module, as
    ZPdesu/SEAN builds it (``Zencoder(3, 512)`` + ``SPADEGenerator``)."""
    def conv(cin, cout, k=3, bias=True):
        return k * k * cin * cout + (cout if bias else 0)

    zencoder = conv(3, 32) + conv(32, 64) + conv(64, 128) + conv(128, 256) + conv(256, style_dim)

    def ace(c, use_rgb):
        # inner Spade (mlp_shared, mlp_gamma, mlp_beta); blending_gamma,
        # blending_beta and noise_var exist whatever use_rgb says.
        n = conv(label_nc, hidden) + 2 * conv(hidden, c) + 2 + c
        if use_rgb:  # fc_mu{j} per class, conv_gamma, conv_beta (3x3)
            n += label_nc * (style_dim * style_dim + style_dim) + 2 * conv(style_dim, c)
        return n

    def block(fin, fout, use_rgb=True):
        fm = min(fin, fout)
        n = conv(fin, fm) + conv(fm, fout) + ace(fin, use_rgb) + ace(fm, use_rgb)
        return n + (conv(fin, fout, 1, bias=False) + ace(fin, use_rgb) if fin != fout else 0)

    nf = ngf
    g = conv(label_nc, 16 * nf) + 3 * block(16 * nf, 16 * nf)
    g += block(16 * nf, 8 * nf) + block(8 * nf, 4 * nf) + block(4 * nf, 2 * nf) + block(2 * nf, nf, use_rgb=False)
    g += conv(nf, 3)  # conv_img
    return zencoder + g, zencoder


def test_official_celebamask_hq_parameter_arithmetic():
    # 266,907,367: the count official SEAN prints for its CelebAMask-HQ netG.
    assert official_netg_parameters(19, 64) == (266_907_367, 1_568_576)


def test_parameter_count_equals_official_arithmetic_on_a_small_config():
    cfg = small(label_nc=5)
    network = build_sean_network(cfg)
    expected, zencoder = official_netg_parameters(5, 4, style_dim=8, hidden=8)
    assert n_trainable(network) == expected
    assert n_trainable(network.get_layer("Zencoder")) == zencoder
    assert n_trainable(network.get_layer("generator")) == expected - zencoder


def test_celebamask_hq_parameter_count_equals_official():
    # The full-size network: 267M parameters, ~2 GB, built in ~6 s here.
    network = build_sean_network(get_preset("custom", **CELEBAMASK_HQ))
    assert n_trainable(network) == 266_907_367
    assert n_trainable(network.get_layer("Zencoder")) == 1_568_576


def test_blocks_use_style_but_the_last_and_names_follow_official():
    generator = build_generator(small())
    assert sorted(generator.input.keys()) == ["segmap", "style_codes"]
    assert tuple(generator.input["style_codes"].shape) == (None, 4, 8)
    aces = {layer.path: layer for layer in generator._flatten_layers() if isinstance(layer, ACE)}
    assert len(aces) == 3 * 2 + 4 * 3  # head_0, G_middle_0/1: two ACEs; up_0..3 three (shortcut)
    for path, layer in aces.items():
        assert layer.use_style == (not path.startswith("up_3/")), path
        assert layer.use_noise and layer.norm == "syncbatch"
    paths = {v.path for v in generator.variables}
    assert {"head_0/norm_0/fc_mu_kernel", "up_2/norm_s/conv_gamma/kernel", "up_3/norm_0/blending_gamma",
            "up_3/norm_1/noise_var", "head_0/norm_0/mlp_shared/kernel", "up_0/conv_s/u"} <= paths
    assert not any(p.startswith("up_3/") and ("fc_mu" in p or "conv_gamma" in p) for p in paths)


def test_spade_and_clade_generators_take_no_style_codes():
    for norm_mode in ("spade", "clade"):
        cfg = small(norm_mode=norm_mode, style_dim=512)
        assert sorted(build_generator(cfg).input.keys()) == ["segmap"]


def test_zencoder_codes_are_region_means_of_its_features(rng):
    cfg = small()
    encoder = build_sean_encoder(cfg)
    image = rng.uniform(-1, 1, size=(2, 64, 64, 3)).astype("float32")
    segmap = one_hot_segmap(rng, 2, 64, 64, 4)
    segmap[1, ..., 2] = 0.0  # class 2 absent from sample 1
    codes = to_numpy(encode_styles(encoder, image, segmap))
    assert codes.shape == (2, 4, 8)
    features = to_numpy(keras.Model(encoder.input, encoder.get_layer("codes").output)(
        {"image": image, "segmap": segmap}))
    assert features.shape == (2, 32, 32, 8) and np.abs(features).max() <= 1.0  # tanh, at H/2
    small_map = segmap[:, ::2, ::2]  # PyTorch nearest x[::2]
    for b in range(2):
        for j in range(4):
            mask = small_map[b, ..., j] != 0
            expected = features[b][mask].mean(0) if mask.any() else np.zeros(8)
            np.testing.assert_allclose(codes[b, j], expected, atol=1e-6)
    assert np.abs(codes[1, 2]).max() == 0 and np.abs(codes[0, 2]).max() > 0


def test_zencoder_transposed_conv_is_pytorchs(rng):
    # ConvTranspose2d(k=3, s=2, padding=1, output_padding=1), written out:
    # out[2i + k - 1] += x[i] * w[k], rows 0 .. 2h - 1 kept.
    encoder = build_sean_encoder(small())  # 64 -> 16 -> 32
    up = encoder.get_layer("upsample")
    sub = keras.Model(up.input, encoder.get_layer("upsample_crop").output)
    x = rng.normal(size=(2, 16, 16, 128)).astype("float32")
    kernel, bias = (to_numpy(w) for w in up.weights)  # kernel [kh, kw, out, in]
    full = np.zeros((2, 33, 33, 256))
    for ki in range(3):
        for kj in range(3):
            full[:, ki:ki + 32:2, kj:kj + 32:2] += x @ kernel[ki, kj].T
    np.testing.assert_allclose(to_numpy(sub(x)), full[:, 1:33, 1:33] + bias, atol=1e-5)


def test_encode_styles_names_a_wrong_shape(rng):
    encoder = build_sean_encoder(small())
    with pytest.raises(ValueError, match=r"segmap of shape \(1, 64, 64, 3\); expected \[B, 64, 64, 4\]"):
        encode_styles(encoder, np.zeros((1, 64, 64, 3), "float32"), np.zeros((1, 64, 64, 3), "float32"))


def test_swapping_one_regions_style_changes_mostly_that_region(rng):
    # Official settings (synchronized batch norm, spectral norm), inference
    # with warmed-up statistics. Region 1 is the upper right; its style code
    # is replaced. The change reaches outside pixels only through the convs'
    # receptive fields (at the 2x2 head everything is a neighbour). At init
    # the style path is ~1e-3 of the output (Xavier 0.02 twice), so its fc
    # and convs are scaled up 30x, as a trained model's would have grown.
    # Measured inside / outside mean change: 5.5 (4.0 - 6.2 over seeds).
    cfg = small(label_nc=3, ngf=8, spade_hidden=16, style_dim=16)
    generator = build_generator(cfg)
    for layer in generator._flatten_layers():
        if isinstance(layer, ACE) and layer.use_style:
            for w in (layer.fc_mu_kernel, layer.conv_gamma.kernel, layer.conv_beta.kernel):
                w.assign(w * 30.0)
    ids = np.zeros((2, 64, 64), int)
    ids[:, :, 24:] = 1
    ids[:, 40:, :] = 2
    segmap = np.eye(3, dtype="float32")[ids]

    def codes():
        return np.tanh(rng.normal(size=(2, 3, 16))).astype("float32")

    for _ in range(3):
        generator({"segmap": segmap, "style_codes": codes()}, training=True)
    before = codes()
    after = before.copy()
    after[:, 1] = codes()[:, 1]
    a = to_numpy(generator({"segmap": segmap, "style_codes": before}))
    b = to_numpy(generator({"segmap": segmap, "style_codes": after}))
    change = np.abs(a - b).mean(-1)
    inside, outside = change[ids == 1].mean(), change[ids != 1].mean()
    assert inside > 0.1 * np.abs(a).mean()  # the style matters
    assert inside > 3 * outside, (inside, outside)


def test_gradients_reach_every_weight_but_the_unused_blending_of_the_last_block(rng):
    import tensorflow as tf

    cfg = small(crop_size=32, load_size=32)
    network = build_sean_network(cfg)
    inputs = {"segmap": one_hot_segmap(rng, 2, 32, 32, 4),
              "image": rng.uniform(-1, 1, size=(2, 32, 32, 3)).astype("float32")}
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.abs(network(inputs, training=True)))
    grads = tape.gradient(loss, network.trainable_variables)
    missing = sorted(v.path for v, g in zip(network.trainable_variables, grads) if g is None)
    # Official use_rgb=False creates them too and never reads them.
    assert missing == sorted(f"up_3/norm_{n}/blending_{p}" for n in "01s" for p in ("gamma", "beta"))
    with_gradient = {id(v) for v, g in zip(network.trainable_variables, grads) if g is not None}
    assert {id(v) for v in network.get_layer("Zencoder").trainable_variables} <= with_gradient


def test_network_round_trips_through_keras_file(tmp_path, rng):
    network = build_sean_network(small(crop_size=32, load_size=32))
    inputs = {"segmap": one_hot_segmap(rng, 2, 32, 32, 4),
              "image": rng.uniform(-1, 1, size=(2, 32, 32, 3)).astype("float32")}
    network(inputs, training=True)  # moves batch-norm statistics and u, v
    for layer in network._flatten_layers():  # a noise that shows
        if isinstance(layer, ACE):
            layer.noise_var.assign(np.full(layer.channels, 0.1, "float32"))
    assert set_noise(network, False) == 18
    loaded = keras_round_trip(network, tmp_path)
    assert not any(layer.use_noise for layer in loaded._flatten_layers() if isinstance(layer, ACE))
    np.testing.assert_allclose(to_numpy(loaded(inputs)), to_numpy(network(inputs)), atol=1e-5)
    assert n_trainable(loaded) == n_trainable(network)


# On JAX: tests/test_backends.py runs a saved SEAN network there.


def test_seeded_noise_is_reproducible_per_seed_and_off_for_negative_seeds(rng):
    import tensorflow as tf

    from spade_tf.layers import seeded_noise

    generator = build_generator(small(crop_size=32, load_size=32))
    for layer in generator._flatten_layers():  # a noise that shows
        if isinstance(layer, ACE):
            layer.noise_var.assign(np.full(layer.channels, 0.05, "float32"))
    inputs = {"segmap": one_hot_segmap(rng, 2, 32, 32, 4), "style_codes": np.zeros((2, 4, 8), "float32")}

    def run(seed):
        with seeded_noise(seed):
            return to_numpy(generator(inputs))

    traced = tf.function(lambda seed: run_graph(seed))

    def run_graph(seed):
        with seeded_noise(seed):
            return generator(inputs)

    np.testing.assert_array_equal(run(3), run(3))
    assert np.abs(run(3) - run(4)).mean() > 1e-3
    np.testing.assert_allclose(to_numpy(traced(tf.constant(3))), run(3), atol=1e-6)  # graph == eager
    set_noise(generator, False)
    quiet = to_numpy(generator(inputs))
    set_noise(generator, True)
    np.testing.assert_array_equal(run(-1), quiet)
    np.testing.assert_allclose(to_numpy(traced(tf.constant(-5))), quiet, atol=1e-6)
    assert np.abs(run(3) - quiet).mean() > 1e-3
