"""Export a trained SPADE generator for TensorFlow Serving, Keras and TFLite.

    python export.py --workdir=runs/synthetic --export_dir=exported/synthetic
    python export.py --torch_checkpoint=checkpoints/coco_pretrained --preset=coco --export_dir=exported/coco

Writes serving/<version>/ (SavedModel), generator.keras, tflite/*.tflite and a
model card; see README.md.
"""

import sys

from absl import app, flags

from spade_tf.config import DATASET_MODES
from spade_tf.export.variants import CALIBRATED
from spade_tf.export.variants import VARIANTS as TFLITE_VARIANTS

TORCH_OVERRIDES = ("crop_size", "ngf", "label_nc", "num_upsampling_layers", "use_vae")

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Training workdir to export (its latest checkpoint).")
flags.DEFINE_string("export_dir", None, "Output directory.")
flags.DEFINE_string("checkpoint", None, "A checkpoint step or path instead of the latest.")
flags.DEFINE_integer("version", None, "Serving version (default: the next integer).", lower_bound=1)
flags.DEFINE_list("tflite", list(TFLITE_VARIANTS),
                  f"TFLite variants to write (some of {list(TFLITE_VARIANTS)}, or none).")
flags.DEFINE_integer("calibration_images", 64, "Label maps used to calibrate the int8 model.", lower_bound=1)
flags.DEFINE_integer("style_images", 256, "SEAN models: training images averaged into the mean style codes.",
                     lower_bound=1)
flags.DEFINE_string("dataset_dir", None, "Calibration data and SEAN's mean style codes (default: the data the "
                    "workdir was trained on).")
flags.DEFINE_enum("dataset_mode", "auto", [m for m in DATASET_MODES if m != "synthetic"], "Layout of --dataset_dir.")
flags.DEFINE_string("torch_checkpoint", None,
                    "NVlabs latest_net_G.pth (or CLADE best_net_G.pth, with --set=norm_mode=clade; SEAN's "
                    "latest_net_G.pth with --set=norm_mode=sean), or its checkpoint directory.")
flags.DEFINE_string("import_workdir", None, "With --torch_checkpoint: also write a training workdir (step 0 "
                    "of the imported G, D, E) that train.py continues.")
flags.DEFINE_string("preset", None, "With --torch_checkpoint: the preset it was trained with.")
flags.DEFINE_integer("crop_size", None, "With --torch_checkpoint: its --crop_size.", lower_bound=1)
flags.DEFINE_integer("ngf", None, "With --torch_checkpoint: its --ngf.", lower_bound=1)
flags.DEFINE_integer("label_nc", None, "With --torch_checkpoint: its --label_nc.", lower_bound=1)
flags.DEFINE_enum("num_upsampling_layers", None, ["normal", "more", "most"], "With --torch_checkpoint.")
flags.DEFINE_bool("use_vae", None, "With --torch_checkpoint: it has a style encoder.")
flags.DEFINE_multi_string("set", [], "With --torch_checkpoint: any other config field as key=value.")


def _variants():
    names = [v.strip() for v in FLAGS.tflite if v.strip()]
    if names == ["none"]:
        return []
    bad = [v for v in names if v not in TFLITE_VARIANTS]
    if bad:
        raise app.UsageError(f"--tflite={','.join(names)}: unknown {bad}; expected some of "
                             f"{list(TFLITE_VARIANTS)} or none.")
    return names


def _torch_config():
    from spade_tf.config import get_preset, parse_overrides

    if FLAGS.preset is None:
        raise app.UsageError("--torch_checkpoint needs --preset (the dataset the NVlabs model was trained on).")
    overrides = {k: getattr(FLAGS, k) for k in TORCH_OVERRIDES if getattr(FLAGS, k) is not None}
    try:
        overrides.update(parse_overrides(FLAGS.set))
    except ValueError as e:
        raise app.UsageError(str(e)) from None
    if "crop_size" in overrides and "load_size" not in overrides:
        overrides["load_size"] = overrides["crop_size"]
    return get_preset(FLAGS.preset, **overrides)


