"""Export artifacts: file sizes, CPU latency, PSNR of each TFLite variant vs float32.

    python bench/export.py --workdir=runs/synthetic            # a trained model
    python bench/export.py --preset=coco --crop_size=128 --ngf=16  # random weights, warmed up
    python bench/export.py --preset=ade20k --tflite_variants= --warmup_steps=2  # serving speed only

Then, interleaved in this one process (one call of each per round, median of
--iters rounds, wall and CPU time, as the machine may be shared): the Keras
generator forward (``tf.function``, inference mode, one-hot ``segmap`` given),
the loaded SavedModel's ``serving_default`` (ids in, uint8 out, input checks
included) and ``FastGenerator`` (ids in, float out) as the SavedModel runs it
(variables, convs up to 16x16 as matmuls), with convs only, and with its
weights as graph constants, each with its time over the Keras forward's.

Exports into a temporary directory (or --export_dir), then times batch-1
calls (median of --iters after one warm-up) of the Keras generator (one-hot
done in NumPy), the SavedModel's serving_default and each TFLite file in the
LiteRT interpreter, on the same label maps. PSNR is measured against the
float32 TFLite output. Without --workdir the weights are random, with
batch-norm statistics warmed up and the last conv scaled so the images span
the intensity range: quantization error is then comparable in kind, not in
size, to a trained model's.
"""

import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Training workdir to export (default: random weights of --preset).")
flags.DEFINE_string("preset", "synthetic", "Preset for random weights.")
flags.DEFINE_integer("crop_size", None, "Override crop_size (random weights).")
flags.DEFINE_integer("ngf", None, "Override ngf (random weights).")
flags.DEFINE_integer("iters", 10, "Timed calls per artifact (median).", lower_bound=1)
flags.DEFINE_integer("images", 8, "Label maps for PSNR (synthetic validation scenes for the quickstart model).",
                     lower_bound=1)
flags.DEFINE_integer("calibration_images", 32, "int8 calibration label maps.", lower_bound=1)
flags.DEFINE_string("export_dir", None, "Where to export (default: a temporary directory).")
flags.DEFINE_string("norm_mode", None, "Override norm_mode (random weights): spade or clade.")
flags.DEFINE_list("tflite_variants", ["float32", "float16", "dynamic_range", "int8", "int16x8"],
                  "TFLite variants to export and time (empty: the SavedModel only).")
flags.DEFINE_integer("warmup_steps", 12, "Training-mode passes for batch-norm statistics (random weights).",
                     lower_bound=0)


def _median_seconds(fn, iters):
    fn()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _psnr(a, b):
    import numpy as np

    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def _interleaved(fns, iters):
    """{name: (median wall s, median CPU s)}: one call of each per round, after one warm-up call."""
    for fn in fns.values():
        fn()
    wall = {k: [] for k in fns}
    cpu = {k: [] for k in fns}
    for _ in range(iters):
        for name, fn in fns.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    return {k: (statistics.median(wall[k]), statistics.median(cpu[k])) for k in fns}


