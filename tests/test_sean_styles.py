"""SEAN style helpers: mean style codes (checked in NumPy), style photos read as the pipeline reads them."""

import keras
import numpy as np
import pytest
from PIL import Image

from spade_tf import build_sean_encoder, get_preset
from spade_tf.data.layouts import DataError
from spade_tf.sean_styles import class_channel, mean_style_codes, read_style_pair, with_mean


def small(**overrides):
    return get_preset("custom", **{"label_nc": 4, "crop_size": 32, "load_size": 32, "ngf": 4, "style_dim": 8,
                                   "norm_mode": "sean", **overrides})


@pytest.fixture(scope="module")
def encoder():
    keras.utils.set_random_seed(7)
    return build_sean_encoder(small())


def test_mean_style_codes_are_means_over_images_where_the_class_is_present(encoder):
    rng = np.random.default_rng(0)
    batches = []
    for _ in range(2):
        ids = np.where(rng.uniform(size=(3, 32, 32)) < 0.5, 0, 1)
        ids[0, 8:16, 8:16] = 2  # class 2 in one image of each batch
        ids[2, 1::2, 1::2] = 2  # ... and on odd pixels only: gone at the codes' H/2 (PyTorch nearest: x[::2])
        batches.append({"image": rng.uniform(-1, 1, (3, 32, 32, 3)).astype("float32"),
                        "segmap": np.eye(4, dtype="float32")[ids]})  # class 3: never
    codes, counts = mean_style_codes(encoder, batches, small())

    all_codes = np.concatenate([keras.ops.convert_to_numpy(encoder(b)) for b in batches])
    present = np.concatenate([b["segmap"][:, ::2, ::2].any(axis=(1, 2)) for b in batches])
    expected = np.stack([all_codes[present[:, c], c].mean(0) if present[:, c].any() else np.zeros(8)
                         for c in range(4)])
    np.testing.assert_array_equal(counts, [6, 6, 2, 0])
    np.testing.assert_array_equal(counts, present.sum(0))
    assert codes.shape == (4, 8) and codes.dtype == np.float32
    np.testing.assert_allclose(codes, expected, atol=1e-6)
    # Not the mean over all images (absent ones have zero codes): class 2's is 3x that.
    np.testing.assert_allclose(codes[2], 3 * all_codes[:, 2].mean(0), atol=1e-6)
    assert np.abs(codes[2]).max() > 1e-3 and not codes[3].any()


def test_with_mean_and_class_channels():
    mean = np.arange(6, dtype=np.float32).reshape(3, 2)
    codes = -np.ones((1, 3, 2), np.float32)
    np.testing.assert_array_equal(with_mean(codes, [[True, False, True]], mean), [[[-1, -1], [2, 3], [-1, -1]]])
    cfg = small(contain_dontcare_label=True)
    assert class_channel(255, cfg) == 4 and class_channel(3, cfg) == 3
    with pytest.raises(DataError, match="class id 7 is out of range"):
        class_channel(7, cfg)


def test_style_pairs_are_resized_and_cropped_as_the_pipeline_and_checked(tmp_path):
    cfg = small(load_size=40)  # resize to 40x40, centre crop 32x32
    rng = np.random.default_rng(1)
    ids = np.zeros((80, 60), np.uint8)
    ids[:, 30:] = 3
    photo = rng.integers(0, 255, (80, 60, 3), dtype=np.uint8)
    Image.fromarray(photo).save(tmp_path / "photo.jpg")
    Image.fromarray(ids).save(tmp_path / "label.png")
    image, label = read_style_pair(str(tmp_path / "photo.jpg"), str(tmp_path / "label.png"), cfg)
    assert image.shape == (32, 32, 3) and image.dtype == np.uint8 and label.shape == (32, 32)
    expected = np.asarray(Image.fromarray(ids).resize((40, 40), Image.NEAREST))[4:36, 4:36]
    np.testing.assert_array_equal(label, expected)

    # preprocess_mode "none" (data at the model's size, as the synthetic scenes): resized as "fixed".
    _, label = read_style_pair(str(tmp_path / "photo.jpg"), str(tmp_path / "label.png"),
                               small(preprocess_mode="none"))
    np.testing.assert_array_equal(label, np.asarray(Image.fromarray(ids).resize((32, 32), Image.NEAREST)))

    Image.fromarray(ids[:40]).save(tmp_path / "small.png")
    with pytest.raises(DataError, match=r"small.png is 60x40 but its photo .*photo.jpg is 60x80"):
        read_style_pair(str(tmp_path / "photo.jpg"), str(tmp_path / "small.png"), cfg)
    with pytest.raises(DataError, match="Style photo .*missing.jpg does not exist"):
        read_style_pair(str(tmp_path / "missing.jpg"), str(tmp_path / "label.png"), cfg)
    Image.fromarray(photo).save(tmp_path / "colour.png")
    with pytest.raises(DataError, match="colour.png has mode RGB"):
        read_style_pair(str(tmp_path / "photo.jpg"), str(tmp_path / "colour.png"), cfg)
    Image.fromarray(ids + 4).save(tmp_path / "bad.png")
    with pytest.raises(DataError, match=r"ids \[4, 7\] out of range"):
        read_style_pair(str(tmp_path / "photo.jpg"), str(tmp_path / "bad.png"), cfg)
