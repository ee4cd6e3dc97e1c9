"""The training loop: data, GAN, tf.distribute, checkpoints, logs, samples.

``train(config, options)`` is what ``train.py`` runs. Re-running it on the same
workdir resumes from the latest checkpoint. A run killed at any moment loses
at most the steps since its last checkpoint: TensorFlow writes a checkpoint's
files before it atomically updates the ``checkpoint`` index file, so the index
never names a partial checkpoint.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import shutil
import signal
import threading
import time
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from spade_tf.config import MIXED_PRECISION, VAE_PROTOCOLS, SPADEConfig
from spade_tf.data import find_files, validate_files
from spade_tf.data.layouts import DatasetFiles
from spade_tf.data.pipeline import build_dataset
from spade_tf.training.distribute import get_strategy, worker_info
from spade_tf.training.gan import SPADEGAN, conditions_from_batch, make_optimizers
from spade_tf.training.loop import Action, run_loop
from spade_tf.utils.visualize import colorize, save_png, to_uint8
from spade_tf.workdir import (
    CHECKPOINT_NAME,
    DataRecord,
    RunLock,
    check_config,
    checkpoint_dir,
    checkpoint_objects,
    remove_partial_saves,
    restore_latest,
    save_checkpoint,
    write_config,
    write_data_record,
)


class TrainingDivergedError(RuntimeError):
    """A loss became NaN or infinite."""


class TrainingStopped(RuntimeError):
    """SIGTERM or Ctrl-C stopped the run after saving a checkpoint at the current step.

    Attributes:
        signal_name: "SIGTERM" or "SIGINT".
        step: the step reached (and saved).
        checkpoint: the checkpoint holding it (None if none could be saved).
    """

    def __init__(self, signal_name: str, step: int, checkpoint: str | None):
        self.signal_name, self.step, self.checkpoint = signal_name, step, checkpoint
        saved = f"saved {checkpoint}" if checkpoint else "no checkpoint saved"
        super().__init__(f"stopped by {signal_name} at step {step}: {saved}; run the same command to resume.")

    @property
    def exit_code(self) -> int:
        """128 + the signal number, the shell's convention (schedulers restart on it)."""
        return 128 + int(getattr(signal, self.signal_name))


@dataclasses.dataclass(frozen=True)
class TrainOptions:
    """Settings of a run (the model's settings are in ``SPADEConfig``)."""

    workdir: str = "runs/synthetic"
    dataset_dir: str | None = None  # None: the built-in synthetic scenes
    dataset_mode: str = "auto"
    image_dir: str | None = None
    label_dir: str | None = None
    instance_dir: str | None = None
    max_steps: int | None = None  # default: epochs * steps per epoch
    epochs: int | None = None  # default: niter + niter_decay
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    log_every: int = 50
    sample_every: int = 500
    seed: int = 0
    mixed_precision: str = "none"
    jit_compile: bool = False
    skip_bad_pairs: bool = False
    num_synthetic: int = 1000
    verbose: bool = True
    # FID/KID on a fixed validation subset every eval_every steps (TensorBoard eval/*).
    eval_every: int | None = None
    eval_images: int = 64
    inception_weights: str | None = None  # None: random InceptionV3 (warned; scores not comparable)
    vae_protocol: str = "encode"  # VAE models' style in that evaluation (evaluation.styles), as evaluate.py

    def __post_init__(self):
        if self.mixed_precision not in MIXED_PRECISION:
            raise ValueError(
                f"mixed_precision={self.mixed_precision!r} is not valid; expected one of {list(MIXED_PRECISION)}."
            )
        for name in ("checkpoint_every", "keep_checkpoints", "log_every", "sample_every", "num_synthetic"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} is not valid; expected >= 1.")
        if self.eval_images < 2:
            raise ValueError(f"eval_images={self.eval_images} is not valid; FID needs at least 2.")
        if self.vae_protocol not in VAE_PROTOCOLS:
            raise ValueError(f"vae_protocol={self.vae_protocol!r} is not valid; expected one of {list(VAE_PROTOCOLS)}.")
        for name in ("max_steps", "epochs", "eval_every"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name}={value} is not valid; expected >= 1.")


