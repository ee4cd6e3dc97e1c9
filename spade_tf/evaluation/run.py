"""The evaluation run behind ``evaluate.py``: synthesize the validation set, score it.

``evaluate(options)`` loads a model with ``spade_tf.export.load_synthesizer``,
generates an image for every validation label map, and writes to
``options.out``:

* ``report.json``: FID and KID between generated and real images (2048-d
  Inception pool features of ``fid_network``: "standard", the papers' FID
  network, or Keras' InceptionV3), mIoU and pixel accuracy of a segmenter on
  the generated images (with ``segmenter``), the paper's figures for the
  preset, which network and weights gave the features, and whether the
  figures are comparable with the papers' tables;
* ``grid.png``: rows of colour-coded label | generated | real.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time

import keras
import numpy as np

from spade_tf.data import DataError, find_files, validate_files
from spade_tf.evaluation import metrics
from spade_tf.evaluation.data import count_examples, validation_batches
from spade_tf.evaluation.inception import RANDOM_WEIGHTS_WARNING, build_feature_extractor, fid_network_for
from spade_tf.evaluation.protocol import PAPER_RESULTS, segmentation_protocol
from spade_tf.evaluation.real_stats import load_real_stats, make_real_stats, save_real_stats
from spade_tf.evaluation.segmenter import Segmenter
from spade_tf.evaluation.styles import check_vae_protocol, encoded_latent, style_noise
from spade_tf.utils.visualize import colorize, save_png
from spade_tf.workdir import read_data_record


@dataclasses.dataclass(frozen=True)
class EvalOptions:
    """Settings of an evaluation run (see ``evaluate.py`` for each flag)."""

    model: str
    out: str
    dataset_dir: str | None = None  # None: where <model>/data.json says it trained
    dataset_mode: str = "auto"
    inception_weights: str | None = None  # None: random weights (loud warning)
    fid_network: str = "auto"  # "standard" | "keras" | "auto" (standard for a .pth file)
    real_stats: str | None = None  # .npz of the real images' statistics: written once, then reused
    vae_protocol: str = "encode"  # VAE models: "encode" the real image (official test) | "random"
    segmenter: str | None = None
    batch_size: int = 8
    max_images: int | None = None
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    grid_images: int = 8
    num_synthetic: int = 500  # validation scenes when evaluating on the synthetic data
    seed: int = 0
    verbose: bool = True

    def __post_init__(self):
        for name in ("batch_size", "kid_subsets", "kid_subset_size", "num_synthetic"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} is not valid; expected >= 1.")
        if self.grid_images < 0:
            raise ValueError(f"grid_images={self.grid_images} is not valid; expected >= 0.")
        if self.max_images is not None and self.max_images < 2:
            raise ValueError(f"max_images={self.max_images} is not valid; FID and KID need at least 2 images.")
        fid_network_for(self.fid_network, self.inception_weights)
        check_vae_protocol(self.vae_protocol)


def resolve_files(options: EvalOptions, config):
    """The validation files: ``dataset_dir``, or the data ``<model>/data.json`` records."""
    dataset_dir, mode = options.dataset_dir, options.dataset_mode
    if dataset_dir is None and mode != "synthetic":
        record = read_data_record(options.model) if os.path.isdir(options.model) else None
        if record is None:
            raise ValueError(
                f"No --dataset_dir given and {options.model} has no data record saying where it trained; "
                "pass --dataset_dir=<dataset with a val split>."
            )
        if record.uses_folders:
            raise ValueError(
                f"{options.model} trained on --image_dir/--label_dir folders, which have no val split; "
                "pass --dataset_dir=<folder with images/ and labels/ of validation pairs>."
            )
        dataset_dir = record.dataset_dir
        if dataset_dir is None:
            mode = "synthetic"
        elif mode == "auto":
            mode = record.dataset_mode
    files = find_files(dataset_dir, mode, "val", config.use_instance_map)
    return validate_files(files, config), dataset_dir


def load_model(path: str):
    from spade_tf.export import load_synthesizer  # the export package imports heavier modules

    return load_synthesizer(path)


def evaluate(options: EvalOptions, synthesizer=None, inception=None, segmenter=None) -> dict:
    """Runs the evaluation; writes ``report.json`` and ``grid.png``; returns the report.

    Args:
        options: ``EvalOptions``.
        synthesizer: an already loaded model (default: ``load_synthesizer(options.model)``):
            ``.config`` and ``__call__(label, instance=None, seed=0) -> uint8 [B, H, W, 3]``.
        inception: an ``InceptionFeatures`` (default: built from ``options.inception_weights``).
        segmenter: a ``Segmenter`` (default: loaded from ``options.segmenter``, if given).

    Raises:
        DataError, FileNotFoundError, ValueError: naming the bad file or setting.
    """
    log = logging.info if not options.verbose else print
    synthesizer = synthesizer if synthesizer is not None else load_model(options.model)
    config = synthesizer.config
    files, dataset_dir = resolve_files(options, config)
    inception = inception if inception is not None else build_feature_extractor(
        options.fid_network, options.inception_weights)
    real_stats = None
    if options.real_stats and os.path.exists(options.real_stats):
        real_stats = load_real_stats(options.real_stats, network=inception.network, weights=inception.weights,
                                     image_size=config.image_size)
        log(f"real-image statistics from {options.real_stats} ({real_stats.count} images)")
    elif options.real_stats and not inception.real_weights:
        raise ValueError(f"--real_stats={options.real_stats}: statistics of randomly initialised Inception "
                         "weights cannot be reused (they differ from one run to the next); pass --inception_weights.")
    encode = config.use_vae and options.vae_protocol == "encode"
    if encode and not getattr(synthesizer, "can_encode", False):
        raise ValueError(f"{options.model} has no style encoder (encode_style signature; exports written before "
                         "it existed lack it): export it again from its workdir, evaluate the workdir itself, or "
                         "pass --vae_protocol=random.")
    if segmenter is None and options.segmenter:
        segmenter = Segmenter(options.segmenter)
    protocol = segmentation_protocol(config) if segmenter is not None else None
    confusion = metrics.ConfusionMatrix(protocol.num_classes) if protocol else None

    total = count_examples(files, options.max_images, options.num_synthetic)
    log(f"evaluating {options.model} on {total} {files.mode} validation images "
        f"({config.image_size[0]}x{config.image_size[1]})")
    os.makedirs(options.out, exist_ok=True)
    progbar = keras.utils.Progbar(total, unit_name="image", verbose=1 if options.verbose else 0)
    fake_features, real_features, grid_rows = [], [], []
    seen, start = 0, time.perf_counter()
    batches = validation_batches(config, files, options.batch_size, options.max_images, options.num_synthetic)
    for index, batch in enumerate(batches):
        label, real = batch["label"], batch["image"]
        fake = np.asarray(_synthesize(synthesizer, config, batch, options.seed + index, encode))
        if fake.dtype != np.uint8 or fake.shape != real.shape:
            raise ValueError(
                f"The synthesizer returned {fake.dtype} {fake.shape} for labels {label.shape}; expected "
                f"uint8 {real.shape}."
            )
        fake_features.append(inception(fake))
        if real_stats is None:
            real_features.append(inception(real))
        if confusion is not None:
            confusion.update(protocol.map_labels(label), segmenter(fake, size=label.shape[1:3]))
        for i in range(min(len(label), options.grid_images - len(grid_rows))):
            grid_rows.append(np.concatenate([colorize(label[i]), fake[i], real[i]], axis=1))
        seen += len(label)
        progbar.update(seen)
    if seen < 2:
        raise DataError(f"The validation split has {seen} image(s); FID and KID need at least 2.")
    seconds = time.perf_counter() - start

    fake_features = np.concatenate(fake_features)
    warnings = []
    if real_stats is None:
        real_features = np.concatenate(real_features)
        if options.real_stats:
            real_stats = make_real_stats(real_features, network=inception.network, weights=inception.weights,
                                         image_size=config.image_size, source=os.path.abspath(dataset_dir or ""))
            save_real_stats(options.real_stats, real_stats)
            log(f"wrote real-image statistics of {seen} images to {options.real_stats}")
        fid = metrics.fid(fake_features, real_features)
    else:
        real_features = real_stats.features
        fid = (metrics.fid(fake_features, real_features) if real_features is not None
               else metrics.frechet_distance(*metrics.feature_statistics(fake_features), real_stats.mu,
                                             real_stats.sigma))
    if real_features is not None:
        kid_mean, kid_std = metrics.kid(
            fake_features, real_features, options.kid_subsets, options.kid_subset_size, options.seed
        )
    else:
        kid_mean = kid_std = None
        warnings.append(f"{options.real_stats} holds the statistics of {real_stats.count} images but not their "
                        "features (too many to store): KID is not computed.")
    if files.mode == "custom":
        warnings.append(
            "The custom layout has no val split: these are the images of --dataset_dir's images/ and "
            "labels/ folders; point --dataset_dir at held-out pairs for a fair score."
        )
    if not inception.real_weights:
        warnings.append(RANDOM_WEIGHTS_WARNING)
    if seen <= fake_features.shape[1]:
        warnings.append(
            f"{seen} images <= {fake_features.shape[1]} feature dimensions: the covariances are singular "
            "and FID is biased upward; compare only runs with the same number of images."
        )
    if inception.network != "standard":
        warnings.append(
            "FID/KID on Keras' InceptionV3 features: comparable between runs of this project, not with the "
            "papers' tables (pass pytorch-fid's pt_inception-2015-12-05-6726825d.pth as --inception_weights)."
        )
    report = dict(
        model=os.path.abspath(options.model),
        step=_step(synthesizer),
        preset=config.preset,
        dataset_dir=os.path.abspath(dataset_dir) if dataset_dir else None,
        dataset_mode=files.mode,
        split="val",
        num_images=seen,
        image_size=list(config.image_size),
        fid=fid,
        kid_mean=kid_mean,
        kid_std=kid_std,
        kid_subsets=options.kid_subsets,
        kid_subset_size=min(options.kid_subset_size, seen, len(real_features)) if real_features is not None else None,
        fid_network=inception.network,
        inception_weights=inception.weights,
        inception_real_weights=bool(inception.real_weights),
        comparable_with_papers=bool(inception.network == "standard" and inception.real_weights),
        real_stats=dict(path=os.path.abspath(options.real_stats), count=real_stats.count,
                        source=real_stats.source) if real_stats is not None else None,
        vae_protocol=options.vae_protocol if config.use_vae else None,
        miou=None,
        accuracy=None,
        segmenter=os.path.abspath(options.segmenter) if options.segmenter else None,
        paper=PAPER_RESULTS.get(config.preset),
        seed=options.seed,
        seconds=round(seconds, 1),
        warnings=warnings,
    )
    if confusion is not None:
        iou = confusion.iou()
        report.update(
            miou=100.0 * metrics.mean_iou(confusion),  # percent, as the paper reports
            accuracy=100.0 * metrics.pixel_accuracy(confusion),
            segmentation_protocol=protocol.description,
            per_class_iou=[None if np.isnan(v) else float(v) for v in iou],
        )
    with open(os.path.join(options.out, "report.json"), "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    if grid_rows:
        save_png(np.concatenate(grid_rows, axis=0), os.path.join(options.out, "grid.png"))
    for warning in warnings:
        logging.warning(warning)
    return report


def _synthesize(synthesizer, config, batch, seed: int, encode: bool) -> np.ndarray:
    """One batch's images; a VAE model's latent as ``evaluation.styles`` draws it (the real image's
    encoding, or a random style), the same latents ``PeriodicEvaluator`` uses during training. A SEAN
    model takes the real image's region styles, as the official test and ``PeriodicEvaluator`` do
    (with its style encoder; the mean style codes without)."""
    label, instance = batch["label"], batch.get("instance")
    if config.norm_mode == "sean" and "synthesize_from_photo" in getattr(synthesizer, "signatures", {}):
        return synthesizer.synthesize_from_photo(label, batch["image"], label, instance, seed=seed)
    if not config.use_vae or not hasattr(synthesizer, "synthesize_latent"):
        return synthesizer(label, instance, seed=seed)
    if encode:
        latent = encoded_latent(*synthesizer.encode_style(batch["image"]), seed)
    else:
        latent = style_noise(seed, len(label), config.z_dim)
    return synthesizer.synthesize_latent(label, instance, latent)


def _step(synthesizer):
    step = getattr(synthesizer, "step", None)
    return None if step is None else int(step)
