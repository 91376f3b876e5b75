"""The training loop: one Keras fit per epoch, early stopping at the lowest validation loss.

Each epoch's order of the training reviews is drawn from (seed, epoch). Keras' own shuffling draws
from a generator whose state depends on how many epochs this process has run, so a run resumed
at epoch 5 would see other batches than one that got there without a break. With the order fixed
by the epoch, and the dropout layers' random state saved as a model variable (checkpoints.py), a
resumed run ends with the same weights as an uninterrupted one.
"""

import time

import keras
import numpy as np

from imdb_exp.config.schema import TrainerConfig
from imdb_exp.data.splits import Dataset
from imdb_exp.training.checkpoints import Progress, set_torch_generators
from imdb_exp.training.epoch_end import EpochEnd
from imdb_exp.training.guards import NonFiniteLoss


def epoch_order(seed: int, epoch: int, size: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(size)


def fit(
    model: keras.Model,
    dataset: Dataset,
    trainer: TrainerConfig,
    progress: Progress,
    callbacks: list[keras.callbacks.Callback],
    epoch_ends: list[EpochEnd],
    verbose: int,
) -> Progress:
    """Trains on from ``progress`` (updating it) until trainer.epochs or until an epoch end stops it."""
    train, val = dataset.train, dataset.val
    callbacks = [*callbacks, RunProgressLines(trainer.epochs)]
    if progress.torch_generators:
        callbacks.append(TorchGeneratorsAtStart(progress))
    while progress.epochs_done < trainer.epochs and not any(end.stops(progress) for end in epoch_ends):
        epoch = progress.epochs_done
        order = epoch_order(trainer.seed, epoch if trainer.shuffle else 0, len(train))
        started = time.perf_counter()
        try:
            logs = fit_one_epoch(model, train, val, order, epoch, trainer, callbacks, verbose)
        except RuntimeError as err:
            # PyTorch's binary cross-entropy refuses probabilities that are not in [0, 1] (NaN, once
            # training has diverged) before a batch's loss exists for StopOnNonFiniteLoss to see.
            if "should be between 0 and 1" not in str(err):
                raise
            raise NonFiniteLoss(
                f"training loss became non-finite in epoch {epoch + 1} ({err}); "
                "lower optimizer.learning_rate (or check the data)"
            ) from None
        seconds = time.perf_counter() - started
        metrics = {name: float(values[-1]) for name, values in logs.items()} | {"epoch_seconds": seconds}
        record_epoch(progress, metrics)
        for end in epoch_ends:
            end.after_epoch(progress)
    for end in epoch_ends:
        end.at_fit_end(progress)
    return progress


def fit_one_epoch(model, train, val, order, epoch: int, trainer: TrainerConfig, callbacks, verbose: int) -> dict:
    """One Keras fit over the training rows in ``order``; its history."""
    return model.fit(
        train.x[order],
        train.y[order],
        batch_size=trainer.batch_size,
        # More steps than the data has would make Keras warn that it ran out of data.
        steps_per_epoch=min(trainer.steps_per_epoch, -(-len(train) // trainer.batch_size))
        if trainer.steps_per_epoch
        else None,
        initial_epoch=epoch,
        epochs=epoch + 1,
        shuffle=False,
        validation_data=(val.x, val.y) if val else None,
        callbacks=callbacks,
        verbose=verbose,
    ).history


class RunProgressLines(keras.callbacks.ProgbarLogger):
    """Keras' progress bar and epoch lines, counted in the run's epochs ("Epoch 5/12"), not in the one
    epoch of each fit call ("Epoch 5/5")."""

    def __init__(self, epochs: int):
        super().__init__()
        self.run_epochs = epochs

    def set_params(self, params: dict) -> None:
        super().set_params(params | {"epochs": self.run_epochs})


class TorchGeneratorsAtStart(keras.callbacks.Callback):
    """Sets torch's generators to their states at the checkpoint once the first fit of a restored model
    has set itself up: that set-up reads a batch to build the model, which draws from them (the data
    loader's seed) as the uninterrupted run did only in its first epoch, and would otherwise shift
    every dropout mask after it."""

    def __init__(self, progress: Progress):
        super().__init__()
        self.progress = progress

    def on_train_begin(self, logs=None) -> None:
        if self.progress.torch_generators:
            set_torch_generators(self.progress.torch_generators)
            self.progress.torch_generators = None


def record_epoch(progress: Progress, metrics: dict[str, float]) -> None:
    """Appends one epoch's metrics; a lower validation loss makes it the best epoch."""
    for name, value in metrics.items():
        progress.history.setdefault(name, []).append(value)
    progress.epochs_done += 1
    progress.fit_seconds += metrics["epoch_seconds"]
    val_loss = progress.history.get("val_loss")
    if val_loss and (not progress.best_epoch or val_loss[-1] < val_loss[progress.best_epoch - 1]):
        progress.best_epoch = progress.epochs_done


def final_val_metrics(progress: Progress, patience: int | None) -> dict[str, float]:
    """Validation loss and accuracy of the weights the run ends with: the best epoch's or the last's."""
    epoch = progress.best_epoch if patience else progress.epochs_done
    return {f"final_{name}": values[epoch - 1] for name, values in progress.history.items() if name.startswith("val_")}
