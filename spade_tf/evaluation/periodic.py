"""FID / KID during training, on a fixed validation subset."""

from __future__ import annotations

import time
from typing import Callable

import numpy as np
import tensorflow as tf

from spade_tf.config import SPADEConfig
from spade_tf.data.layouts import DatasetFiles
from spade_tf.evaluation import metrics
from spade_tf.evaluation.data import validation_batches
from spade_tf.evaluation.inception import InceptionFeatures, build_feature_extractor
from spade_tf.evaluation.styles import check_vae_protocol, encoded_latent, style_noise
from spade_tf.positional import positional_encoding
from spade_tf.segmap import make_segmap
from spade_tf.utils.visualize import to_uint8


class PeriodicEvaluator:
    """Scores a generator every N training steps on the same validation images.

    The subset (the first ``num_images`` validation examples, centre-cropped)
    is read once and kept in memory with its real images' Inception features,
    so each evaluation costs only generation and the fake images' features.
    The scores are comparable between steps of one run, not with full-split
    figures: FID is biased upward with few images.

    Args:
        config: the model's config.
        files: the validation split (``find_files(..., split="val")``).
        num_images: size of the fixed subset (at least 2).
        inception: an ``InceptionFeatures``; default built from ``inception_weights``.
        inception_weights: see ``build_feature_extractor`` (a ``.pth`` file: the papers' FID network;
            None: random weights, with a warning).
        batch_size: generation batch size.
        kid_subsets: KID subsets (each of ``min(1000, num_images)`` images).
        seed: KID subset seed.

    Call args:
        generate: ``batch -> uint8 [B, H, W, 3]``; a batch is a dict of
            ``"label"`` int32 [B, H, W], ``"instance"`` (with instance maps),
            ``"image"`` (the real images, uint8) and ``"seed"`` (the style
            seed of VAE models: ``seed`` + the batch's index, as
            ``evaluate.py`` draws it).
        step: the training step, for the summaries.
        writer: a ``tf.summary`` writer; scalars ``eval/fid``, ``eval/kid``
            (and ``eval/kid_std``) are written to it.

    Returns:
        dict ``fid``, ``kid_mean``, ``kid_std``, ``seconds``.
    """

    def __init__(
        self, config: SPADEConfig, files: DatasetFiles, num_images: int = 64,
        inception: InceptionFeatures | None = None, inception_weights: str | None = None,
        batch_size: int = 8, kid_subsets: int = 10, seed: int = 0,
    ):
        if num_images < 2:
            raise ValueError(f"num_images={num_images} is not valid; FID and KID need at least 2.")
        self.config = config
        self.kid_subsets = kid_subsets
        self.seed = seed
        self.inception = inception if inception is not None else build_feature_extractor("auto", inception_weights)
        self.batches = [
            dict(batch, seed=seed + index)
            for index, batch in enumerate(validation_batches(config, files, batch_size, num_images,
                                                             num_synthetic=num_images))
        ]
        self.num_images = sum(len(b["label"]) for b in self.batches)
        if self.num_images < 2:
            raise ValueError(f"The validation split has {self.num_images} image(s); FID and KID need at least 2.")
        self.real_features = np.concatenate([self.inception(b["image"]) for b in self.batches])

    def __call__(self, generate: Callable[[dict], np.ndarray], step: int | None = None, writer=None) -> dict:
        start = time.perf_counter()
        fake_features = []
        for batch in self.batches:
            fake = np.asarray(generate(batch))
            if fake.dtype != np.uint8 or fake.shape != batch["image"].shape:
                raise ValueError(
                    f"generate returned {fake.dtype} {fake.shape}; expected uint8 {batch['image'].shape}."
                )
            fake_features.append(self.inception(fake))
        fake_features = np.concatenate(fake_features)
        kid_mean, kid_std = metrics.kid(fake_features, self.real_features, self.kid_subsets, seed=self.seed)
        scores = dict(
            fid=metrics.fid(fake_features, self.real_features), kid_mean=kid_mean, kid_std=kid_std,
            seconds=time.perf_counter() - start,
        )
        if writer is not None:
            with writer.as_default(step=step):
                tf.summary.scalar("eval/fid", scores["fid"])
                tf.summary.scalar("eval/kid", kid_mean)
                tf.summary.scalar("eval/kid_std", kid_std)
        return scores


def generate_with_model(model, config: SPADEConfig, vae_protocol: str = "encode") -> Callable[[dict], np.ndarray]:
    """A ``generate`` for ``PeriodicEvaluator`` from a training ``SPADEGAN``.

    Inference mode (batch-norm moving statistics). A VAE model's latent
    follows ``vae_protocol`` (``evaluation.styles``): by default the real
    image's encoding, as the official test script does, with the noise of
    the batch's seed, so that ``evaluate.py`` on the same images agrees.
    """
    check_vae_protocol(vae_protocol)

    def generate(batch):
        inputs = {"segmap": make_segmap(batch["label"], batch.get("instance"), config)}
        if config.use_positional_encoding:  # CLADE-ICPE: the maps of the label map as given
            inputs["positional"] = positional_encoding(batch["label"])
        if config.norm_mode == "sean":  # SEAN: the real image's region styles, as the official test
            inputs["image"] = tf.constant(batch["image"], tf.float32) / 127.5 - 1.0
        if config.use_vae:
            seed = int(batch.get("seed", 0))
            if vae_protocol == "encode":
                image = tf.constant(batch["image"], tf.float32) / 127.5 - 1.0
                mean, logvar = model.encoder({"image": image}, training=False)
                inputs["latent"] = tf.constant(encoded_latent(mean, logvar, seed))
            else:
                inputs["latent"] = tf.constant(style_noise(seed, len(batch["label"]), config.z_dim))
        return to_uint8(tf.cast(model(inputs, training=False), tf.float32).numpy())

    return generate