def compare_fast_path(config, generator, signature, iters):
    """Prints the Keras forward vs serving_default vs FastGenerator, interleaved, batch 1."""
    import numpy as np
    import tensorflow as tf

    from spade_tf.export.calibration import random_layouts
    from spade_tf.export.fast_graph import FastGenerator
    from spade_tf.export.serving import FAST_MATMUL_MAX_PIXELS
    from spade_tf.models import fold_spectral_norm
    from spade_tf.segmap import edge_map, label_channels, make_segmap
    from spade_tf.utils.visualize import to_uint8

    folded = fold_spectral_norm(generator)  # what the exporter exports
    example = random_layouts(config, 1, seed=123)[0]
    label = tf.constant(example["label"][None].astype(np.int32))
    instance = tf.constant(example["instance"][None].astype(np.int32)) if config.use_instance_map else None
    latent = tf.random.stateless_normal([1, config.z_dim], seed=[0, 0]) if config.use_vae else None
    keras_inputs = {"segmap": make_segmap(label, instance, config)}
    saved_args = {"label": label}
    edges = None
    if config.use_instance_map:
        edges = edge_map(instance)
        saved_args["instance"] = instance
    if config.use_vae:
        keras_inputs["latent"] = latent
        saved_args["latent"] = latent
    fast_args = (label_channels(label, config.label_nc, config.contain_dontcare_label), edges, latent)
    keras_forward = tf.function(lambda x: folded(x, training=False))
    fast_c = tf.function(FastGenerator(folded, config, constants=True), autograph=False)
    fast_v = tf.function(FastGenerator(folded, config), autograph=False)
    fast_m = tf.function(FastGenerator(folded, config, matmul_max_pixels=FAST_MATMUL_MAX_PIXELS), autograph=False)
    # VAE models: the signature that takes the latent itself, so all four compute the same image.
    endpoint = signature["synthesize_latent" if config.use_vae else "serving_default"]

    def signature_call():
        return endpoint(**saved_args)["image"].numpy()

    fns = {
        "keras generator (tf.function)": lambda: keras_forward(keras_inputs).numpy(),
        "SavedModel serving_default": signature_call,
        "FastGenerator, as served": lambda: fast_m(*fast_args).numpy(),
        "FastGenerator, convs only": lambda: fast_v(*fast_args).numpy(),
        "FastGenerator, constants": lambda: fast_c(*fast_args).numpy(),
    }
    reference = keras_forward(keras_inputs).numpy()
    served = signature_call()
    fast = fast_m(*fast_args).numpy()
    h, w = config.image_size
    print(f"\nfast path, {config.preset} {h}x{w} ngf {config.ngf}, batch 1, interleaved, median of {iters} rounds")
    print(f"  max |fast - keras| = {np.abs(fast - reference).max():.2e}; "
          f"max uint8 |serving_default - keras| = {np.abs(served.astype(int) - to_uint8(reference).astype(int)).max()}")
    times = _interleaved(fns, iters)
    base_wall, base_cpu = times["keras generator (tf.function)"]
    print(f"  {'':32}{'wall ms':>9}{'ratio':>8}{'CPU ms':>9}{'ratio':>8}")
    for name, (wall, cpu) in times.items():
        print(f"  {name:32}{wall * 1e3:>9.0f}{wall / base_wall:>8.2f}{cpu * 1e3:>9.0f}{cpu / base_cpu:>8.2f}")


def _random_generator(config):
    import numpy as np
    import tensorflow as tf

    from spade_tf.export.calibration import random_layouts
    from spade_tf.models import build_generator
    from spade_tf.segmap import make_segmap

    generator = build_generator(config)
    rng = np.random.default_rng(0)

    def inputs(seed):
        ex = random_layouts(config, 2, seed=seed)
        label = np.stack([e["label"] for e in ex])
        x = {"segmap": make_segmap(label, label, config)}
        if config.use_vae:
            x["latent"] = tf.constant(rng.standard_normal((2, config.z_dim)), tf.float32)
        return x

    for i in range(FLAGS.warmup_steps):
        generator(inputs(i), training=True)
    std = float(np.std(generator(inputs(99), training=False)))
    conv = generator.get_layer("conv_img")
    conv.kernel.assign(conv.kernel * (0.6 / std))
    return generator


