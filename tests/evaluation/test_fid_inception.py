"""The Keras FID Inception against pytorch-fid's own InceptionV3 (same random weights)."""

import logging
import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from spade_tf.evaluation import build_fid_inception
from spade_tf.evaluation import fid_inception as fi

HERE = os.path.dirname(os.path.abspath(__file__))
# Smaller than 299 (upsampled) and larger (downsampled, where antialiasing would show).
SIZES = {"small": (64, 96), "large": (320, 360)}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """pytorch-fid's features of seeded images, with a seeded random state dict (.pth).

    In a subprocess: torchvision (which pytorch-fid imports) must not be
    imported after TensorFlow (see fid_torch_reference.py).
    """
    out = tmp_path_factory.mktemp("fid_reference")
    rng = np.random.default_rng(0)
    images = {k: rng.integers(0, 256, size=(2, h, w, 3)).astype(np.float32) for k, (h, w) in SIZES.items()}
    np.savez(out / "images.npz", **images)
    result = subprocess.run(
        [sys.executable, os.path.join(HERE, "fid_torch_reference.py"), str(out)],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    with np.load(out / "features.npz") as f:
        features = {k: f[k] for k in f.files}
    return {"images": images, "features": features, "pth": str(out / "fid_inception.pth")}


@pytest.fixture(scope="module")
def fid_model(reference):
    """Our model, random at first, then given the reference's state dict as torch tensors."""
    model = build_fid_inception(None)
    fi.load_fid_inception_weights(model, torch.load(reference["pth"], map_location="cpu", weights_only=True))
    return model


@pytest.mark.parametrize("size", list(SIZES))
def test_features_match_pytorch_fid(fid_model, reference, size):
    images, ref = reference["images"][size], reference["features"][size]
    # A meaningful reference: nonzero features that tell the two images apart.
    assert ref.shape == (2, fi.FEATURE_DIM) and np.linalg.norm(ref) > 1.0
    assert np.linalg.norm(ref[0] - ref[1]) > 1e-3 * np.linalg.norm(ref[0])

    features = fid_model(images)  # no `training` argument: must be inference
    assert tuple(features.shape) == (2, fi.FEATURE_DIM)
    assert keras.backend.standardize_dtype(features.dtype) == "float32"
    features = keras.ops.convert_to_numpy(features)
    relative = np.linalg.norm(features - ref) / np.linalg.norm(ref)
    assert relative < 1e-4, relative  # measured ~3e-7 (wrong resize/pool/padding: 4e-2 .. 9e-2)
    np.testing.assert_allclose(features, ref, rtol=1e-4, atol=1e-5)
    # Frozen: the call did not move BatchNorm's statistics.
    state = torch.load(reference["pth"], map_location="cpu", weights_only=True)
    for key in ("Conv2d_1a_3x3", "Mixed_7c.branch_pool"):
        bn = fid_model.get_layer(fi.keras_layer_name(f"{key}.bn"))
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(bn.moving_mean), state[f"{key}.bn.running_mean"])
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(bn.moving_variance), state[f"{key}.bn.running_var"])


@pytest.mark.parametrize("shape", [(64, 96), (320, 360), (600, 301), (7, 500), (1, 1), (299, 299)])
def test_preprocess_is_pytorch_fids_resize_and_scaling(rng, shape):
    images = rng.integers(0, 256, size=(2, *shape, 3)).astype(np.float32)
    ours = keras.ops.convert_to_numpy(fi.FIDPreprocess()(images))
    x = torch.from_numpy(images.transpose(0, 3, 1, 2) / 255.0).float()
    theirs = 2 * F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False) - 1
    assert ours.shape == (2, 299, 299, 3)
    # Not bit-exact: the source coordinate (dst + 0.5) * in / out - 0.5 rounds
    # differently in float32 (~ulp(300) = 3e-5 px); measured <= 3e-5 here, i.e.
    # 0.004 grey levels. Antialiasing or align_corners=True would be ~0.1-1.
    np.testing.assert_allclose(ours, theirs.numpy().transpose(0, 2, 3, 1), atol=1e-4, rtol=0)


def test_avg_pool_does_not_count_the_padding(rng):
    x = rng.normal(size=(2, 5, 7, 3)).astype(np.float32)
    ours = keras.ops.convert_to_numpy(fi.AvgPool3x3ExcludePad()(x))
    theirs = F.avg_pool2d(torch.from_numpy(x.transpose(0, 3, 1, 2)), 3, 1, 1, count_include_pad=False)
    np.testing.assert_allclose(ours, theirs.numpy().transpose(0, 2, 3, 1), atol=1e-6)
    np.testing.assert_allclose(ours[:, 0, 0], x[:, :2, :2].mean(axis=(1, 2)), atol=1e-6)  # corner: 4 pixels


