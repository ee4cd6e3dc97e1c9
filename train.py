"""Train SPADE.

    python train.py                                   # built-in synthetic scenes, CPU-sized model
    python train.py --dataset_dir=/data/coco_stuff --preset=coco --workdir=runs/coco
    python train.py --norm_mode=clade --workdir=runs/clade  # CLADE generator

Re-running the same command resumes from the latest checkpoint in --workdir.
"""

import sys

from absl import app, flags

from spade_tf.config import DATASET_MODES, MIXED_PRECISION, NORM_MODES, VAE_PROTOCOLS

FLAGS = flags.FLAGS
flags.DEFINE_string("dataset_dir", None, "Dataset root; none = built-in synthetic scenes.")
flags.DEFINE_enum("dataset_mode", "auto", list(DATASET_MODES), "Dataset layout (auto-detected by default).")
flags.DEFINE_string("image_dir", None, "Custom layout: image directory.")
flags.DEFINE_string("label_dir", None, "Custom layout: label directory.")
flags.DEFINE_string("instance_dir", None, "Custom layout: instance-map directory.")
flags.DEFINE_string("preset", None, "Model preset (default: the detected layout, or synthetic).")
flags.DEFINE_string("workdir", None, "Output directory (default runs/<preset>).")
flags.DEFINE_integer("batch_size", None, "Global batch size.", lower_bound=1)
flags.DEFINE_integer("max_steps", None, "Stop after this many steps.", lower_bound=1)
flags.DEFINE_integer("epochs", None, "Epochs (default niter + niter_decay).", lower_bound=1)
flags.DEFINE_integer("checkpoint_every", 500, "Steps between checkpoints.", lower_bound=1)
flags.DEFINE_integer("keep_checkpoints", 3, "Checkpoints kept.", lower_bound=1)
flags.DEFINE_integer("log_every", 50, "Steps between TensorBoard scalars.", lower_bound=1)
flags.DEFINE_integer("sample_every", 500, "Steps between sample PNGs.", lower_bound=1)
flags.DEFINE_integer("crop_size", None, "Image width.", lower_bound=1)
flags.DEFINE_integer("load_size", None, "Resize before cropping.", lower_bound=1)
flags.DEFINE_integer("label_nc", None, "Number of label classes.", lower_bound=1)
flags.DEFINE_integer("ngf", None, "Generator width.", lower_bound=1)
flags.DEFINE_integer("ndf", None, "Discriminator width.", lower_bound=1)
flags.DEFINE_enum("num_upsampling_layers", None, ["normal", "more", "most"], "Generator depth.")
flags.DEFINE_enum("norm_mode", None, list(NORM_MODES),
                  "Generator normalization: spade (default) or clade (class-adaptive, ~1/4 of the compute).")
flags.DEFINE_bool("use_positional_encoding", None,
                  "CLADE-ICPE: intra-class positional encoding maps (with --norm_mode=clade).")
flags.DEFINE_bool("use_vae", None, "Train with the style encoder.")
flags.DEFINE_string("vgg_weights", None, "VGG19 weights file (.pth/.npz/.h5) or 'imagenet'.")
flags.DEFINE_float("lr", None, "Base learning rate.")
flags.DEFINE_enum("mixed_precision", "none", list(MIXED_PRECISION), "Mixed precision.")
flags.DEFINE_bool("jit_compile", False, "XLA-compile the training step.")
flags.DEFINE_bool("skip_bad_pairs", False, "Drop bad image/label pairs with a warning instead of failing.")
flags.DEFINE_integer("seed", 0, "Data and augmentation seed.")
flags.DEFINE_integer("num_synthetic", 1000, "Synthetic scenes per epoch.", lower_bound=1)
flags.DEFINE_integer("eval_every", None, "Steps between FID/KID on a fixed validation subset (TensorBoard eval/*).",
                     lower_bound=1)
