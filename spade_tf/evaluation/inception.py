"""InceptionV3 pool features for FID and KID."""

from __future__ import annotations

import logging
import os

import keras
import numpy as np
import tensorflow as tf

from spade_tf.config import FID_NETWORKS

INPUT_SIZE = 299
FEATURE_DIM = 2048
# The feature networks (FID_NETWORKS; report.json's "fid_network"): "standard"
# is the papers' FID network (TTUR's 2015 TensorFlow Inception graph, as
# pytorch-fid ports it; ``fid_inception.py``), "keras" Keras' InceptionV3.
KERAS_NOTOP_FILE = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
RANDOM_WEIGHTS_WARNING = (
    "InceptionV3 has RANDOM weights (no --inception_weights): FID/KID from random InceptionV3 "
    "weights are NOT comparable to published numbers, and barely informative (random features hardly "
    "tell images apart); pass --inception_weights=<notop .h5> or 'imagenet'."
)


class InceptionFeatures:
    """uint8 images -> InceptionV3 2048-d average-pool features.

    As the FID reference code: images are resized bilinearly to 299x299, then
    scaled to [-1, 1] (``keras.applications.inception_v3.preprocess_input``),
    and the last pooling layer's output is the feature vector.

    Keras' InceptionV3 ImageNet weights are not the 2015 TensorFlow graph that
    the TTUR / pytorch-fid FID code uses, so even with them FID can differ from
    published figures by a few points; it is comparable between runs.

    Args:
        model: Keras InceptionV3 with ``include_top=False, pooling="avg"``.
        real_weights: whether the weights were loaded (ImageNet or a file)
            rather than randomly initialised.
        weights: where the weights came from (for the report).

    Call args:
        images: uint8 (or float in 0..255) [B, H, W, 3].

    Returns:
        float64 NumPy [B, 2048].
    """

    network = "keras"

    def __init__(self, model: keras.Model, real_weights: bool, weights: str | None = None):
        self.model = model
        self.real_weights = real_weights
        self.weights = weights
        # One trace for every batch size (tracing InceptionV3 takes seconds);
        # as a graph it runs several times faster than eagerly on a CPU.
        self._features = tf.function(
            self._forward, input_signature=[tf.TensorSpec([None, INPUT_SIZE, INPUT_SIZE, 3], tf.float32)]
        )

    def _forward(self, images):
        return self.model(keras.applications.inception_v3.preprocess_input(images), training=False)

    def __call__(self, images) -> np.ndarray:
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"InceptionFeatures: expected images [B, H, W, 3], got shape {images.shape}.")
        x = tf.image.resize(tf.cast(images, tf.float32), (INPUT_SIZE, INPUT_SIZE), method="bilinear")
        return np.asarray(self._features(x), np.float64)