def _files(options: TrainOptions, config: SPADEConfig, split: str) -> DatasetFiles:
    if options.dataset_dir is None and options.image_dir is None:
        return find_files(dataset_mode="synthetic")
    return find_files(
        options.dataset_dir, options.dataset_mode, split, config.use_instance_map,
        options.image_dir if split == "train" else None,
        options.label_dir if split == "train" else None,
        options.instance_dir if split == "train" else None,
    )


def _sample_grid(model, batch, config):
    """uint8 rows of colour-coded label | generated | real for a batch."""
    inputs = conditions_from_batch(batch, config)
    if config.use_vae or config.norm_mode == "sean":  # the style of the real image
        inputs["image"] = batch["image"]
    fake = to_uint8(keras.ops.convert_to_numpy(model(inputs, training=False)))
    rows = [
        np.concatenate([colorize(label), f, to_uint8(real)], axis=1)
        for label, f, real in zip(batch["label"], fake, batch["image"])
    ]
    return np.concatenate(rows, axis=0)


def _data_record(options: TrainOptions) -> DataRecord:
    return DataRecord(options.dataset_dir, options.dataset_mode, options.image_dir, options.label_dir,
                      options.instance_dir)


def _periodic_evaluator(options: TrainOptions, config: SPADEConfig, model: SPADEGAN):
    """(evaluator, generate) for ``eval_every``: a fixed validation subset, InceptionV3."""
    # Imported only when asked for: evaluation needs SciPy and builds InceptionV3.
    from spade_tf.evaluation.periodic import PeriodicEvaluator, generate_with_model

    if options.image_dir:
        raise ValueError(
            "eval_every needs a validation split, which --image_dir/--label_dir folders do not have; "
            "use --dataset_dir (a layout with a val split) or leave eval_every unset."
        )
    files = validate_files(_files(options, config, "val"), config)
    evaluator = PeriodicEvaluator(
        config, files, options.eval_images, inception_weights=options.inception_weights,
        batch_size=min(8, options.eval_images), seed=options.seed,
    )
    return evaluator, generate_with_model(model, config, options.vae_protocol)


