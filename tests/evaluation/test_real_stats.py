"""--real_stats: the real images' statistics written on the first run, reused after, refused when
computed another way."""

import os

import numpy as np
import pytest
from stand_ins import ColourFeatures

from spade_tf.config import get_preset
from spade_tf.evaluation import EvalOptions, evaluate, feature_statistics
from spade_tf.evaluation.real_stats import load_real_stats


class Painter:
    """A synthesizer painting the label into red."""

    def __init__(self, config):
        self.config = config

    def __call__(self, label, instance=None, seed=0):
        image = np.zeros((*label.shape, 3), np.uint8)
        image[..., 0] = label * 40
        image[..., 2] = 60 + seed
        return image


def run(tmp_path, features, stats, out="eval", **options):
    config = get_preset("synthetic")
    opts = EvalOptions(model=str(tmp_path / "model"), out=str(tmp_path / out), dataset_mode="synthetic",
                       max_images=12, batch_size=5, kid_subsets=4, real_stats=stats, grid_images=0,
                       verbose=False, **options)
    return evaluate(opts, synthesizer=Painter(config), inception=features)


def test_written_once_then_reused_with_the_same_scores(tmp_path):
    stats = str(tmp_path / "stats" / "synthetic_val.npz")
    first_features = ColourFeatures()
    first = run(tmp_path, first_features, stats)
    assert os.path.isfile(stats) and first["real_stats"]["count"] == 12
    # The file holds the statistics of the real images the first run saw (every other batch).
    real = np.concatenate([first_features(b) for b in first_features.images[1::2]])
    saved = load_real_stats(stats, network="standard", weights=first_features.weights, image_size=(64, 64))
    mu, sigma = feature_statistics(real)
    np.testing.assert_allclose(saved.mu, mu, rtol=1e-12)
    np.testing.assert_allclose(saved.sigma, sigma, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(saved.features, real, rtol=1e-6)
    assert saved.count == 12 and saved.network == "standard" and saved.weights.startswith("pt_inception")

    again_features = ColourFeatures()
    again = run(tmp_path, again_features, stats, out="eval2")
    assert sum(len(b) for b in again_features.images) == 12  # only the generated images
    assert again["fid"] == pytest.approx(first["fid"], rel=1e-6)  # features stored as float32
    assert again["kid_mean"] == pytest.approx(first["kid_mean"], rel=1e-6)
    assert again["fid_network"] == "standard" and again["comparable_with_papers"] is True


def test_a_file_from_another_network_weights_or_size_is_refused(tmp_path):
    stats = str(tmp_path / "stats.npz")
    run(tmp_path, ColourFeatures(), stats)
    with pytest.raises(ValueError, match=r"stats.npz was computed with another setting: network 'standard' "
                                         r"\(this run: 'keras'\)"):
        run(tmp_path, ColourFeatures(network="keras", weights="/m/inception_notop.h5"), stats)
    with pytest.raises(ValueError, match=r"weights 'pt_inception-2015-12-05-6726825d.pth' \(this run: 'other.pth'\)"):
        run(tmp_path, ColourFeatures(weights="/m/other.pth"), stats)
    with pytest.raises(ValueError, match=r"image_size \(64, 64\) \(this run: \(32, 32\)\)"):
        load_real_stats(stats, network="standard", weights="pt_inception-2015-12-05-6726825d.pth",
                        image_size=(32, 32))
    # Randomly initialised weights: never written, never reused.
    with pytest.raises(ValueError, match="randomly initialised"):
        run(tmp_path, ColourFeatures(weights=None, real=False), str(tmp_path / "random.npz"))
    assert not os.path.exists(tmp_path / "random.npz")
    # Not a stats file: named, with what it lacks.
    np.savez(tmp_path / "pytorch_fid.npz", mu=np.zeros(3), sigma=np.eye(3))
    with pytest.raises(ValueError, match="pytorch_fid.npz lacks count, network, weights, image_size"):
        run(tmp_path, ColourFeatures(), str(tmp_path / "pytorch_fid.npz"))
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(ValueError, match="broken.npz could not be read"):
        run(tmp_path, ColourFeatures(), str(tmp_path / "broken.npz"))


def test_without_stored_features_fid_comes_from_mu_and_sigma_and_kid_is_left_out(tmp_path, monkeypatch):
    from spade_tf.evaluation import real_stats

    stats = str(tmp_path / "stats.npz")
    first = run(tmp_path, ColourFeatures(), stats)
    monkeypatch.setattr(real_stats, "MAX_STORED_FEATURES", 5)
    run(tmp_path, ColourFeatures(), str(tmp_path / "big.npz"), out="big")
    with np.load(tmp_path / "big.npz") as data:
        assert "features" not in data.files
    report = run(tmp_path, ColourFeatures(), str(tmp_path / "big.npz"), out="again")
    assert report["fid"] == pytest.approx(first["fid"], rel=1e-6)
    assert report["kid_mean"] is None and any("KID is not computed" in w for w in report["warnings"])
