"""The training workdir: the one module that knows its layout.

::

    <workdir>/
      config.json            the SPADEConfig, written once the data passed validation
      data.json              where the training data was (a ``DataRecord``)
      validated_files.json   the validation pass's cache
      run.lock               pid, host and start time of the run that holds the workdir
      checkpoints/
        checkpoint           TensorFlow's index of the checkpoints (a cache: see below)
        ckpt-<step>.index, ckpt-<step>.data-*
        unreadable/          checkpoints found corrupt, moved aside (never deleted)
      logs/  samples/

Training, export, evaluation, synthesis and the NVlabs importer all read and
write a workdir through this module. The checkpoint files themselves are the
truth: the ``checkpoint`` index is rebuilt from them when it is lost or stale,
a checkpoint that cannot be read is moved aside and the newest readable one
is used, and ``*_temp`` directories left by an interrupted save are removed.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import logging
import os
import re
import shutil
import socket
import time

import keras
import tensorflow as tf

from spade_tf.config import SPADEConfig
from spade_tf.utils.files import atomic_write

log = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
DATA_FILE = "data.json"
LOCK_FILE = "run.lock"
CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_NAME = "ckpt"
UNREADABLE_DIR = "unreadable"
_CKPT_INDEX = re.compile(rf"^{CHECKPOINT_NAME}-(\d+)\.index$")
# What TensorFlow raises for a truncated, missing or corrupt checkpoint file:
# a truncated .data file is a plain IndexError ("Read less bytes than requested").
READ_ERRORS = (tf.errors.OpError, IndexError, ValueError)


class ConfigMismatchError(ValueError):
    """Resuming a workdir with a config that differs from the one it was started with."""


class WorkdirLockedError(RuntimeError):
    """Another live run holds the workdir."""


class CheckpointError(ValueError):
    """A checkpoint cannot be read or written; the message names the file."""


def checkpoint_dir(workdir: str) -> str:
    return os.path.join(workdir, CHECKPOINT_DIR)


def is_workdir(path: str) -> bool:
    return os.path.isfile(os.path.join(path, CONFIG_FILE)) and os.path.isdir(checkpoint_dir(path))


# ---------------------------------------------------------------------------- config

def read_config(workdir: str) -> SPADEConfig:
    """The config a workdir was trained with.

    Raises:
        FileNotFoundError: not a training workdir.
    """
    path = os.path.join(workdir, CONFIG_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{path} does not exist: {workdir} is not a training workdir (train.py writes {CONFIG_FILE})."
        )
    return SPADEConfig.from_json(path)


def check_config(config: SPADEConfig, workdir: str) -> bool:
    """Checks ``config`` against ``<workdir>/config.json``; False when there is none yet.

    Raises:
        ConfigMismatchError: listing every field that differs.
    """
    path = os.path.join(workdir, CONFIG_FILE)
    if not os.path.exists(path):
        return False
    saved = SPADEConfig.from_json(path)
    diffs = [
        f"{f.name}: {getattr(saved, f.name)!r} in {path}, {getattr(config, f.name)!r} now"
        for f in dataclasses.fields(SPADEConfig)
        if getattr(saved, f.name) != getattr(config, f.name)
    ]
    if diffs:
        raise ConfigMismatchError(
            f"Workdir {workdir} was trained with another config; refusing to resume:\n  "
            + "\n  ".join(diffs)
            + "\nUse a new --workdir, or the same settings as before."
        )
    return True


def write_config(config: SPADEConfig, workdir: str) -> None:
    """Writes ``<workdir>/config.json`` (checked first: an existing different config is never replaced)."""
    if check_config(config, workdir):
        return
    os.makedirs(workdir, exist_ok=True)
    atomic_write(os.path.join(workdir, CONFIG_FILE), config.to_json() + "\n")


# ---------------------------------------------------------------------------- data record

@dataclasses.dataclass(frozen=True)
class DataRecord:
    """Where a run's training data was (absolute paths), for export's int8 calibration and evaluation.

    ``dataset_dir`` and the three folders are all None for the built-in synthetic scenes.
    """

    dataset_dir: str | None = None
    dataset_mode: str = "auto"
    image_dir: str | None = None
    label_dir: str | None = None
    instance_dir: str | None = None

    def __post_init__(self):
        for field in ("dataset_dir", "image_dir", "label_dir", "instance_dir"):
            value = getattr(self, field)
            if value:
                object.__setattr__(self, field, os.path.abspath(value))

    @property
    def is_synthetic(self) -> bool:
        return self.dataset_dir is None and not self.uses_folders

    @property
    def uses_folders(self) -> bool:
        """Trained on --image_dir/--label_dir folders (which have no validation split)."""
        return bool(self.image_dir or self.label_dir)


def write_data_record(workdir: str, record: DataRecord) -> None:
    atomic_write(os.path.join(workdir, DATA_FILE), json.dumps(dataclasses.asdict(record), indent=2) + "\n")


def read_data_record(workdir: str) -> DataRecord | None:
    """The workdir's ``DataRecord``, or None when it has none.

    Raises:
        ValueError: the file is not a data record (naming it).
    """
    path = os.path.join(workdir, DATA_FILE)
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            values = json.load(f)
        names = {f.name for f in dataclasses.fields(DataRecord)}
        return DataRecord(**{k: v for k, v in values.items() if k in names})
    except (json.JSONDecodeError, TypeError, AttributeError) as e:
        raise ValueError(f"{path} is not a spade-tf data record ({e}).") from None


# ---------------------------------------------------------------------------- lock

class RunLock:
    """``<workdir>/run.lock``: one run at a time on a workdir.

    The file holds the holder's pid, host and start time. A lock whose
    process is gone (same host) is taken over with a warning; a live one
    makes ``acquire`` raise ``WorkdirLockedError`` naming its pid.
    """

    def __init__(self, workdir: str):
        self.path = os.path.join(workdir, LOCK_FILE)
        self._held = False

    def holder(self) -> dict | None:
        try:
            with open(self.path) as f:
                return json.load(f)
        except FileNotFoundError:
            return None
        except (json.JSONDecodeError, OSError):
            return {}  # half-written by a run killed while taking it: treated as stale

    @staticmethod
    def _alive(info: dict) -> bool:
        if info.get("host") != socket.gethostname():
            return True  # cannot tell from here: assume it runs
        pid = info.get("pid")
        if not isinstance(pid, int):
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def acquire(self) -> None:
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        info = dict(pid=os.getpid(), host=socket.gethostname(), started=time.strftime("%Y-%m-%d %H:%M:%S %Z"))
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self.holder()
                if holder is None:
                    continue  # released meanwhile
                if self._alive(holder):
                    raise WorkdirLockedError(
                        f"{os.path.dirname(self.path)} is in use by another run: pid {holder.get('pid')} on "
                        f"{holder.get('host')}, started {holder.get('started')} ({self.path}). Wait for it to "
                        "finish or use another --workdir; if that process is gone, delete the lock file."
                    ) from None
                log.warning("Taking over %s from a run that is gone (pid %s on %s, started %s).",
                            self.path, holder.get("pid"), holder.get("host"), holder.get("started"))
                os.remove(self.path)
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(info, f)
            self._held = True
            return
        raise WorkdirLockedError(f"Could not take {self.path}: another run keeps taking it.")

    def release(self) -> None:
        if self._held:
            holder = self.holder()
            if holder and holder.get("pid") == os.getpid():
                os.remove(self.path)
            self._held = False

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()


# ---------------------------------------------------------------------------- checkpoints

def checkpoint_objects(model) -> dict:
    """What a training checkpoint holds (the trainer adds the data iterator where it can).

    Anything that writes a checkpoint ``train`` resumes from (the NVlabs
    importer too) saves exactly these objects of a ``SPADEGAN``.
    """
    tracked = dict(
        generator=model.generator, discriminator=model.discriminator,
        g_optimizer=model.g_optimizer, d_optimizer=model.d_optimizer, step=model.step,
    )
    if model.encoder is not None:
        tracked.update(encoder=model.encoder, sampler_seed=model.sampler.seed_generator.state)
    if model.style_encoder is not None:
        tracked.update(style_encoder=model.style_encoder)
    return tracked


def list_checkpoints(directory: str) -> list[tuple[int, str]]:
    """(step, prefix) of every ``ckpt-<step>.index`` in ``directory``, oldest first.

    Read from the files, not from the ``checkpoint`` index, which can be lost.
    """
    if not os.path.isdir(directory):
        return []
    found = []
    for name in os.listdir(directory):
        match = _CKPT_INDEX.match(name)
        if match:
            found.append((int(match.group(1)), os.path.join(directory, name[: -len(".index")])))
    return sorted(found)


def remove_partial_saves(directory: str) -> list[str]:
    """Removes ``*_temp`` directories that an interrupted save left behind; returns them."""
    if not os.path.isdir(directory):
        return []
    removed = [os.path.join(directory, n) for n in os.listdir(directory)
               if n.endswith("_temp") and os.path.isdir(os.path.join(directory, n))]
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    if removed:
        log.warning("Removed %d partial checkpoint save(s) left by an interrupted run: %s",
                    len(removed), ", ".join(os.path.basename(p) for p in removed))
    return removed


def _checkpoint_files(prefix: str) -> list[str]:
    """The files of one checkpoint: ``<prefix>.index`` and its ``<prefix>.data-*`` shards."""
    folder, base = os.path.split(prefix)
    return [os.path.join(folder, name) for name in os.listdir(folder)
            if name == base + ".index" or name.startswith(base + ".data-")]


def _move_aside(prefix: str) -> str:
    directory = os.path.join(os.path.dirname(prefix), UNREADABLE_DIR)
    os.makedirs(directory, exist_ok=True)
    for path in _checkpoint_files(prefix):
        os.replace(path, os.path.join(directory, os.path.basename(path)))
    return os.path.join(directory, os.path.basename(prefix))


def _short(error: Exception) -> str:
    """One line of an error: TensorFlow's ``{{function_node ...}}`` prefixes and tracebacks dropped."""
    text = re.sub(r"\{\{[^}]*\}\}\s*", "", str(error)).strip()
    text = text.splitlines()[0] if text else type(error).__name__
    return text[:300]