def _source():
    """(config, generator, step, source, encoder, style_encoder) from --workdir or --torch_checkpoint."""
    if FLAGS.torch_checkpoint:
        from spade_tf.convert import nvlabs
        from spade_tf.workdir import write_initial_checkpoint

        config = _torch_config()
        networks = nvlabs.import_checkpoint(FLAGS.torch_checkpoint, config,
                                            include_discriminator=bool(FLAGS.import_workdir))
        print(f"imported {', '.join(networks.files.values())}")
        if FLAGS.import_workdir:
            path = write_initial_checkpoint(config, FLAGS.import_workdir, networks.generator,
                                            networks.discriminator, networks.encoder, networks.style_encoder)
            print(f"wrote {path}: python train.py --workdir={FLAGS.import_workdir} (same settings) continues training")
        return config, networks.generator, None, networks.files["G"], networks.encoder, None
    from spade_tf.workdir import load_generator

    restored = load_generator(FLAGS.workdir, FLAGS.checkpoint)
    print(f"restored {restored.checkpoint} (step {restored.step})")
    return (restored.config, restored.generator, restored.step, restored.checkpoint, restored.encoder,
            restored.style_encoder)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if FLAGS.export_dir is None:
        raise app.UsageError("--export_dir is required.")
    variants = _variants()
    if FLAGS.torch_checkpoint and FLAGS.workdir:
        raise app.UsageError("--workdir exports a training workdir; with --torch_checkpoint use --import_workdir "
                             "to also write the import as a training workdir.")
    if not FLAGS.torch_checkpoint and FLAGS.workdir is None:
        raise app.UsageError("--workdir (a training workdir) or --torch_checkpoint is required.")
    if FLAGS.import_workdir and not FLAGS.torch_checkpoint:
        raise app.UsageError("--import_workdir needs --torch_checkpoint.")
    from absl import logging

    from spade_tf.export.calibration import calibration_examples
    from spade_tf.export.exporter import export_model
    from spade_tf.utils.files import write_error
    from spade_tf.workdir import WorkdirLockedError

    logging.set_verbosity(logging.WARNING)
    try:
        config, generator, step, source, encoder, style_encoder = _source()
        sean = config.norm_mode == "sean"
        mean_styles = None
        if sean:
            if style_encoder is None:
                raise ValueError("A SEAN export needs the model's style encoder (Zencoder) for its mean style "
                                 "codes; export a training workdir (--workdir).")
            from spade_tf.sean_styles import training_mean_styles

            mean_styles = training_mean_styles(style_encoder, config, FLAGS.style_images, FLAGS.workdir,
                                               FLAGS.dataset_dir, FLAGS.dataset_mode)
            print(f"mean style codes: {mean_styles.source}")
        from spade_tf.export.tflite import unsupported_reason

        calibration, described = None, ""
        if {v for v in variants if unsupported_reason(v, config) is None} & set(CALIBRATED):
            # SEAN: with the photos, whose style codes calibrate the style path.
            calibration, described = calibration_examples(
                config, FLAGS.calibration_images, FLAGS.workdir, FLAGS.dataset_dir, FLAGS.dataset_mode, images=sean)
            print(f"int8 calibration: {described}")
        paths = export_model(generator, config, FLAGS.export_dir, version=FLAGS.version, step=step, source=source,
                             calibration=calibration, calibration_source=described, tflite_variants=variants,
                             encoder=encoder, style_encoder=style_encoder, mean_styles=mean_styles)
    except (ValueError, FileNotFoundError, FileExistsError, ImportError, AssertionError, WorkdirLockedError) as e:
        sys.exit(f"error: {e}")
    except OSError as e:  # OutputError (read-only, not a directory...) and the like: one line naming the path
        sys.exit(f"error: {write_error(e)}")
    print(f"done: {FLAGS.export_dir} (serving version {paths['serving'].rsplit('/', 1)[-1]})")


if __name__ == "__main__":
    app.run(main)
