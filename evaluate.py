"""Evaluate a SPADE model: FID / KID, and mIoU / accuracy with a segmenter.

    python evaluate.py --model=runs/coco --dataset_dir=/data/coco_stuff --out=eval/coco \
        --inception_weights=pt_inception-2015-12-05-6726825d.pth --real_stats=eval/coco_val_stats.npz \
        --segmenter=deeplabv2_savedmodel

Writes <out>/report.json and <out>/grid.png (label | generated | real).
"""

import json
import sys

from absl import app, flags

from spade_tf.config import DATASET_MODES, FID_NETWORKS, VAE_PROTOCOLS

FLAGS = flags.FLAGS
flags.DEFINE_string("model", None, "Export directory, serving SavedModel or training workdir.", required=True)
flags.DEFINE_string("out", None, "Output directory (default <model>/eval).")
flags.DEFINE_string("dataset_dir", None, "Dataset root with a val split (default: the one in <model>/data.json).")
flags.DEFINE_enum("dataset_mode", "auto", list(DATASET_MODES),
                  "Dataset layout (auto-detected by default).")
flags.DEFINE_string("inception_weights", None,
                    "FID network weights: pytorch-fid's pt_inception-2015-12-05-6726825d.pth (the papers' FID "
                    "network), or Keras' InceptionV3 notop .h5 / 'imagenet'; none = random weights, whose "
                    "FID/KID are not comparable to anything published.")
flags.DEFINE_enum("fid_network", "auto", list(FID_NETWORKS),
                  "Feature network: 'standard' (TTUR/pytorch-fid 2015 Inception, as the papers), 'keras' "
                  "(Keras' InceptionV3); 'auto' = standard for a .pth --inception_weights, else keras.")
flags.DEFINE_string("real_stats", None,
                    "Real-image statistics .npz: written on the first run, reused after (refused when it was "
                    "computed with another network, weights or image size).")
flags.DEFINE_enum("vae_protocol", "encode", list(VAE_PROTOCOLS),
                  "VAE models: 'encode' each real image for its style (the official test), or 'random' styles.")
flags.DEFINE_string("segmenter", None, "Segmentation SavedModel for mIoU / accuracy (see Segmenter's contract).")
flags.DEFINE_integer("batch_size", 8, "Images per batch.", lower_bound=1)
flags.DEFINE_integer("max_images", None, "Evaluate only the first N validation images.", lower_bound=2)
flags.DEFINE_integer("kid_subsets", 100, "KID: number of random subsets.", lower_bound=1)
flags.DEFINE_integer("kid_subset_size", 1000, "KID: subset size (capped at the number of images).", lower_bound=2)
flags.DEFINE_integer("grid_images", 8, "Rows in grid.png.", lower_bound=0)
flags.DEFINE_integer("seed", 0, "Latent / KID subset seed.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    import os

    from spade_tf.data import DataError
    from spade_tf.evaluation import EvalOptions, evaluate

    try:
        options = EvalOptions(
            model=FLAGS.model, out=FLAGS.out or os.path.join(FLAGS.model, "eval"),
            dataset_dir=FLAGS.dataset_dir, dataset_mode=FLAGS.dataset_mode,
            inception_weights=FLAGS.inception_weights, fid_network=FLAGS.fid_network,
            real_stats=FLAGS.real_stats, vae_protocol=FLAGS.vae_protocol, segmenter=FLAGS.segmenter,
            batch_size=FLAGS.batch_size, max_images=FLAGS.max_images, kid_subsets=FLAGS.kid_subsets,
            kid_subset_size=FLAGS.kid_subset_size, grid_images=FLAGS.grid_images, seed=FLAGS.seed,
        )
        report = evaluate(options)
    except (ValueError, FileNotFoundError, DataError, RuntimeError) as e:
        sys.exit(f"error: {e}")
    keys = ("num_images", "fid", "kid_mean", "kid_std", "miou", "accuracy", "fid_network", "inception_real_weights",
            "comparable_with_papers")
    print(json.dumps({k: report[k] for k in keys}, indent=2))
    for warning in report["warnings"]:
        print(f"WARNING: {warning}", file=sys.stderr)
    print(f"report: {options.out}/report.json, grid: {options.out}/grid.png")


if __name__ == "__main__":
    app.run(main)