def restore_latest(checkpoint: tf.train.Checkpoint, directory: str,
                   repair: bool = True) -> tuple[str | None, list[str]]:
    """Restores the newest readable checkpoint of ``directory`` into ``checkpoint``.

    Newer checkpoints that cannot be read (truncated, missing ``.data``) are
    skipped with a warning naming each. With ``repair`` (the run that holds
    the workdir; not the other workers of a multi-worker run) they are moved
    into ``unreadable/`` and the index file is rewritten to list the readable
    checkpoints with the restored one last, so that
    ``tf.train.CheckpointManager`` keeps managing all of them.

    Returns:
        (the restored prefix or None, warnings about checkpoints moved aside).

    Raises:
        AssertionError: a readable checkpoint lacks objects of ``checkpoint``
            (a workdir from an incompatible version).
    """
    found = list_checkpoints(directory)
    warnings = []
    restored = None
    while found:
        step, prefix = found.pop()
        try:
            checkpoint.read(prefix).expect_partial().assert_existing_objects_matched()
        except READ_ERRORS as e:
            where = f"moved to {_move_aside(prefix)}" if repair else "skipped"
            warnings.append(f"{os.path.basename(prefix)} is unreadable ({_short(e)}); {where}")
            continue
        restored = prefix
        break
    if restored is not None and repair:
        paths = [p for _, p in found] + [restored]
        tf.compat.v1.train.update_checkpoint_state(directory, restored, all_model_checkpoint_paths=paths)
    for warning in warnings:
        log.warning(warning)
    return restored, warnings


