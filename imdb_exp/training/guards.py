"""Keras callbacks that end training early, by an exception, so the MLflow run keeps what was logged.

A loss no longer finite ends it FAILED with the reason, rather than fitting NaNs to the end;
a SIGINT or SIGTERM ends it KILLED at the end of the batch it arrived in.

Both are `async_safe`: on backends whose Keras callbacks may run on a worker thread (JAX, PyTorch),
a batch-end callback without it makes Keras wait for every batch's loss on the main thread, a host
sync per step. With it, the check runs beside the next step and its exception reaches `fit` at the
next batch end (or the epoch's end), one batch later at most. TensorFlow always calls them in order.
"""

import math

import keras

from imdb_exp.errors import UserError
from imdb_exp.runtime.interrupts import Interrupts


class NonFiniteLoss(UserError):
    pass


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    async_safe = True

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        self.epoch = epoch + 1

    def on_train_batch_end(self, batch: int, logs=None) -> None:
        loss = float((logs or {}).get("loss", 0.0))
        if not math.isfinite(loss):
            raise NonFiniteLoss(
                f"training loss became {loss} in epoch {self.epoch}, batch {batch + 1}; "
                "lower optimizer.learning_rate (or check the data)"
            )


class InterruptAtBatchEnd(keras.callbacks.Callback):
    async_safe = True

    def __init__(self, interrupts: Interrupts):
        super().__init__()
        self.interrupts = interrupts

    def on_train_batch_end(self, batch: int, logs=None) -> None:
        self.interrupts.raise_pending()

    on_test_batch_end = on_predict_batch_end = on_train_batch_end
