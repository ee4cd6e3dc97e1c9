import json

import keras
import numpy as np
import pytest
from helpers import assert_sgd_step_follows_the_gradient, keras_round_trip, n_trainable, one_hot_segmap, to_numpy

from spade_tf import build_generator, fold_spectral_norm, get_preset


def small(**overrides):
    return get_preset("coco", **{"ngf": 4, "crop_size": 64, "spade_hidden": 8, **overrides})


@pytest.mark.slow  # builds the full-size ADE20K network
@pytest.mark.parametrize("norm_mode, official", [
    ("spade", 96_492_483),  # NVlabs/SPADE
    ("clade", 71_427_267),  # tzt101/CLADE --norm_mode clade
])
def test_ade20k_parameter_count_equals_official(norm_mode, official):
    model = build_generator(get_preset("ade20k", norm_mode=norm_mode))
    assert n_trainable(model) == official


def test_clade_parameter_count_formula_small_config():
    # COCO (instance edges: each block's convs take one more channel; 1x1 edge
    # conv per norm) with ICPE (two 1x1 convs 2 -> 1 per norm); by hand.
    cfg = small(norm_mode="clade", use_positional_encoding=True)
    nf, s, k = 4, cfg.semantic_nc, cfg.label_nc + 1  # lookup rows: classes + don't care

    def clade(c):
        return 2 * k * c + 2 + 2 * 3  # gamma/beta tables, inst_conv, dist_conv_w/b

    def block(fin, fout):
        fm = min(fin, fout)
        n = clade(fin) + clade(fm) + (9 * (fin + 1) * fm + fm) + (9 * (fm + 1) * fout + fout)
        return n + (clade(fin) + (fin + 1) * fout if fin != fout else 0)

    expected = 9 * s * 16 * nf + 16 * nf  # fc reads the whole segmap, edges included
    expected += 3 * block(16 * nf, 16 * nf)
    expected += block(16 * nf, 8 * nf) + block(8 * nf, 4 * nf) + block(4 * nf, 2 * nf) + block(2 * nf, nf)
    expected += 9 * nf * 3 + 3  # conv_img
    generator = build_generator(cfg)
    assert n_trainable(generator) == expected
    assert sorted(generator.input.keys()) == ["positional", "segmap"]


def test_parameter_count_formula_small_config():
    # ngf=4, semantic_nc=184, hidden 8: count the official modules by hand.
    cfg = small()
    nf, s, h = 4, cfg.semantic_nc, 8

    def spade(c):
        return (9 * s * h + h) + 2 * (9 * h * c + c)

    def block(fin, fout):
        fm = min(fin, fout)
        n = spade(fin) + spade(fm) + (9 * fin * fm + fm) + (9 * fm * fout + fout)
        return n + (spade(fin) + fin * fout if fin != fout else 0)

    expected = 9 * s * 16 * nf + 16 * nf  # fc
    expected += 3 * block(16 * nf, 16 * nf)
    expected += block(16 * nf, 8 * nf) + block(8 * nf, 4 * nf) + block(4 * nf, 2 * nf) + block(2 * nf, nf)
    expected += 9 * nf * 3 + 3  # conv_img
    assert n_trainable(build_generator(cfg)) == expected


@pytest.mark.parametrize("mode, crop, aspect, size", [
    ("normal", 64, 1.0, (64, 64)),
    ("more", 128, 1.0, (128, 128)),
    ("most", 128, 1.0, (128, 128)),
    ("more", 128, 2.0, (64, 128)),
    ("normal", 64, 0.5, (128, 64)),
])
def test_output_shapes_for_upsampling_modes_and_aspect_ratios(rng, mode, crop, aspect, size):
    cfg = small(num_upsampling_layers=mode, crop_size=crop, aspect_ratio=aspect)
    assert cfg.image_size == size
    model = build_generator(cfg)
    seg = one_hot_segmap(rng, 2, *size, cfg.semantic_nc)
    image = model({"segmap": seg})
    assert tuple(image.shape) == (2, *size, 3)
    assert keras.backend.standardize_dtype(image.dtype) == "float32"
    image = to_numpy(image)
    # Two different label maps give two different images.
    assert np.abs(image[0] - image[1]).max() > 0.1 * np.abs(image).max() > 0
    names = [layer.name for layer in model.layers]
    assert ("up_4" in names) == (mode == "most")


def test_output_is_tanh_of_3x3_conv_of_leaky_relu_as_numpy(rng):
    # No spectral norm: in inference mode before any training step, sigma
    # comes from the initial random u, v (as in PyTorch's eval mode), is far
    # below the largest singular value, and activations grow by orders of
    # magnitude per block (~1e15 at the last one with batch norm).
    cfg = small(param_free_norm_G="instance", use_spectral_norm_G=False)
    model = build_generator(cfg)
    seg = one_hot_segmap(rng, 2, 64, 64, cfg.semantic_nc)
    features = to_numpy(keras.Model(model.input, model.get_layer("lrelu_img").input)({"segmap": seg}))
    conv = model.get_layer("conv_img")
    conv.bias.assign(np.array([0.5, -0.5, 0.1], "float32"))

    def numpy_output(kernel):
        x = np.where(features > 0, features, 0.2 * features)
        padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
        pre = sum(padded[:, i:i + 64, j:j + 64] @ kernel[i, j] for i in range(3) for j in range(3))
        return pre + to_numpy(conv.bias)

    # Scale the kernel so that the pre-activations spread over [-3, 3]: tanh
    # is then far from both the identity and a clip to [-1, 1].
    kernel = to_numpy(conv.kernel)
    kernel *= 1.5 / (numpy_output(kernel) - to_numpy(conv.bias)).std()
    conv.kernel.assign(kernel)
    pre = numpy_output(kernel)
    assert (np.abs(pre) > 2).mean() > 0.05 and (np.abs(pre) < 1).mean() > 0.2
    np.testing.assert_allclose(to_numpy(model({"segmap": seg})), np.tanh(pre), atol=1e-5)


