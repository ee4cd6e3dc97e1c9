"""Training-step time: float32 vs XLA vs mixed precision, optionally vs NVlabs' PyTorch step.

    # the configuration of the architecture issue (2-core CPU):
    python bench/train_step.py --preset=coco --ngf=32 --crop_size=128 --batch_size=2 \
        --use_vgg_loss --nvlabs_dir=/tmp/nvspade

Times SPADEGAN.train_step (one G step and one D step) on a fixed batch for
each variant and, with ``--nvlabs_dir``, the official ``Pix2PixTrainer``
(``run_generator_one_step`` + ``run_discriminator_one_step``) on the same
shapes, in one process. Every variant is built and warmed up first; then the
variants are timed in interleaved rounds (A, B, C, A, B, C, ...) and the
median and best round per variant are reported, so a machine shared with
other jobs slows all of them alike as far as it can. PyTorch gets as many threads as there are cores.
``--profile_steps=N`` then traces N steps of the first variant and prints the
op time per op type (where the step goes).

``--nvlabs_dir`` is a checkout of NVlabs/SPADE (CC BY-NC-SA: kept outside
this repository, never vendored). It is imported as is, with stand-ins so
that it runs on a CPU-only machine without its extra dependencies: a
``torchvision`` module whose ``vgg19`` builds torchvision's VGG19 layer list
with random weights (always: the timing does not depend on the weights, the
real one downloads them, and importing it after TensorFlow crashes the
process), ``pickle`` for ``dill``, and ``nn.BatchNorm2d`` for the
``sync_batchnorm`` package the official README copies in (the same
computation on one device); without CUDA, ``Module.cuda`` as a no-op (the
official ``VGGLoss`` calls ``.cuda()`` unconditionally).
"""

import os
import resource
import statistics
import sys
import time
import types

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("preset", "synthetic", "Preset.")
flags.DEFINE_integer("batch_size", 4, "Batch size.", lower_bound=1)
flags.DEFINE_integer("steps", 3, "Timed iterations per variant per round.", lower_bound=1)
flags.DEFINE_integer("rounds", 5, "Interleaved rounds (median and best reported).", lower_bound=1)
flags.DEFINE_integer("crop_size", None, "Override crop_size (and load_size).")
flags.DEFINE_integer("ngf", None, "Override ngf.")
flags.DEFINE_bool("use_vgg_loss", False, "Include the VGG19 perceptual loss (random weights).")
flags.DEFINE_list(
    "variants", ["float32", "float32+xla"],
    "Our variants: float32, mixed_bfloat16, mixed_float16, each optionally +xla.",
)
flags.DEFINE_integer(
    "profile_steps", 0,
    "After the timing, trace this many steps of the first variant (tf.profiler) and print its op time "
    "per op type.", lower_bound=0,
)
flags.DEFINE_string(
    "nvlabs_dir", None, "A checkout of NVlabs/SPADE: also time the official trainer step."
)