class _StopRequest:
    """Turns SIGTERM and Ctrl-C into a flag the loop checks after each step (main thread only).

    Ctrl-C used to rely on ``KeyboardInterrupt``, which Python raises wherever
    the main thread is when the signal lands: inside a callback whose
    exceptions are ignored it was lost and the run went on to the end (seen
    once in CI). A second Ctrl-C raises ``KeyboardInterrupt`` at once, for a
    step that does not finish.

    Single-process runs only: a multi-worker run must save on every worker at
    the same step, which ``tf.distribute.experimental.PreemptionCheckpointHandler``
    coordinates (see ``_train``).
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.signal_name = None
        self._previous = {}

    def _handler(self, signum, frame):
        del frame
        if signum == signal.SIGINT and self.signal_name == "SIGINT":
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(signum).name

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handler) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc):
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)


def train(config: SPADEConfig, options: TrainOptions, strategy: tf.distribute.Strategy | None = None) -> dict:
    """Trains (or resumes) a SPADE model; returns a summary dict.

    Raises:
        ConfigMismatchError, DataError, TrainingDivergedError, WorkdirLockedError,
        CheckpointError (a save failed; nothing saved before is lost),
        TrainingStopped (SIGTERM or Ctrl-C; the current step was saved).
    """
    log = print if options.verbose else (lambda *a, **k: None)
    strategy = strategy or get_strategy()
    is_chief, task_id = worker_info(strategy)
    workdir = options.workdir
    global_batch = config.batch_size
    replicas = strategy.num_replicas_in_sync
    if global_batch % replicas:
        raise ValueError(f"batch_size={global_batch} is not divisible by the {replicas} replicas.")
    # Only the chief holds the lock: the other workers of a multi-worker run
    # share the workdir with it.
    lock = RunLock(workdir) if is_chief else None
    if lock is not None:
        lock.acquire()
    try:
        # Every worker checks, so that a mismatch stops them all with this error
        # (not only the chief, leaving the others to fail in a collective op).
        resumed = check_config(config, workdir)
        files = validate_files(
            _files(options, config, "train"), config, skip_bad_pairs=options.skip_bad_pairs,
            cache_path=os.path.join(workdir, "validated_files.json") if is_chief else None,
        )
        if is_chief:  # only now: a run that failed on its data must not pin the workdir's config
            write_config(config, workdir)
            write_data_record(workdir, _data_record(options))
        examples = options.num_synthetic if files.mode == "synthetic" else len(files)
        steps_per_epoch = max(1, math.ceil(examples / global_batch))
        epochs = options.epochs or (config.niter + config.niter_decay)
        max_steps = options.max_steps or epochs * steps_per_epoch
        log(f"data: {files.mode}, {examples} examples, {steps_per_epoch} steps per epoch, "
            f"{max_steps} steps, global batch {global_batch} on {replicas} replica(s)")

        previous_policy = keras.config.dtype_policy()
        if options.mixed_precision != "none":
            keras.config.set_dtype_policy(options.mixed_precision)
        try:
            return _train(config, options, strategy, is_chief, task_id, resumed, files, steps_per_epoch,
                          max_steps, log)
        finally:
            keras.config.set_dtype_policy(previous_policy)
    finally:
        if lock is not None:
            lock.release()


@dataclasses.dataclass
class _Run:
    """What the pieces of one run share."""

    config: SPADEConfig
    options: TrainOptions
    strategy: tf.distribute.Strategy
    is_chief: bool
    task_id: int
    files: DatasetFiles
    log: Callable

    @property
    def multi_worker(self) -> bool:
        return isinstance(self.strategy, tf.distribute.MultiWorkerMirroredStrategy)

    @property
    def distributed(self) -> bool:
        return self.multi_worker or self.strategy.num_replicas_in_sync > 1


def _build_model(run: _Run, steps_per_epoch: int) -> SPADEGAN:
    with run.strategy.scope():
        model = SPADEGAN(run.config)
        g_opt, d_opt = make_optimizers(run.config, steps_per_epoch, run.options.mixed_precision == "mixed_float16")
        model.compile(g_optimizer=g_opt, d_optimizer=d_opt)
        model.build_optimizers()
    return model


def _restore(run: _Run, model: SPADEGAN, resumed: bool) -> str | None:
    """Restores the newest readable checkpoint; returns its prefix (None: a fresh start)."""
    ckpt_dir = checkpoint_dir(run.options.workdir)
    if run.is_chief:
        remove_partial_saves(ckpt_dir)
    latest, warnings = restore_latest(tf.train.Checkpoint(**checkpoint_objects(model)), ckpt_dir,
                                      repair=run.is_chief)
    for warning in warnings:
        run.log(warning)
    if latest:
        run.log(f"resumed from step {int(model.step.numpy())} ({latest})")
    elif resumed and run.is_chief:
        run.log(f"{run.options.workdir} has a config but no checkpoint: starting from step 0")
    return latest


def _input(run: _Run, start_step: int):
    """(iterator, whether its position can be checkpointed)."""
    # The data iterator's position is checkpointed where tf.data can serialize
    # it (files, one replica): a resume then sees exactly the batches it would
    # have. Elsewhere (the synthetic scenes come from a py_function; distributed
    # iterators) the stream restarts with a seed derived from the resumed step.
    save_iterator = not run.distributed and run.files.mode != "synthetic"
    seed = run.options.seed if save_iterator else run.options.seed + start_step

    def dataset_fn(input_context):
        return build_dataset(
            run.config, run.files, training=True,
            batch_size=input_context.get_per_replica_batch_size(run.config.batch_size),
            seed=seed, input_context=input_context, num_synthetic=run.options.num_synthetic,
        )

    if run.distributed:
        return iter(run.strategy.distribute_datasets_from_function(dataset_fn)), save_iterator
    return iter(dataset_fn(tf.distribute.InputContext())), save_iterator


def _step_function(run: _Run, model: SPADEGAN, iterator):
    """One distributed training step; returns (the step reached, its losses as floats)."""
    strategy = run.strategy
    replica_fn = model.train_step
    if run.options.jit_compile:
        replica_fn = tf.function(replica_fn, jit_compile=True, autograph=False)

    # No AutoGraph: the step has no Python control flow on tensors (layers,
    # models and losses are backend-neutral keras.ops; train_step uses
    # tf.cond), and converting its ~200 functions was a third of the trace.
    @tf.function(autograph=False)
    def train_step(it):
        per_replica = strategy.run(replica_fn, args=(next(it),))
        return {k: strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None) for k, v in per_replica.items()}

    def step_fn():
        logs = {k: float(v) for k, v in train_step(iterator).items()}
        return int(model.step.numpy()), logs

    return step_fn


class _Checkpoints:
    """Saving: periodic, on a signal, and where a non-chief worker's copies go."""

    def __init__(self, run: _Run, model: SPADEGAN, tracked: dict, latest: str | None):
        self.workdir = run.options.workdir
        directory = checkpoint_dir(self.workdir)
        if not run.is_chief:  # other workers must save too, but somewhere temporary
            directory = os.path.join(directory, f"worker_tmp_{run.task_id}")
        self.directory, self.is_chief, self.model = directory, run.is_chief, model
        self.manager = tf.train.CheckpointManager(
            tf.train.Checkpoint(**tracked), directory, max_to_keep=run.options.keep_checkpoints,
            checkpoint_name=CHECKPOINT_NAME, step_counter=model.step,
        )
        self.last_saved = int(model.step.numpy()) if latest else None

    def save(self, step=None, logs=None) -> str | None:
        """Saves the model's current step unless it is saved already; returns the chief's path."""
        current = int(self.model.step.numpy())
        if current != self.last_saved:
            save_checkpoint(self.manager, current)
            self.last_saved = current
        return self.latest

    @property
    def latest(self) -> str | None:
        """The chief's checkpoint of the latest step: a non-chief's own copy is deleted at the end."""
        path = self.manager.latest_checkpoint
        return os.path.join(checkpoint_dir(self.workdir), os.path.basename(path)) if path else None

    def close(self):
        if not self.is_chief:
            shutil.rmtree(self.directory, ignore_errors=True)


