"""Every weight is drawn independently, as the official init_weights does."""

import keras
import numpy as np
import pytest

from spade_tf.config import get_preset
from spade_tf.layers import fresh_initializer, get_initializer
from spade_tf.models import build_discriminator, build_encoder, build_generator
from spade_tf.models.sean_encoder import build_sean_network


def kernels(*models):
    return {v.path: keras.ops.convert_to_numpy(v) for m in models for v in m.weights
            if v.path.endswith("kernel") or v.path.endswith("fc_mu_weight")}


@pytest.mark.parametrize("overrides", [dict(use_vae=True), dict(norm_mode="sean", style_dim=8)],
                         ids=["spade_vae", "sean"])
def test_no_two_weights_start_equal(overrides):
    config = get_preset("synthetic", ngf=8, ndf=8, crop_size=32, load_size=32, **overrides)
    models = [build_discriminator(config)]
    models += [build_generator(config), build_encoder(config)] if config.use_vae else [build_sean_network(config)]
    values = kernels(*models)
    # Pairs that share a shape (SPADE's mlp_gamma/mlp_beta, G_middle_0/1, fc_mu/fc_var, ...) are
    # many; with one shared unseeded initializer they all started identical.
    by_shape = {}
    for path, value in values.items():
        by_shape.setdefault(value.shape, []).append(path)
    pairs = [(a, b) for paths in by_shape.values() for i, a in enumerate(paths) for b in paths[i + 1:]]
    assert len(pairs) > 20
    equal = [(a, b) for a, b in pairs if np.array_equal(values[a], values[b])]
    assert not equal, equal[:5]
    # Still the official distribution: Xavier normal, gain 0.02.
    w = values["G_middle_0/conv_0/kernel"] if "G_middle_0/conv_0/kernel" in values else \
        values["generator/G_middle_0/conv_0/kernel"]
    fan_in, fan_out = 3 * 3 * w.shape[2], 3 * 3 * w.shape[3]
    assert np.std(w) == pytest.approx(0.02 * np.sqrt(2.0 / (fan_in + fan_out)), rel=0.05)


def test_fresh_initializer_keeps_seeded_ones_and_redraws_unseeded():
    unseeded = get_initializer()
    a, b = fresh_initializer(unseeded), fresh_initializer(unseeded)
    assert not np.array_equal(a((4, 4)), b((4, 4)))
    seeded = get_initializer(seed=3)
    assert fresh_initializer(seeded) is seeded
