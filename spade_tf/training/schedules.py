"""Learning-rate schedule of the official trainer."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="spade_tf")
class ConstantThenLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Constant for ``niter`` epochs, then linear decay to 0 over ``niter_decay``.

    As NVlabs ``Pix2PixTrainer.update_learning_rate``, which runs at the end of
    every epoch ``e`` (1-based) and subtracts ``lr / niter_decay`` once
    ``e > niter``: during epoch ``e`` the rate is
    ``lr * max(0, 1 - max(0, e - 1 - niter) / niter_decay)``.
    """

    def __init__(self, initial_learning_rate, steps_per_epoch, niter, niter_decay):
        if steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch={steps_per_epoch} is not valid; expected >= 1.")
        self.initial_learning_rate = float(initial_learning_rate)
        self.steps_per_epoch = int(steps_per_epoch)
        self.niter = int(niter)
        self.niter_decay = int(niter_decay)

    def __call__(self, step):
        epoch = ops.floor_divide(ops.cast(step, "float32"), float(self.steps_per_epoch)) + 1.0
        if self.niter_decay == 0:
            return ops.cast(self.initial_learning_rate, "float32") * ops.ones_like(epoch)
        decayed = ops.maximum(epoch - 1.0 - self.niter, 0.0) / self.niter_decay
        return self.initial_learning_rate * ops.maximum(1.0 - decayed, 0.0)

    def get_config(self):
        return dict(
            initial_learning_rate=self.initial_learning_rate,
            steps_per_epoch=self.steps_per_epoch,
            niter=self.niter,
            niter_decay=self.niter_decay,
        )