def _divergence_check(checkpoints: _Checkpoints):
    def check(step, logs):
        bad = {k: v for k, v in logs.items() if not math.isfinite(v)}
        if bad:
            where = (f"the last good checkpoint is ckpt-{checkpoints.last_saved}"
                     if checkpoints.last_saved is not None else "no checkpoint was saved yet")
            raise TrainingDivergedError(
                f"Loss {', '.join(f'{k}={v}' for k, v in bad.items())} at step {step}: training "
                f"stopped; nothing after the bad step was saved ({where} in {checkpoints.directory})."
            )
    return check


class _Summaries:
    """TensorBoard scalars (chief only) every ``log_every`` steps; resets the loss trackers."""

    def __init__(self, run: _Run, model: SPADEGAN, writer):
        self.model, self.writer, self.batch = model, writer, run.config.batch_size
        self.window_start, self.window_steps = time.perf_counter(), 0

    def count(self, step, logs):
        self.window_steps += 1

    def write(self, step, logs):
        elapsed = time.perf_counter() - self.window_start
        if self.writer is not None:
            with self.writer.as_default(step=step):
                for k, v in logs.items():
                    tf.summary.scalar(f"loss/{k}", v)
                for name, opt in (("G", self.model.g_optimizer), ("D", self.model.d_optimizer)):
                    tf.summary.scalar(f"learning_rate/{name}", float(opt.learning_rate))
                tf.summary.scalar("images_per_second", self.window_steps * self.batch / max(elapsed, 1e-9))
        for tracker in self.model.trackers.values():
            tracker.reset_state()
        self.window_start, self.window_steps = time.perf_counter(), 0


def _sampler(run: _Run, model: SPADEGAN, writer):
    """Writes ``samples/step_<step>.png`` (and a TensorBoard image) of a fixed batch."""
    samples_dir = os.path.join(run.options.workdir, "samples")
    os.makedirs(samples_dir, exist_ok=True)
    batch = next(iter(build_dataset(run.config, run.files, training=False,
                                    batch_size=min(4, run.config.batch_size), num_synthetic=4)))
    batch = {k: v.numpy() for k, v in batch.items()}

    def sample(step, logs):
        grid = _sample_grid(model, batch, run.config)
        save_png(grid, os.path.join(samples_dir, f"step_{step:08d}.png"))
        with writer.as_default(step=step):
            tf.summary.image("label|generated|real", grid[None], max_outputs=1)
    return sample