flags.DEFINE_integer("eval_images", 64, "Validation images in that subset.", lower_bound=2)
flags.DEFINE_string("inception_weights", None,
                    "FID network weights for --eval_every: pytorch-fid's pt_inception-2015-12-05-6726825d.pth (the "
                    "papers' network) or Keras' InceptionV3 notop .h5 / 'imagenet'; none = random weights "
                    "(scores not comparable to published ones).")
flags.DEFINE_enum("vae_protocol", "encode", list(VAE_PROTOCOLS),
                  "VAE models in --eval_every: 'encode' each real image for its style (the official test, as "
                  "evaluate.py), or 'random' styles.")
flags.DEFINE_multi_string("set", [], "Any other config field, as key=value (e.g. --set=lambda_vgg=5).")

OVERRIDE_FLAGS = ("batch_size", "crop_size", "load_size", "label_nc", "ngf", "ndf",
                  "num_upsampling_layers", "norm_mode", "use_positional_encoding", "use_vae", "vgg_weights", "lr")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    from spade_tf.config import get_preset, parse_overrides
    from spade_tf.data import DataError, detect_mode
    from spade_tf.training import (
        ConfigMismatchError,
        TrainingDivergedError,
        TrainingStopped,
        TrainOptions,
        WorkdirLockedError,
        train,
    )
    from spade_tf.utils.files import write_error

    preset = FLAGS.preset
    if preset is None:
        if FLAGS.dataset_dir is None and FLAGS.image_dir is None:
            preset = "synthetic"
        elif FLAGS.image_dir or FLAGS.dataset_mode == "custom":
            preset = "custom"
        else:
            try:
                preset = detect_mode(FLAGS.dataset_dir) if FLAGS.dataset_mode == "auto" else FLAGS.dataset_mode
            except DataError as e:
                sys.exit(f"error: {e}")
    overrides = {k: getattr(FLAGS, k) for k in OVERRIDE_FLAGS if getattr(FLAGS, k) is not None}
    try:
        overrides.update(parse_overrides(FLAGS.set))
    except ValueError as e:
        raise app.UsageError(str(e)) from None
    try:
        config = get_preset(preset, **overrides)
        options = TrainOptions(
            workdir=FLAGS.workdir or f"runs/{preset}",
            dataset_dir=FLAGS.dataset_dir, dataset_mode=FLAGS.dataset_mode,
            image_dir=FLAGS.image_dir, label_dir=FLAGS.label_dir, instance_dir=FLAGS.instance_dir,
            max_steps=FLAGS.max_steps, epochs=FLAGS.epochs,
            checkpoint_every=FLAGS.checkpoint_every, keep_checkpoints=FLAGS.keep_checkpoints,
            log_every=FLAGS.log_every, sample_every=FLAGS.sample_every, seed=FLAGS.seed,
            mixed_precision=FLAGS.mixed_precision, jit_compile=FLAGS.jit_compile,
            skip_bad_pairs=FLAGS.skip_bad_pairs, num_synthetic=FLAGS.num_synthetic,
            eval_every=FLAGS.eval_every, eval_images=FLAGS.eval_images,
            inception_weights=FLAGS.inception_weights, vae_protocol=FLAGS.vae_protocol,
        )
        summary = train(config, options)
    except TrainingStopped as e:
        print(f"\n{e}", file=sys.stderr)
        sys.exit(e.exit_code)
    except (ValueError, FileNotFoundError, ConfigMismatchError, TrainingDivergedError, WorkdirLockedError) as e:
        sys.exit(f"error: {e}")
    except OSError as e:  # a read-only or full workdir: name the path, no traceback
        sys.exit(f"error: {write_error(e)}")
    print(f"done: step {summary['step']}, checkpoint {summary.get('checkpoint')}, "
          f"logs in {options.workdir}/logs, samples in {options.workdir}/samples")


if __name__ == "__main__":
    app.run(main)
