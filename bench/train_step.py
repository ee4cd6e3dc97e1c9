"""Training-step throughput and peak memory: eager vs XLA, float32 vs mixed precision.

    python bench/train_step.py --preset=synthetic --batch_size=4 --steps=5

Runs SPADEGAN.train_step (one G step and one D step) on a fixed batch and
prints images/s and the process's peak resident memory for each variant,
with each variant's speed relative to the first, in one process.
"""

import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("preset", "synthetic", "Preset.")
flags.DEFINE_integer("batch_size", 4, "Batch size.", lower_bound=1)
flags.DEFINE_integer("steps", 5, "Timed steps per variant.", lower_bound=1)
flags.DEFINE_integer("crop_size", None, "Override crop_size.")
flags.DEFINE_integer("ngf", None, "Override ngf.")
flags.DEFINE_list("variants", ["float32", "float32+xla", "mixed_bfloat16", "mixed_float16"], "Variants.")


def main(argv):
    del argv
    import numpy as np
    import keras
    import tensorflow as tf

    from spade_tf import get_preset
    from spade_tf.training import SPADEGAN, make_optimizers

    overrides = {k: getattr(FLAGS, k) for k in ("crop_size", "ngf") if getattr(FLAGS, k)}
    cfg = get_preset(FLAGS.preset, batch_size=FLAGS.batch_size, use_vgg_loss=False, **overrides)
    h, w = cfg.image_size
    rng = np.random.default_rng(0)
    ids = rng.integers(0, cfg.label_nc, size=(FLAGS.batch_size, h // 8, w // 8)).repeat(8, 1).repeat(8, 2)
    batch = {"segmap": tf.constant(np.eye(cfg.semantic_nc, dtype=np.float32)[ids]),
             "image": tf.constant(rng.uniform(-1, 1, (FLAGS.batch_size, h, w, 3)).astype(np.float32))}
    print(f"preset={cfg.preset} image={h}x{w} ngf={cfg.ngf} batch={FLAGS.batch_size} "
          f"(VGG loss off) cpus={os.cpu_count()} gpus={len(tf.config.list_physical_devices('GPU'))}")
    base = None
    for variant in FLAGS.variants:
        policy = variant.split("+")[0]
        keras.config.set_dtype_policy(policy)
        model = SPADEGAN(cfg)
        g, d = make_optimizers(cfg, 100, policy == "mixed_float16")
        model.compile(g_optimizer=g, d_optimizer=d)
        step = tf.function(model.train_step, jit_compile="xla" in variant)
        start = time.perf_counter()
        step(batch)
        first = time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(FLAGS.steps):
            logs = step(batch)
        float(logs["D_real"])
        rate = FLAGS.steps * FLAGS.batch_size / (time.perf_counter() - start)
        base = base or rate
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{variant:>16}: {rate:7.2f} img/s  x{rate / base:.2f}  first step {first:.1f} s  "
              f"peak RSS so far {peak:.0f} MiB")
        keras.config.set_dtype_policy("float32")


if __name__ == "__main__":
    app.run(main)