def main(argv):
    del argv
    import keras
    import numpy as np
    import tensorflow as tf
    from absl import logging

    logging.set_verbosity(logging.WARNING)
    from spade_tf.config import get_preset
    from spade_tf.export import export_model, make_interpreter
    from spade_tf.export.calibration import calibration_examples
    from spade_tf.segmap import make_segmap
    from spade_tf.workdir import load_generator

    if FLAGS.workdir:
        restored = load_generator(FLAGS.workdir)
        config, generator, what = restored.config, restored.generator, f"{FLAGS.workdir} step {restored.step}"
    else:
        overrides = {k: getattr(FLAGS, k) for k in ("crop_size", "ngf", "norm_mode") if getattr(FLAGS, k)}
        if "crop_size" in overrides:
            overrides["load_size"] = overrides["crop_size"]
        config = get_preset(FLAGS.preset, **overrides)
        generator = _random_generator(config)
        what = f"random weights ({FLAGS.preset})"
    h, w = config.image_size
    print(f"model: {what}, {h}x{w}, ngf {config.ngf}, {generator.count_params():,} parameters")
    calibration, described = calibration_examples(config, FLAGS.calibration_images, FLAGS.workdir)
    examples, _ = calibration_examples(config, FLAGS.images + FLAGS.calibration_images, FLAGS.workdir)
    examples = examples[-FLAGS.images:]  # not the calibration ones
    export_dir = FLAGS.export_dir or tempfile.mkdtemp(prefix="spade-bench-export-")
    start = time.perf_counter()
    variants = [v for v in FLAGS.tflite_variants if v]
    paths = export_model(generator, config, export_dir, calibration=calibration, calibration_source=described,
                         tflite_variants=variants, log=lambda *_: None)
    print(f"export: {time.perf_counter() - start:.0f} s into {export_dir} (int8 calibrated on {described})")

    def inputs(example):
        label = example["label"][None].astype(np.int32)
        instance = example["instance"][None].astype(np.int32) if config.use_instance_map else None
        return label, instance

    loaded = tf.saved_model.load(paths["serving"])
    signature = loaded.signatures["serving_default"]

    def call_saved(example):
        label, instance = inputs(example)
        kw = {"label": tf.constant(label)}
        if instance is not None:
            kw["instance"] = tf.constant(instance)
        if config.use_vae:
            kw["seed"] = tf.constant(0)
        return signature(**kw)["image"].numpy()

    keras_model = keras.saving.load_model(paths["keras"])

    def call_keras(example):
        label, instance = inputs(example)
        x = {"segmap": make_segmap(label, instance, config)}
        if config.use_vae:
            x["latent"] = tf.zeros((1, config.z_dim))
        return keras_model.predict_on_batch(x)

    runners = {}
    for variant in variants:
        runners[variant] = make_interpreter(paths[f"tflite_{variant}"]).get_signature_runner()

    def call_tflite(variant, example):
        label, instance = inputs(example)
        kw = {"label": label}
        if instance is not None:
            kw["instance"] = instance
        if config.use_vae:
            kw["latent"] = np.zeros((1, config.z_dim), np.float32)
        return runners[variant](**kw)["image"]

    def size(path):
        if os.path.isdir(path):
            return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)
        return os.path.getsize(path)

    reference = [call_tflite("float32", e) for e in examples] if "float32" in variants else None
    rows = [("keras (.keras)", paths["keras"], lambda: call_keras(examples[0]), None),
            ("SavedModel", paths["serving"], lambda: call_saved(examples[0]), None)]
    for variant in variants:
        rows.append((f"tflite {variant}", paths[f"tflite_{variant}"],
                     (lambda v=variant: call_tflite(v, examples[0])), variant))
    base = None
    print(f"\n{'artifact':<22}{'size MiB':>10}{'latency ms':>12}{'vs SavedModel':>15}{'PSNR dB':>10}")
    for name, path, fn, variant in rows:
        seconds = _median_seconds(fn, FLAGS.iters)
        if name == "SavedModel":
            base = seconds
        ratio = f"{base / seconds:.2f}x" if base else "-"
        psnr = "-"
        if variant and variant != "float32" and reference is not None:
            psnr = f"{min(_psnr(call_tflite(variant, e), r) for e, r in zip(examples, reference)):.1f}"
        elif variant == "float32":
            psnr = "ref"
        print(f"{name:<22}{size(path) / 2**20:>10.1f}{seconds * 1e3:>12.1f}{ratio:>15}{psnr:>10}")
    print(f"\nbatch 1, median of {FLAGS.iters}; PSNR = worst of {len(examples)} label maps vs tflite float32; "
          f"{os.cpu_count()} CPU threads")
    compare_fast_path(config, generator, loaded.signatures, FLAGS.iters)


if __name__ == "__main__":
    app.run(main)