def find_checkpoint(workdir: str, checkpoint: str | int | None = None) -> str:
    """The checkpoint prefix to read: the newest (from the files), a step number or a path.

    Raises:
        FileNotFoundError: naming what is missing.
    """
    directory = checkpoint_dir(workdir)
    if checkpoint is None:
        found = list_checkpoints(directory)
        if not found:
            raise FileNotFoundError(
                f"No checkpoint in {directory}: train first (python train.py --workdir={workdir})."
            )
        return found[-1][1]
    if isinstance(checkpoint, int) or str(checkpoint).isdigit():
        path = os.path.join(directory, f"{CHECKPOINT_NAME}-{int(checkpoint)}")
    else:
        path = str(checkpoint)
    if not tf.io.gfile.exists(path + ".index"):
        raise FileNotFoundError(f"Checkpoint {path} does not exist (no {path}.index).")
    return path


@dataclasses.dataclass
class Restored:
    """A generator (and a VAE model's style encoder) restored from a training checkpoint."""

    config: SPADEConfig
    generator: keras.Model
    step: int
    checkpoint: str
    encoder: keras.Model | None = None  # with use_vae
    style_encoder: keras.Model | None = None  # SEAN's Zencoder (norm_mode="sean")


def load_generator(workdir: str, checkpoint: str | int | None = None) -> Restored:
    """Builds the generator of ``<workdir>/config.json`` and restores its weights.

    Spectral-norm vectors and batch-norm moving statistics come with the
    weights. The generator is built in float32 whatever precision it was
    trained in (mixed-precision variables are float32 already). A VAE
    model's style encoder is restored beside it (evaluation encodes the real
    images, export writes its ``encode_style`` signature), and so is a SEAN
    model's Zencoder (``style_encoder``: a photo's per-region style codes).

    Raises:
        FileNotFoundError: no config or checkpoint.
        CheckpointError: the checkpoint cannot be read (naming it and the others).
        AssertionError: the checkpoint lacks some generator (or encoder) variable.
    """
    from spade_tf.models import build_encoder, build_generator
    from spade_tf.models.sean_encoder import build_sean_encoder

    config = read_config(workdir)
    path = find_checkpoint(workdir, checkpoint)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        generator = build_generator(config)
        encoder = build_encoder(config) if config.use_vae else None
        style_encoder = build_sean_encoder(config) if config.norm_mode == "sean" else None
    finally:
        keras.config.set_dtype_policy(previous)
    step = tf.Variable(0, dtype=tf.int64)
    networks = dict(generator=generator, encoder=encoder, style_encoder=style_encoder)
    networks = {k: v for k, v in networks.items() if v is not None}
    try:
        status = tf.train.Checkpoint(**networks, step=step).read(path)
    except READ_ERRORS as e:
        others = [f"{s}" for s, p in list_checkpoints(checkpoint_dir(workdir)) if p != path]
        hint = (f"pick another with --checkpoint=<step> (present: {', '.join(others)})" if others
                else "no other checkpoint is present")
        raise CheckpointError(f"Checkpoint {path} is unreadable ({_short(e)}); {hint}.") from None
    status.expect_partial().assert_existing_objects_matched()
    return Restored(config, generator, int(step.numpy()), path, encoder, style_encoder)


