"""Real-image statistics files: FID's (mu, sigma) of the real images, computed once.

``--real_stats=<file.npz>`` is written on the first evaluation and reused after
(pytorch-fid's ``--save-stats``, CLADE's precomputed ``train_mu_si``): later
runs skip the real images' Inception pass. The file says which feature
network and weights and which image size it was computed with; a run with
another is refused, since its FID would compare features of different
networks or resolutions.

Keys: ``mu`` [D] and ``sigma`` [D, D] float64 (pytorch-fid's names, so its
``.npz`` readers take the file), ``count``, ``network``, ``weights`` (file
name), ``image_size`` [H, W], ``source`` (the images' directory), and while
``count <= MAX_STORED_FEATURES`` the ``features`` [N, D] float32 themselves,
which KID needs (without them KID is not computed).
"""

from __future__ import annotations

import dataclasses
import io
import os

import numpy as np

from spade_tf.evaluation.metrics import feature_statistics
from spade_tf.utils.files import atomic_write

MAX_STORED_FEATURES = 10_000  # 80 MB of float32 2048-d features


@dataclasses.dataclass(frozen=True)
class RealStats:
    mu: np.ndarray
    sigma: np.ndarray
    count: int
    network: str
    weights: str
    image_size: tuple[int, int]
    source: str = ""
    features: np.ndarray | None = None


def weights_name(weights: str | None) -> str:
    """How a stats file names the feature network's weights (the file's name, not its directory)."""
    return "random" if not weights else os.path.basename(str(weights))


def make_real_stats(features, *, network: str, weights: str | None, image_size, source: str = "") -> RealStats:
    features = np.asarray(features)
    mu, sigma = feature_statistics(features)
    kept = features.astype(np.float32) if len(features) <= MAX_STORED_FEATURES else None
    return RealStats(mu, sigma, len(features), network, weights_name(weights),
                     tuple(int(v) for v in image_size), source, kept)


def save_real_stats(path: str, stats: RealStats) -> None:
    """Writes ``stats`` to ``path`` (.npz) through a temporary file and a rename."""
    arrays = dict(mu=stats.mu, sigma=stats.sigma, count=np.int64(stats.count), network=np.str_(stats.network),
                  weights=np.str_(stats.weights), image_size=np.asarray(stats.image_size, np.int64),
                  source=np.str_(stats.source))
    if stats.features is not None:
        arrays["features"] = stats.features
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    atomic_write(path, buffer.getvalue())


def load_real_stats(path: str, *, network: str, weights: str | None, image_size) -> RealStats:
    """Reads ``path`` and checks that it was computed as this run would compute it.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a stats file (naming what is missing), or computed
            with another network, other weights or another image size.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Real statistics file {path} does not exist.")
    try:
        with np.load(path, allow_pickle=False) as data:
            values = {k: data[k] for k in data.files}
    except Exception as e:  # zipfile / numpy raise several types for a damaged file
        raise ValueError(f"Real statistics file {path} could not be read ({type(e).__name__}: {e}).") from e
    missing = [k for k in ("mu", "sigma", "count", "network", "weights", "image_size") if k not in values]
    if missing:
        raise ValueError(f"Real statistics file {path} lacks {', '.join(missing)}: it was not written by "
                         "spade-tf's evaluate.py --real_stats (pytorch-fid's files have only mu and sigma).")
    stats = RealStats(
        mu=values["mu"], sigma=values["sigma"], count=int(values["count"]), network=str(values["network"]),
        weights=str(values["weights"]), image_size=tuple(int(v) for v in values["image_size"]),
        source=str(values.get("source", "")), features=values.get("features"),
    )
    expected = dict(network=network, weights=weights_name(weights), image_size=tuple(int(v) for v in image_size))
    if stats.weights == "random" or expected["weights"] == "random":
        raise ValueError(f"Real statistics file {path}: features of randomly initialised Inception weights differ "
                         "from one run to the next, so their statistics cannot be reused; pass "
                         "--inception_weights.")
    wrong = [f"{k} {getattr(stats, k)!r} (this run: {v!r})" for k, v in expected.items() if getattr(stats, k) != v]
    if wrong:
        raise ValueError(f"Real statistics file {path} was computed with another setting: {'; '.join(wrong)}. "
                         "Pass another --real_stats path to compute new statistics.")
    if stats.mu.shape != (stats.sigma.shape[0],) or stats.sigma.shape != (len(stats.mu), len(stats.mu)):
        raise ValueError(f"Real statistics file {path}: mu {stats.mu.shape} and sigma {stats.sigma.shape} "
                         "do not match.")
    return stats
