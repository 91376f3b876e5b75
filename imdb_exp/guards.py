"""Stop training when the loss is no longer finite, rather than fitting NaNs to the end.

It ends in an exception, so the MLflow run is FAILED with the reason and keeps what was logged.
"""

import math

import keras

from imdb_exp.schema import UserError


class NonFiniteLoss(UserError):
    pass


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        self.epoch = epoch + 1

    def on_train_batch_end(self, batch: int, logs=None) -> None:
        loss = float((logs or {}).get("loss", 0.0))
        if not math.isfinite(loss):
            raise NonFiniteLoss(
                f"training loss became {loss} in epoch {self.epoch}, batch {batch + 1}; "
                "lower optimizer.learning_rate (or check the data)"
            )
