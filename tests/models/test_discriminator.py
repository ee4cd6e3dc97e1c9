import keras
import numpy as np
import pytest
from helpers import (
    assert_sgd_step_follows_the_gradient,
    keras_round_trip,
    layer_config_round_trip,
    n_trainable,
    one_hot_segmap,
    to_numpy,
)

from spade_tf import build_discriminator, get_preset
from spade_tf.models import AvgPoolExcludePad, NLayerDiscriminator


@pytest.mark.slow  # builds the full-size ADE20K network
def test_ade20k_parameter_count_equals_official():
    assert n_trainable(build_discriminator(get_preset("ade20k"))) == 5_836_930


def test_feature_shapes_follow_pytorch_padding(rng):
    cfg = get_preset("coco", ndf=4, crop_size=64)
    model = build_discriminator(cfg)
    seg = one_hot_segmap(rng, 2, 64, 64, cfg.semantic_nc)
    image = rng.uniform(-1, 1, size=(2, 64, 64, 3)).astype("float32")
    out = model({"segmap": seg, "image": image})
    assert len(out) == 2 and all(len(scale) == 5 for scale in out)
    # 4x4, padding 2: stride 2 gives H // 2 + 1, stride 1 gives H + 1.
    assert [tuple(f.shape) for f in out[0]] == [
        (2, 33, 33, 4), (2, 17, 17, 8), (2, 9, 9, 16), (2, 10, 10, 32), (2, 11, 11, 1)]
    assert [tuple(f.shape)[1] for f in out[1]] == [17, 9, 5, 6, 7]  # input pooled to 32


def test_layer_structure_matches_official():
    d = NLayerDiscriminator(ndf=64, n_layers=4)
    d.build((None, 32, 32, 154))
    assert d.convs[0].use_bias and not d.convs[0].spectral_norm and d.norms[0] is None
    for conv, norm in zip(d.convs[1:4], d.norms[1:4]):
        assert conv.spectral_norm and not conv.use_bias and norm is not None
    assert d.convs[4].use_bias and not d.convs[4].spectral_norm and d.convs[4].filters == 1
    assert [c.strides for c in d.convs] == [2, 2, 2, 1, 1]
    assert [c.filters for c in d.convs] == [64, 128, 256, 512, 1]


def test_avg_pool_excludes_padding_like_pytorch(rng):
    x = rng.normal(size=(2, 7, 6, 3)).astype("float32")
    y = to_numpy(AvgPoolExcludePad()(x))
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    ones = np.pad(np.ones((7, 6)), 1)
    expected = np.zeros((2, 4, 3, 3))
    for i in range(4):
        for j in range(3):
            window = padded[:, 2 * i:2 * i + 3, 2 * j:2 * j + 3]
            expected[:, i, j] = window.sum(axis=(1, 2)) / ones[2 * i:2 * i + 3, 2 * j:2 * j + 3].sum()
    np.testing.assert_allclose(y, expected, atol=1e-5)


def test_real_and_fake_in_one_batch_equal_separate_calls(rng):
    # Instance norm has no batch statistics, so concatenating real and fake
    # on the batch axis (as official) changes nothing per sample.
    cfg = get_preset("ade20k", ndf=4, crop_size=32, num_upsampling_layers="normal")
    model = build_discriminator(cfg)
    seg = one_hot_segmap(rng, 2, 32, 32, cfg.semantic_nc)
    image = rng.uniform(-1, 1, size=(2, 32, 32, 3)).astype("float32")
    both = model({"segmap": np.concatenate([seg, seg]), "image": np.concatenate([image, -image])})
    single = model({"segmap": seg, "image": -image})
    np.testing.assert_allclose(to_numpy(both[1][-1])[2:], to_numpy(single[1][-1]), atol=1e-5)


def test_discriminator_round_trip(tmp_path, rng):
    layer_config_round_trip(NLayerDiscriminator(8, 3, spectral_norm=False))
    cfg = get_preset("cityscapes", ndf=4, crop_size=128, num_D=3, n_layers_D=3)
    model = build_discriminator(cfg)
    seg = one_hot_segmap(rng, 1, 64, 128, cfg.semantic_nc)
    inputs = {"segmap": seg, "image": rng.uniform(-1, 1, size=(1, 64, 128, 3)).astype("float32")}
    model(inputs, training=True)
    loaded = keras_round_trip(model, tmp_path)
    out, ref = loaded(inputs), model(inputs)
    assert len(out) == 3 and all(len(s) == 4 for s in out)
    for a, b in zip(out, ref):
        for x, y in zip(a, b):
            np.testing.assert_allclose(to_numpy(x), to_numpy(y), atol=1e-5)


def test_one_sgd_fit_step_follows_the_gradient_and_lowers_the_loss(rng):
    # Through the spectral-normalized convs: u, v are put back before each
    # pass, so the fit step must equal -lr * (gradient through sigma).
    cfg = get_preset("coco", ndf=4, crop_size=32, num_D=1, num_upsampling_layers="normal")
    model = build_discriminator(cfg)
    logits = keras.Model(model.input, model.output[0][-1])
    seg = one_hot_segmap(rng, 2, 32, 32, cfg.semantic_nc)
    image = rng.uniform(-1, 1, size=(2, 32, 32, 3)).astype("float32")
    target = np.ones((2, 7, 7, 1), "float32")  # 32 -> 17 -> 9 -> 5 -> 6 -> 7

    def mse(y, pred):
        return keras.ops.mean(keras.ops.square(y - pred))

    assert_sgd_step_follows_the_gradient(logits, {"segmap": seg, "image": image}, target, "mse", mse)


def test_sean_discriminator_is_official_seans():
    """ZPdesu/SEAN's NLayerDiscriminator: n_layers_D 3 by default, stride 2 in every middle conv."""
    from spade_tf.config import get_preset

    config = get_preset("custom", label_nc=4, use_instance_map=False, crop_size=64, load_size=64, ndf=8,
                        norm_mode="sean")
    assert config.n_layers_D == 3
    assert get_preset("custom", norm_mode="sean", n_layers_D=4).n_layers_D == 4  # an override wins
    assert get_preset("custom").n_layers_D == 4
    scales = build_discriminator(config)(
        {"segmap": np.zeros((1, 64, 64, 4), np.float32), "image": np.zeros((1, 64, 64, 3), np.float32)})
    # 64 -> 33 (stride 2, padding 2) -> 17 -> 9 -> 10 (stride 1): SPADE's last middle conv would keep 17.
    assert [tuple(f.shape[1:3]) for f in scales[0]] == [(33, 33), (17, 17), (9, 9), (10, 10)]
    spade = build_discriminator(config.replace(norm_mode="spade"))(
        {"segmap": np.zeros((1, 64, 64, 4), np.float32), "image": np.zeros((1, 64, 64, 3), np.float32)})
    assert [tuple(f.shape[1:3]) for f in spade[0]] == [(33, 33), (17, 17), (18, 18), (19, 19)]