def _evaluation(run: _Run, model: SPADEGAN, writer):
    evaluator, generate = _periodic_evaluator(run.options, run.config, model)

    def evaluate(step, logs):
        scores = evaluator(generate, step, writer)
        run.log(f"\nstep {step}: FID {scores['fid']:.3f}, KID {scores['kid_mean']:.5f} on "
                f"{evaluator.num_images} validation images ({scores['seconds']:.0f} s)")
    return evaluate


def _stop_on_signal(run: _Run, model: SPADEGAN, checkpoints: _Checkpoints, stack: contextlib.ExitStack):
    """The action that ends the run after SIGTERM, having saved the step."""
    if run.multi_worker:
        # Every worker must save at the same step (a save is a collective op):
        # TensorFlow's handler agrees on that step across the cluster.
        def stop_after_save():
            raise TrainingStopped("SIGTERM", int(model.step.numpy()), checkpoints.latest)

        handler = tf.distribute.experimental.PreemptionCheckpointHandler(
            run.strategy.cluster_resolver, checkpoints.manager,
            termination_config=tf.distribute.experimental.TerminationConfig(exit_fn=stop_after_save,
                                                                            grace_period=0),
        )
        return lambda step, logs: handler.save_checkpoint_if_preempted(checkpoint_number=step)
    request = stack.enter_context(_StopRequest())

    def stop(step, logs):
        if request.signal_name:
            raise TrainingStopped(request.signal_name, step, checkpoints.save())
    return stop


def _train(config, options, strategy, is_chief, task_id, resumed, files, steps_per_epoch, max_steps, log):
    run = _Run(config, options, strategy, is_chief, task_id, files, log)
    model = _build_model(run, steps_per_epoch)
    latest = _restore(run, model, resumed)
    start_step = int(model.step.numpy())
    iterator, save_iterator = _input(run, start_step)
    tracked = checkpoint_objects(model)
    if save_iterator:
        tracked["data_iterator"] = iterator
        if latest:
            tf.train.Checkpoint(data_iterator=iterator).read(latest).expect_partial()
    checkpoints = _Checkpoints(run, model, tracked, latest)
    if start_step >= max_steps:
        log(f"already at step {start_step} >= max_steps {max_steps}: nothing to do")
        return {"step": start_step, "resumed": bool(latest), "logs": {}}

    writer = tf.summary.create_file_writer(os.path.join(options.workdir, "logs")) if is_chief else None
    summaries = _Summaries(run, model, writer)
    progbar = keras.utils.Progbar(max_steps, stateful_metrics=list(model.trackers), verbose=int(options.verbose))
    progbar.update(start_step)
    with contextlib.ExitStack() as stack:
        actions = [
            Action("divergence check", 1, _divergence_check(checkpoints)),
            Action("progress", 1, lambda step, logs: progbar.update(step, list(logs.items()))),
            Action("throughput window", 1, summaries.count),
            Action("summaries", options.log_every, summaries.write),
        ]
        if is_chief:
            actions.append(Action("samples", options.sample_every, _sampler(run, model, writer)))
            if options.eval_every:
                actions.append(Action("evaluation", options.eval_every, _evaluation(run, model, writer)))
        actions += [
            Action("checkpoint", options.checkpoint_every, checkpoints.save),
            Action("stop on signal", 1, _stop_on_signal(run, model, checkpoints, stack)),
        ]
        try:
            step, logs = run_loop(_step_function(run, model, iterator), start_step, max_steps, actions)
        except KeyboardInterrupt:
            saved = None if run.multi_worker else checkpoints.save()
            raise TrainingStopped("SIGINT", int(model.step.numpy()), saved) from None
        finally:
            if writer is not None:
                writer.flush()
            checkpoints.close()
    return {"step": step, "resumed": bool(latest), "logs": logs, "checkpoint": checkpoints.latest}