def test_vae_generator_takes_a_latent(rng):
    cfg = small(use_vae=True)
    model = build_generator(cfg)
    assert sorted(model.input.keys()) == ["latent", "segmap"]
    seg = one_hot_segmap(rng, 3, 64, 64, cfg.semantic_nc)
    z1 = rng.normal(size=(3, 256)).astype("float32")
    out1 = to_numpy(model({"segmap": seg, "latent": z1}))
    out2 = to_numpy(model({"segmap": seg, "latent": -z1}))
    assert out1.shape == (3, 64, 64, 3)
    assert np.abs(out1 - out2).max() > 1e-4  # the latent matters
    assert tuple(model.get_layer("fc").kernel.shape) == (256, 16 * 4 * 2 * 2)


def test_layer_names_follow_official_state_dict():
    model = build_generator(small(num_upsampling_layers="most", crop_size=128))
    names = {layer.name for layer in model.layers}
    assert {"fc", "head_0", "G_middle_0", "G_middle_1", "up_0", "up_1", "up_2", "up_3", "up_4", "conv_img"} <= names
    paths = {v.path for v in model.variables}
    assert "head_0/norm_0/mlp_shared/kernel" in paths
    assert "up_0/conv_s/u" in paths and "up_0/conv_s/v" in paths
    assert "head_0/norm_0/param_free_norm/moving_mean" in paths


def test_inference_is_deterministic_and_batch_independent(rng):
    cfg = small()
    model = build_generator(cfg)
    seg = one_hot_segmap(rng, 2, 64, 64, cfg.semantic_nc)
    a = to_numpy(model({"segmap": seg}, training=False))
    b = to_numpy(model({"segmap": seg[1:]}, training=False))
    np.testing.assert_allclose(a[1:], b, atol=1e-5)


def test_generator_round_trips_through_keras_file(tmp_path, rng):
    cfg = small(use_vae=True)
    model = build_generator(cfg)
    seg = one_hot_segmap(rng, 2, 64, 64, cfg.semantic_nc)
    inputs = {"segmap": seg, "latent": rng.normal(size=(2, 256)).astype("float32")}
    model(inputs, training=True)  # moves batch-norm statistics and u, v
    loaded = keras_round_trip(model, tmp_path)
    np.testing.assert_allclose(to_numpy(loaded(inputs)), to_numpy(model(inputs)), atol=1e-5)
    # Same architecture (build shapes come back as lists instead of tuples).
    assert json.loads(json.dumps(loaded.get_config())) == json.loads(json.dumps(model.get_config()))


def test_fold_spectral_norm_keeps_inference_output(rng):
    cfg = small()
    model = build_generator(cfg)
    seg = one_hot_segmap(rng, 2, 64, 64, cfg.semantic_nc)
    for _ in range(2):
        model({"segmap": seg}, training=True)
    folded = fold_spectral_norm(model)
    assert not any(v.path.endswith(("/u", "/v")) for v in folded.variables)
    assert n_trainable(folded) == n_trainable(model)
    np.testing.assert_allclose(
        to_numpy(folded({"segmap": seg})), to_numpy(model({"segmap": seg})), atol=1e-5
    )


def test_one_sgd_fit_step_follows_the_gradient_and_lowers_the_loss(rng):
    # Without spectral norm: its power iteration moves u, v in the forward pass at the new
    # weights, a change the gradient (like PyTorch's) does not see, which on some draws of the
    # initial weights outweighs a small step's decrease.
    cfg = small(param_free_norm_G="batch", crop_size=32, use_spectral_norm_G=False)
    model = build_generator(cfg)
    seg = one_hot_segmap(rng, 2, 32, 32, cfg.semantic_nc)
    target = rng.uniform(-1, 1, size=(2, 32, 32, 3)).astype("float32")

    def mae(y, pred):
        return keras.ops.mean(keras.ops.abs(y - pred))

    # Only the direction of the loss change: with batch norm over two 1x1 maps the loss is
    # strongly curved.
    assert_sgd_step_follows_the_gradient(
        model, {"segmap": seg}, target, "mae", mae, decrease=1e-3, first_order=False)


def test_symbolic_call_gives_static_shape():
    cfg = small()
    model = build_generator(cfg)
    out = model({"segmap": keras.Input((64, 64, cfg.semantic_nc))})
    assert tuple(out.shape) == (None, 64, 64, 3)