def save_checkpoint(manager: tf.train.CheckpointManager, step: int) -> str:
    """``manager.save`` that leaves nothing half-written behind.

    A failed save (a full disk, a directory gone read-only) removes its
    ``ckpt-<step>_temp`` directory and any partial ``ckpt-<step>`` files, so
    the index still names the last good checkpoint.

    Raises:
        CheckpointError: naming the path and the cause ("no space left on device").
    """
    prefix = os.path.join(manager.directory, f"{CHECKPOINT_NAME}-{step}")
    try:
        return manager.save(checkpoint_number=step)
    except (tf.errors.OpError, OSError) as e:
        shutil.rmtree(prefix + "_temp", ignore_errors=True)
        for path in _checkpoint_files(prefix):
            os.remove(path)
        last = manager.latest_checkpoint
        full = str(e).lower()
        if "no space left" in full or getattr(e, "errno", None) == errno.ENOSPC:
            cause = "no space left on device"
        elif "read-only file system" in full or getattr(e, "errno", None) == errno.EROFS:
            cause = "read-only file system"
        else:
            cause = _short(e)
        raise CheckpointError(
            f"Could not save checkpoint {prefix}: {cause}. "
            + (f"The last good checkpoint is {last}." if last else "No checkpoint was saved yet.")
        ) from None


