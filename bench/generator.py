"""Generator inference speed: eager vs tf.function vs XLA (jit_compile), SPADE vs CLADE.

    python bench/generator.py --preset=ade20k --batch_size=1 --iters=3
    python bench/generator.py --norm_modes=spade,clade --modes=function --iters=10   # SPADE vs CLADE

Prints seconds per image and images per second for each mode, and each
mode's speed-up over eager measured in the same process. With several
--norm_modes, one generator per norm mode is built in this process and each
gets its FLOPs per image (TensorFlow's profiler on the frozen graph: every
op with registered float-op statistics, convolutions being nearly all of
it) and its time as a ratio of the first norm mode's (calls interleaved,
one of each per round, so load on the machine hits both alike). Weights are
random (speed does not depend on them); batch norm runs in inference mode.
With KERAS_BACKEND=jax it times the JAX backend instead (jit vs eager).
"""

import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("preset", "ade20k", "Preset name.")
flags.DEFINE_integer("batch_size", 1, "Images per call.", lower_bound=1)
flags.DEFINE_integer("iters", 3, "Timed calls per mode (median reported).", lower_bound=1)
flags.DEFINE_list("modes", ["eager", "function", "xla"], "Modes to time.")
flags.DEFINE_integer("ngf", None, "Override ngf.")
flags.DEFINE_integer("crop_size", None, "Override crop_size.")
flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16", "mixed_bfloat16", "mixed_float16"],
                  "Compute dtype policy.")
flags.DEFINE_bool("fold_spectral_norm", True, "Time the exported (folded) generator.")
flags.DEFINE_list("norm_modes", ["spade"], "Generator norm modes to build and compare (spade, clade).")


def _flops(generator, inputs):
    """Float ops of one call (TensorFlow's profiler on the frozen inference graph)."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    specs = {k: tf.TensorSpec(v.shape, v.dtype) for k, v in inputs.items()}
    function = tf.function(lambda x: generator(x, training=False)).get_concrete_function(specs)
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    graph = convert_variables_to_constants_v2(function).graph
    return tf.compat.v1.profiler.profile(graph=graph, options=options).total_float_ops


def _functions(generator, backend):
    import keras

    fns = {"eager": lambda x: generator(x, training=False)}
    if backend == "tensorflow":
        import tensorflow as tf

        fns["function"] = tf.function(lambda x: generator(x, training=False))
        fns["xla"] = tf.function(lambda x: generator(x, training=False), jit_compile=True)
    elif backend == "jax":
        import jax

        trainable = [v.value for v in generator.trainable_variables]
        non_trainable = [v.value for v in generator.non_trainable_variables]
        jitted = jax.jit(
            lambda tv, ntv, x: generator.stateless_call(tv, ntv, x, training=False)[0]
        )
        fns["xla"] = lambda x: jitted(trainable, non_trainable, x)
    return {k: (lambda x, fn=fn: keras.ops.convert_to_numpy(fn(x))) for k, fn in fns.items()}


def main(argv):
    del argv
    import keras
    import numpy as np

    from spade_tf import build_generator, fold_spectral_norm, get_preset

    keras.config.set_dtype_policy(FLAGS.dtype)
    backend = keras.backend.backend()
    overrides = {k: getattr(FLAGS, k) for k in ("ngf", "crop_size") if getattr(FLAGS, k)}
    models = {}
    for norm_mode in FLAGS.norm_modes:
        cfg = get_preset(FLAGS.preset, norm_mode=norm_mode, **overrides)
        generator = build_generator(cfg)
        if FLAGS.fold_spectral_norm:
            generator = fold_spectral_norm(generator)
        models[norm_mode] = (cfg, generator)
    cfg = models[FLAGS.norm_modes[0]][0]
    h, w = cfg.image_size
    rng = np.random.default_rng(0)
    ids = rng.integers(0, cfg.semantic_nc, size=(FLAGS.batch_size, h // 8, w // 8))
    ids = np.repeat(np.repeat(ids, 8, axis=1), 8, axis=2)
    inputs = {"segmap": np.eye(cfg.semantic_nc, dtype=np.float32)[ids]}
    if cfg.use_vae:
        inputs["latent"] = rng.normal(size=(FLAGS.batch_size, cfg.z_dim)).astype(np.float32)
    if backend == "tensorflow":
        import tensorflow as tf

        inputs = {k: tf.constant(v) for k, v in inputs.items()}
    print(f"preset={cfg.preset} image={h}x{w} semantic_nc={cfg.semantic_nc} ngf={cfg.ngf} "
          f"batch={FLAGS.batch_size} dtype={FLAGS.dtype} backend={backend} cpus={os.cpu_count()}")
    fns = {}
    for norm_mode, (_, generator) in models.items():
        params = sum(int(np.prod(v.shape)) for v in generator.trainable_variables)
        flops = f"  {_flops(generator, inputs) / FLAGS.batch_size / 1e9:.1f} GFLOP/img" \
            if backend == "tensorflow" else ""
        print(f"{norm_mode}: params={params:,}{flops}")
        for mode, fn in _functions(generator, backend).items():
            if mode in FLAGS.modes:
                fns[(norm_mode, mode)] = fn
    for mode in FLAGS.modes:
        if not any(m == mode for _, m in fns):
            print(f"{mode:>9}: not available on the {backend} backend")
    first = {}
    for key, fn in fns.items():  # compile / trace outside the timing
        start = time.perf_counter()
        fn(inputs)
        first[key] = time.perf_counter() - start
    times = {key: [] for key in fns}
    for _ in range(FLAGS.iters):  # interleaved: one call of each per round
        for key, fn in fns.items():
            start = time.perf_counter()
            fn(inputs)
            times[key].append(time.perf_counter() - start)
    per_image = {key: statistics.median(t) / FLAGS.batch_size for key, t in times.items()}
    base_norm = FLAGS.norm_modes[0]
    for (norm_mode, mode), seconds in per_image.items():
        ratios = ""
        if mode != "eager" and (norm_mode, "eager") in per_image:
            ratios += f"  x{per_image[(norm_mode, 'eager')] / seconds:.2f} vs eager"
        if norm_mode != base_norm and (base_norm, mode) in per_image:
            ratios += f"  {seconds / per_image[(base_norm, mode)]:.2f}x the time of {base_norm}"
        print(f"{norm_mode:>6} {mode:>9}: {seconds:8.4f} s/img  {1 / seconds:9.2f} img/s  "
              f"(first call {first[(norm_mode, mode)]:.1f} s){ratios}")


if __name__ == "__main__":
    app.run(main)