def _batch(cfg, batch_size):
    import numpy as np

    h, w = cfg.image_size
    rng = np.random.default_rng(0)
    # 8x8 blocks of label ids and of instance ids: edges on block borders.
    ids = rng.integers(0, cfg.label_nc, size=(batch_size, h // 8, w // 8)).repeat(8, 1).repeat(8, 2)
    inst = rng.integers(0, 4, size=(batch_size, h // 8, w // 8)).repeat(8, 1).repeat(8, 2)
    image = rng.uniform(-1, 1, (batch_size, h, w, 3)).astype(np.float32)
    return ids, inst, image


def _our_step(cfg, variant, ids, inst, image):
    """A zero-argument callable running one of our training steps, and its model."""
    import keras
    import numpy as np
    import tensorflow as tf

    from spade_tf.segmap import make_segmap
    from spade_tf.training import SPADEGAN, make_optimizers

    policy = variant.split("+")[0]
    keras.config.set_dtype_policy(policy)
    try:
        model = SPADEGAN(cfg)
        g, d = make_optimizers(cfg, 100, policy == "mixed_float16")
        model.compile(g_optimizer=g, d_optimizer=d)
    finally:
        keras.config.set_dtype_policy("float32")
    # The data pipeline builds the segmap (one-hot + edges), so the step gets it.
    batch = {"segmap": make_segmap(tf.constant(ids), tf.constant(inst), cfg),
             "image": tf.constant(image)}
    del np
    step = tf.function(model.train_step, jit_compile="xla" in variant)

    def run():
        logs = step(batch)
        return float(logs["D_real"])  # waits for the step

    return run


def _nvlabs_step(nvlabs_dir, cfg, ids, inst, image):
    """A zero-argument callable running the official G step + D step."""
    import numpy as np
    import torch
    from torch import nn

    # Always the stand-in: the official VGGLoss asks for pretrained weights
    # (a download), and importing torchvision after TensorFlow crashes this
    # process; the timing does not depend on the weights.
    sys.modules["torchvision"] = _torchvision_stand_in()
    try:
        import dill  # noqa: F401  (NVlabs' util.util pickles options with it)
    except ImportError:
        import pickle

        sys.modules["dill"] = pickle
    if not torch.cuda.is_available():
        nn.Module.cuda = lambda self, *args, **kwargs: self  # VGGLoss calls .cuda()
    torch.set_num_threads(os.cpu_count())
    nvlabs_dir = os.path.abspath(nvlabs_dir)
    sys.path.insert(0, nvlabs_dir)
    if not os.path.isdir(os.path.join(nvlabs_dir, "models", "networks", "sync_batchnorm")):
        sys.modules["models.networks.sync_batchnorm"] = _sync_batchnorm_stand_in()
    from options.train_options import TrainOptions  # noqa: E402  (NVlabs)
    from trainers.pix2pix_trainer import Pix2PixTrainer  # noqa: E402  (NVlabs)

    h, w = cfg.image_size
    argv = [
        "train.py", "--dataset_mode", "coco", "--gpu_ids", "-1", "--batchSize", str(len(ids)),
        "--ngf", str(cfg.ngf), "--ndf", str(cfg.ndf), "--crop_size", str(w), "--load_size", str(w),
        "--aspect_ratio", str(w / h), "--label_nc", str(cfg.label_nc),
        "--num_D", str(cfg.num_D), "--n_layers_D", str(cfg.n_layers_D),
    ]
    argv += [] if cfg.use_vgg_loss else ["--no_vgg_loss"]
    argv += [] if cfg.use_instance_map else ["--no_instance"]
    argv += ["--use_vae"] if cfg.use_vae else []
    saved, sys.argv = sys.argv, argv
    try:
        opt = TrainOptions().gather_options()
    finally:
        sys.argv = saved
    if not cfg.contain_dontcare_label:
        raise ValueError("--nvlabs_dir: the bench runs NVlabs' coco mode, which has a don't-care label.")
    opt.isTrain = True
    opt.gpu_ids = []
    opt.semantic_nc = opt.label_nc + int(opt.contain_dontcare_label) + int(not opt.no_instance)
    if opt.semantic_nc != cfg.semantic_nc:
        raise ValueError(f"NVlabs semantic_nc {opt.semantic_nc} != ours {cfg.semantic_nc}.")
    trainer = Pix2PixTrainer(opt)
    data = {
        "label": torch.from_numpy(ids[:, None].astype(np.int64)),
        "instance": torch.from_numpy(inst[:, None].astype(np.float32)),
        "image": torch.from_numpy(np.ascontiguousarray(image.transpose(0, 3, 1, 2))),
    }

    def run():
        trainer.run_generator_one_step(data)
        trainer.run_discriminator_one_step(data)
        return float(trainer.d_losses["D_real"].detach())

    return run


def _sync_batchnorm_stand_in():
    """vacancy/Synchronized-BatchNorm-PyTorch, which NVlabs' README copies in, on one device.

    Its ``SynchronizedBatchNorm2d.forward`` calls ``F.batch_norm`` with the
    module's own buffers unless it runs under ``DataParallelWithCallback`` in
    training: on one device it computes what ``nn.BatchNorm2d`` does.
    """
    from torch import nn

    module = types.ModuleType("models.networks.sync_batchnorm")
    module.SynchronizedBatchNorm2d = nn.BatchNorm2d
    module.DataParallelWithCallback = nn.DataParallel
    return module


def _torchvision_stand_in():
    """``torchvision.models.vgg19(pretrained=...)`` with torchvision's layer list, random weights."""
    from torch import nn

    def vgg19(pretrained=False, **kwargs):
        layers, c = [], 3
        for v in (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
                  512, 512, 512, 512, "M", 512, 512, 512, 512, "M"):
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU(inplace=True)]
                c = v
        return types.SimpleNamespace(features=nn.Sequential(*layers))

    module = types.ModuleType("torchvision")
    module.models = types.SimpleNamespace(vgg19=vgg19)
    module.transforms = types.ModuleType("torchvision.transforms")  # imported by NVlabs' data/
    sys.modules["torchvision.transforms"] = module.transforms
    return module


def _profile(run, steps):
    """Op time per op type over ``steps`` traced steps: {op type: seconds per step}.

    Summed over TensorFlow's executor threads (ops run two at a time on two
    cores, so the total exceeds the wall time), read from the trace's XPlane
    file, no TensorBoard needed.
    """
    import collections
    import glob
    import tempfile

    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        for _ in range(steps):
            run()
        tf.profiler.experimental.stop()
        [path] = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)
        space = xplane_pb2.XSpace()
        with open(path, "rb") as f:
            space.ParseFromString(f.read())
    per_type = collections.Counter()
    for plane in space.planes:
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):  # the executor threads' op events
                continue
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name  # "<op name>:<op type>"
                if ":" in name and not name.startswith("ExecutorState"):  # that one spans the whole step
                    per_type[name.rpartition(":")[2]] += event.duration_ps / 1e12 / steps
    return per_type


def main(argv):
    del argv
    if FLAGS.nvlabs_dir:
        # torch's optimizers import torch._dynamo (and triton); imported after
        # TensorFlow has run, that segfaults in this environment.
        import torch._dynamo  # noqa: F401
    import tensorflow as tf

    from spade_tf import get_preset

    overrides = {"ngf": FLAGS.ngf} if FLAGS.ngf else {}
    if FLAGS.crop_size:
        overrides.update(crop_size=FLAGS.crop_size, load_size=FLAGS.crop_size)
    cfg = get_preset(FLAGS.preset, batch_size=FLAGS.batch_size, use_vgg_loss=FLAGS.use_vgg_loss,
                     **overrides)
    h, w = cfg.image_size
    ids, inst, image = _batch(cfg, FLAGS.batch_size)
    print(f"preset={cfg.preset} image={h}x{w} ngf={cfg.ngf} ndf={cfg.ndf} batch={FLAGS.batch_size} "
          f"VGG loss {'on' if cfg.use_vgg_loss else 'off'} cpus={os.cpu_count()} "
          f"gpus={len(tf.config.list_physical_devices('GPU'))}")
    runs = {}
    for variant in FLAGS.variants:
        runs[variant] = _our_step(cfg, variant, ids, inst, image)
    if FLAGS.nvlabs_dir:
        runs["nvlabs (PyTorch)"] = _nvlabs_step(FLAGS.nvlabs_dir, cfg, ids, inst, image)
    for name, run in runs.items():  # warm-up: tracing, compilation, first allocations
        start = time.perf_counter()
        run()
        run()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{name:>18}: warm-up (2 iterations) {time.perf_counter() - start:6.1f} s, "
              f"peak RSS so far {peak:.0f} MiB", flush=True)
    times = {name: [] for name in runs}
    for _ in range(FLAGS.rounds):
        for name, run in runs.items():
            start = time.perf_counter()
            for _ in range(FLAGS.steps):
                run()
            times[name].append((time.perf_counter() - start) / FLAGS.steps)
    base_name = "nvlabs (PyTorch)" if FLAGS.nvlabs_dir else next(iter(runs))
    base, base_best = statistics.median(times[base_name]), min(times[base_name])
    # Both statistics: other jobs slow PyTorch's OpenMP threads far more than
    # TensorFlow's (rounds of the official step vary 4x on a loaded 2-core
    # machine), so the least-disturbed round is the fairer comparison there.
    print(f"s/iteration (G step + D step) over {FLAGS.rounds} interleaved rounds of "
          f"{FLAGS.steps}: median and best round; ratios to {base_name}:")
    for name, values in times.items():
        median, best = statistics.median(values), min(values)
        print(f"{name:>18}: median {median:6.3f} s/it x{median / base:.2f}  "
              f"best {best:6.3f} s/it x{best / base_best:.2f}  "
              f"({FLAGS.batch_size / best:.2f} img/s; rounds: {', '.join(f'{v:.2f}' for v in values)})")
    if FLAGS.profile_steps:
        name = FLAGS.variants[0]
        per_type = _profile(runs[name], FLAGS.profile_steps)
        total = sum(per_type.values())
        conv = sum(v for k, v in per_type.items() if "Conv2D" in k)
        print(f"{name}: op time {total:.2f} s per step over all threads, convolutions {conv / total:.0%}; "
              "largest op types:")
        for op_type, seconds in per_type.most_common(15):
            print(f"{op_type:>36}: {seconds:6.3f} s ({seconds / total:.1%})")

if __name__ == "__main__":
    app.run(main)
