"""Training: the GAN model, its optimizers and schedule, the loop."""

from spade_tf.training.gan import SPADEGAN, conditions_from_batch, make_optimizers, segmap_from_batch
from spade_tf.training.schedules import ConstantThenLinearDecay
from spade_tf.training.trainer import TrainingDivergedError, TrainingStopped, TrainOptions, train
from spade_tf.workdir import ConfigMismatchError, WorkdirLockedError

__all__ = [
    "ConfigMismatchError", "ConstantThenLinearDecay", "SPADEGAN", "TrainOptions",
    "TrainingDivergedError", "TrainingStopped", "WorkdirLockedError", "conditions_from_batch",
    "make_optimizers", "segmap_from_batch", "train",
]
