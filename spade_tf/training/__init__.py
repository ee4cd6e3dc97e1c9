"""Training: the GAN model, its optimizers and schedule, the loop."""

from spade_tf.training.gan import SPADEGAN, make_optimizers, segmap_from_batch
from spade_tf.training.schedules import ConstantThenLinearDecay
from spade_tf.training.trainer import (
    ConfigMismatchError, TrainingDivergedError, TrainOptions, check_or_write_config, checkpoint_objects,
    train,
)

__all__ = [
    "ConfigMismatchError", "ConstantThenLinearDecay", "SPADEGAN", "TrainOptions",
    "TrainingDivergedError", "check_or_write_config", "checkpoint_objects", "make_optimizers", "segmap_from_batch", "train",
]