def build_inception(weights: str | None = None) -> InceptionFeatures:
    """Builds the FID feature extractor.

    Args:
        weights: a local Keras weights file (``*.h5`` / ``*.weights.h5``;
            Keras' ``inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5``
            or weights saved from ``InceptionV3(include_top=False)``), or
            ``"imagenet"`` (Keras' download, or its cached copy in
            ``~/.keras/models``), or None: random weights, with a loud warning
            that the scores are not comparable to published ones.

    Raises:
        FileNotFoundError: a weights file that does not exist.
        ValueError: a file that is not InceptionV3 weights.
        RuntimeError: "imagenet" when the download fails (no network).
    """
    make = lambda w: keras.applications.InceptionV3(  # noqa: E731
        include_top=False, pooling="avg", weights=w, input_shape=(INPUT_SIZE, INPUT_SIZE, 3)
    )
    if not weights:
        logging.warning(RANDOM_WEIGHTS_WARNING)
        return InceptionFeatures(make(None), real_weights=False, weights=None)
    if weights == "imagenet":
        try:
            model = make("imagenet")
        except Exception as e:  # the download's errors vary (URLError, HTTP, SSL, OSError)
            raise RuntimeError(
                f"Could not download Keras' InceptionV3 ImageNet weights ({type(e).__name__}: {e}). "
                f"Without network access, download {KERAS_NOTOP_FILE} elsewhere "
                "(https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/) and pass "
                "its path as --inception_weights."
            ) from e
        return InceptionFeatures(model, real_weights=True, weights="imagenet")
    if not os.path.isfile(weights):
        raise FileNotFoundError(
            f"InceptionV3 weights file {weights} does not exist (expected Keras' {KERAS_NOTOP_FILE} "
            "or a .weights.h5 saved from InceptionV3(include_top=False))."
        )
    model = make(None)
    try:
        model.load_weights(weights)
    except Exception as e:  # h5py / Keras raise various types for a wrong file
        raise ValueError(
            f"InceptionV3 weights file {weights} could not be loaded ({type(e).__name__}: {e}); expected "
            f"Keras' {KERAS_NOTOP_FILE} (no classifier top) or weights saved from "
            "InceptionV3(include_top=False)."
        ) from e
    return InceptionFeatures(model, real_weights=True, weights=os.path.abspath(weights))


class StandardInceptionFeatures:
    """uint8 images -> the FID Inception network's 2048-d pool features.

    The network the FID figures of the papers (SPADE, CLADE, SEAN) were
    computed with: ``fid_inception.build_fid_inception``, which resizes
    (bilinear, no antialiasing) and scales inside the model, so images of any
    size go in as they are. Same call contract as ``InceptionFeatures``.
    """

    network = "standard"

    def __init__(self, model: keras.Model, real_weights: bool, weights: str | None = None):
        self.model = model
        self.real_weights = real_weights
        self.weights = weights
        self._features = tf.function(
            lambda images: self.model(images, training=False),
            input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)],
        )

    def __call__(self, images) -> np.ndarray:
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"StandardInceptionFeatures: expected images [B, H, W, 3], got shape {images.shape}.")
        return np.asarray(self._features(tf.constant(images, tf.float32)), np.float64)


def fid_network_for(network: str, weights: str | None) -> str:
    """Resolves ``network="auto"``: "standard" for pytorch-fid's ``.pth`` weights, else "keras"."""
    if network not in FID_NETWORKS:
        raise ValueError(f"fid_network={network!r} is not valid; expected one of {list(FID_NETWORKS)}.")
    if network != "auto":
        return network
    return "standard" if weights and str(weights).endswith(".pth") else "keras"


def build_feature_extractor(network: str = "auto", weights: str | None = None):
    """The FID / KID feature extractor: ``StandardInceptionFeatures`` or ``InceptionFeatures``.

    Args:
        network: "standard" (the papers' FID network; ``weights`` is
            pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth``), "keras"
            (``build_inception``), or "auto": "standard" when ``weights`` is a
            ``.pth`` file, else "keras".
        weights: the weights file (None: random weights, with a warning).

    Raises:
        ValueError: a weights file of the other network, or a bad ``network``.
        FileNotFoundError: a missing weights file.
    """
    network = fid_network_for(network, weights)
    is_pth = bool(weights) and str(weights).endswith(".pth")
    if network == "keras":
        if is_pth:
            raise ValueError(f"{weights} is PyTorch weights (pytorch-fid's FID Inception): use "
                             "--fid_network=standard (or auto) with it; the keras network takes Keras' .h5 weights.")
        return build_inception(weights)
    if weights and not is_pth:
        raise ValueError(f"--fid_network=standard takes pytorch-fid's .pth weights (pt_inception-2015-12-05-"
                         f"6726825d.pth); got {weights}.")
    from spade_tf.evaluation.fid_inception import build_fid_inception

    model = build_fid_inception(weights)
    return StandardInceptionFeatures(model, real_weights=bool(weights),
                                     weights=os.path.abspath(weights) if weights else None)