def test_pth_path_loads_the_same_weights(fid_model, reference):
    model = build_fid_inception(reference["pth"])
    assert model.trainable is False
    for a, b in zip(model.weights, fid_model.weights, strict=True):
        assert a.path == b.path
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))
    # The name map and OIHW -> HWIO, spelled out for one (1, 7) convolution.
    weight = torch.load(reference["pth"], map_location="cpu", weights_only=True)["Mixed_6b.branch7x7_2.conv.weight"]
    assert tuple(weight.shape) == (128, 128, 1, 7)
    kernel = keras.ops.convert_to_numpy(model.get_layer("Mixed_6b__branch7x7_2__conv").kernel)
    np.testing.assert_array_equal(kernel, weight.numpy().transpose(2, 3, 1, 0))


def test_missing_and_corrupt_pth_are_named(tmp_path):
    missing = str(tmp_path / "nope" / fi.FID_WEIGHTS_FILE)
    with pytest.raises(FileNotFoundError, match=re.escape(missing)):
        build_fid_inception(missing)
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match=re.escape(str(corrupt))):
        build_fid_inception(str(corrupt))
    not_a_state_dict = tmp_path / "list.pth"
    torch.save([torch.zeros(3)], not_a_state_dict)
    with pytest.raises(ValueError, match=re.escape(str(not_a_state_dict)) + ".*not a state dict"):
        build_fid_inception(str(not_a_state_dict))


def test_bad_state_dicts_are_refused_and_leave_the_model_unchanged(fid_model, reference):
    good = fi.read_fid_inception_state_dict(reference["pth"])
    before = [keras.ops.convert_to_numpy(w).copy() for w in fid_model.weights]

    missing = {k: 2 * v for k, v in good.items() if k != "Mixed_7c.branch_pool.bn.running_var"}
    with pytest.raises(ValueError, match=re.escape("missing key 'Mixed_7c.branch_pool.bn.running_var'")):
        fi.load_fid_inception_weights(fid_model, missing, source="my.pth")

    wrong_shape = {k: 2 * v for k, v in good.items()}
    wrong_shape["Mixed_7c.branch_pool.conv.weight"] = good["Mixed_7c.branch_pool.conv.weight"][:, :-1]
    message = r"my\.pth: 'Mixed_7c\.branch_pool\.conv\.weight' has shape \(192, 2047, 1, 1\)"
    with pytest.raises(ValueError, match=message):
        fi.load_fid_inception_weights(fid_model, wrong_shape, source="my.pth")

    torchvision_like = {**good, "AuxLogits.conv0.conv.weight": np.zeros((128, 768, 1, 1), np.float32)}
    with pytest.raises(ValueError, match="AuxLogits"):
        fi.load_fid_inception_weights(fid_model, torchvision_like)

    for w, b in zip(fid_model.weights, before, strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(w), b)


def test_random_weights_warn_that_fid_is_not_comparable(monkeypatch, caplog):
    def tiny_model():  # the warning, not the network, is under test
        inputs = keras.Input((None, None, 3))
        return keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(inputs))

    monkeypatch.setattr(fi, "_build_model", tiny_model)
    with caplog.at_level(logging.WARNING):
        model = build_fid_inception()
    assert "NOT comparable to published numbers" in caplog.text and fi.FID_WEIGHTS_FILE in caplog.text
    assert model.trainable is False


def test_feature_extractor_takes_uint8_images_of_any_size_and_is_chosen_by_the_pth(reference):
    from spade_tf.evaluation.inception import StandardInceptionFeatures, build_feature_extractor

    features = build_feature_extractor("auto", reference["pth"])  # a .pth: the standard network
    assert isinstance(features, StandardInceptionFeatures) and features.network == "standard"
    assert features.real_weights and features.weights == os.path.abspath(reference["pth"])
    for size, images in reference["images"].items():
        got = features(images.astype(np.uint8))  # the images are whole values in 0..255
        ref = reference["features"][size]
        assert got.dtype == np.float64 and got.shape == ref.shape
        assert np.linalg.norm(got - ref) / np.linalg.norm(ref) < 1e-4, size
    with pytest.raises(ValueError, match="--fid_network=standard"):
        build_feature_extractor("keras", reference["pth"])
    with pytest.raises(ValueError, match="takes pytorch-fid's .pth weights"):
        build_feature_extractor("standard", "inception_notop.h5")
    with pytest.raises(ValueError, match="fid_network='inception'"):
        build_feature_extractor("inception", None)


def test_evaluate_reports_the_standard_network_as_comparable_with_the_papers(reference, tmp_path):
    from spade_tf.config import get_preset
    from spade_tf.evaluation import EvalOptions, evaluate

    class Gray:
        config = get_preset("synthetic")

        def __call__(self, label, instance=None, seed=0):
            return np.repeat((label[..., None] * 30).astype(np.uint8), 3, axis=-1)

    options = EvalOptions(model=str(tmp_path), out=str(tmp_path / "eval"), dataset_mode="synthetic",
                          max_images=3, kid_subsets=2, grid_images=0, inception_weights=reference["pth"],
                          verbose=False)
    report = evaluate(options, synthesizer=Gray())
    assert report["fid_network"] == "standard" and report["comparable_with_papers"] is True
    assert report["inception_weights"] == os.path.abspath(reference["pth"]) and report["fid"] > 0
    assert not any("not with the papers' tables" in w for w in report["warnings"])