def _copy_variables(source: keras.Model, target: keras.Model, what: str):
    src, dst = source.variables, target.variables
    problems = [] if len(src) == len(dst) else [f"{len(src)} variables, the model has {len(dst)}"]
    for s, d in zip(src, dst):
        if problems:
            break
        if s.path != d.path or tuple(s.shape) != tuple(d.shape):
            problems.append(f"{s.path} {tuple(s.shape)} where the model has {d.path} {tuple(d.shape)}")
    if problems:
        raise ValueError(f"The imported {what} was not built from this config: {problems[0]}.")
    for s, d in zip(src, dst):
        d.assign(s.value)


def write_initial_checkpoint(config: SPADEConfig, workdir: str, generator: keras.Model,
                             discriminator: keras.Model | None = None,
                             encoder: keras.Model | None = None,
                             style_encoder: keras.Model | None = None) -> str:
    """Writes networks trained elsewhere as step 0 of a workdir that ``train`` resumes.

    Builds ``SPADEGAN(config)`` with its optimizers exactly as the trainer
    does, copies the networks in (a missing discriminator, VAE encoder or
    SEAN style encoder stays freshly initialized, which is logged) and saves ``checkpoints/ckpt-0``
    with the objects of ``checkpoint_objects``, then ``config.json``: the
    checkpoint first, since a workdir with a config but no checkpoint would
    make the trainer start from scratch, silently dropping the import. The
    optimizers start empty.

    Returns:
        The checkpoint's path prefix.

    Raises:
        FileExistsError: the workdir already has a checkpoint.
        ConfigMismatchError: its config.json differs from ``config``.
        WorkdirLockedError: a run holds the workdir.
        ValueError: an encoder without ``use_vae``, a style encoder without
            ``norm_mode="sean"``, or a network built from another config.
    """
    from spade_tf.training.gan import SPADEGAN, make_optimizers  # the trainer's model, built lazily

    directory = checkpoint_dir(workdir)
    existing = list_checkpoints(directory)
    if existing:
        raise FileExistsError(
            f"{workdir} already has a training checkpoint ({existing[-1][1]}); import into a new workdir."
        )
    if encoder is not None and not config.use_vae:
        raise ValueError("An encoder was given but the config has use_vae=False.")
    if style_encoder is not None and config.norm_mode != "sean":
        raise ValueError(f"A style encoder was given but the config has norm_mode={config.norm_mode!r}.")
    check_config(config, workdir)
    model = SPADEGAN(config)
    g_opt, d_opt = make_optimizers(config, steps_per_epoch=1)  # the schedule is not saved
    model.compile(g_optimizer=g_opt, d_optimizer=d_opt)
    model.build_optimizers()
    _copy_variables(generator, model.generator, "generator")
    if discriminator is not None:
        _copy_variables(discriminator, model.discriminator, "discriminator")
    else:
        log.warning("No discriminator checkpoint: the discriminator in %s is freshly initialized.", directory)
    if config.use_vae:
        if encoder is not None:
            _copy_variables(encoder, model.encoder, "encoder")
        else:
            log.warning("No encoder checkpoint: the VAE encoder in %s is freshly initialized.", directory)
    if config.norm_mode == "sean":
        if style_encoder is not None:
            _copy_variables(style_encoder, model.style_encoder, "style encoder")
        else:
            log.warning("No style encoder: SEAN's Zencoder in %s is freshly initialized.", directory)
    with RunLock(workdir):
        manager = tf.train.CheckpointManager(
            tf.train.Checkpoint(**checkpoint_objects(model)), directory, max_to_keep=None,
            checkpoint_name=CHECKPOINT_NAME, step_counter=model.step,
        )
        path = save_checkpoint(manager, int(model.step.numpy()))
        write_config(config, workdir)
    log.info("Wrote %s (step 0): train with --workdir=%s to continue.", path, workdir)
    return path
