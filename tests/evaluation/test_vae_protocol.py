"""VAE models are scored as the official test does (each real image's encoding), and the FID in
TensorBoard during training equals evaluate.py's on the same images."""

import os

import numpy as np
import pytest
from stand_ins import ColourFeatures
from summary_reader import read_scalars

from spade_tf.config import get_preset
from spade_tf.evaluation import EvalOptions, evaluate
from spade_tf.evaluation.styles import encoded_latent, style_noise
from spade_tf.training import TrainOptions, train


def test_encoded_latent_is_the_reparameterization_with_the_seeds_noise():
    rng = np.random.default_rng(0)
    mean, logvar = rng.normal(size=(3, 5)), rng.normal(size=(3, 5))
    eps = np.random.default_rng(42).standard_normal((3, 5))
    np.testing.assert_allclose(encoded_latent(mean, logvar, 42), mean + np.exp(logvar / 2) * eps, rtol=1e-6)
    np.testing.assert_array_equal(style_noise(42, 3, 5), eps.astype(np.float32))
    assert not np.allclose(style_noise(43, 3, 5), eps)


@pytest.mark.slow
def test_periodic_fid_equals_evaluate_fid_on_the_same_images(tmp_path, monkeypatch):
    # One deterministic feature network for the trainer and evaluate() (random Inception
    # weights give nearly constant features, and every FID would be ~0).
    from spade_tf.evaluation import periodic, run

    extractors = []  # each records the images it scores

    def feature_extractor(network, weights):
        extractors.append(ColourFeatures())
        return extractors[-1]

    for module in (periodic, run):
        monkeypatch.setattr(module, "build_feature_extractor", feature_extractor)
    workdir = str(tmp_path / "vae")
    config = get_preset("synthetic", crop_size=32, load_size=32, ngf=8, ndf=8, use_vae=True, z_dim=16,
                        use_vgg_loss=False, batch_size=2, num_D=1, n_layers_D=2,
                        init_variance=1.0)  # the official 0.02 leaves the images nearly independent of the latent
    train(config, TrainOptions(workdir=workdir, max_steps=2, checkpoint_every=2, log_every=1, sample_every=100,
                               eval_every=2, eval_images=6, verbose=False))
    [(step, periodic_fid)] = read_scalars(os.path.join(workdir, "logs"))["eval/fid"]
    assert step == 2

    def score(protocol):
        options = EvalOptions(model=workdir, out=str(tmp_path / protocol), max_images=6, batch_size=6,
                              kid_subsets=2, vae_protocol=protocol,
                              grid_images=0, verbose=False)
        return evaluate(options)

    encoded = score("encode")
    assert encoded["vae_protocol"] == "encode" and encoded["num_images"] == 6
    # The same images: the real ones exactly, the generated ones up to uint8 rounding (the
    # SavedModel's folded spectral-norm kernels round differently from the Keras model's: a
    # value one level off moves this FID by ~1e-5). The random protocol moves it by ~1%.
    real = extractors[0].images[0]  # the periodic evaluator reads the real images first
    periodic_fakes, encoded_fakes = ([i for i in e.images if not np.array_equal(i, real)] for e in extractors)
    assert len(periodic_fakes) == len(encoded_fakes) == 1  # evaluate() scored the same real images
    levels = np.abs(periodic_fakes[0].astype(int) - encoded_fakes[0].astype(int))
    assert levels.max() <= 1 and np.mean(levels > 0) < 1e-3
    assert encoded["fid"] > 1e-3
    assert encoded["fid"] == pytest.approx(periodic_fid, rel=1e-4)
    random = score("random")
    assert random["vae_protocol"] == "random"
    assert abs(random["fid"] - encoded["fid"]) > 1e-3 * encoded["fid"]  # another style per image
