"""What happens at each epoch's end, as small objects that fitting.fit calls in order, once the
epoch's metrics are in the run's Progress. `chosen` picks them from the config; each is tested alone.

Within an epoch, Keras callbacks act (guards.py: the loss guard and signal deferral; and any the
config's `callbacks` group names, e.g. `callbacks=[default,tensorboard]`).
"""

import keras

from imdb_exp.config.schema import TrainerConfig
from imdb_exp.tracking import active_run
from imdb_exp.training.checkpoints import Progress


class EpochEnd:
    def after_epoch(self, progress: Progress) -> None:
        """Runs after each epoch; an exception here ends the fit (search.TrialPruned is one)."""

    def stops(self, progress: Progress) -> bool:
        """Asked before each epoch, a resumed run's first included: True ends the fit."""
        return False

    def at_fit_end(self, progress: Progress) -> None:
        """Runs once the fit ends, however many epochs it ran."""


class EarlyStopping(EpochEnd):
    """trainer.patience: ends the fit that many epochs after the lowest validation loss, with that
    epoch's weights (kept in Progress, so a checkpoint carries them)."""

    def __init__(self, model: keras.Model, patience: int):
        self.model, self.patience = model, patience

    def after_epoch(self, progress: Progress) -> None:
        if progress.best_epoch == progress.epochs_done:
            progress.best_weights = self.model.get_weights()

    def stops(self, progress: Progress) -> bool:
        return progress.epochs_done - progress.best_epoch >= self.patience

    def at_fit_end(self, progress: Progress) -> None:
        if progress.best_weights is not None:
            self.model.set_weights(progress.best_weights)


class SaveCheckpoint(EpochEnd):
    """trainer.checkpoint: the run's checkpoint after every epoch, written before the epoch's metrics
    (a kill in between leaves a step that resume logs from the checkpoint)."""

    def __init__(self, checkpoint, model: keras.Model):
        self.checkpoint, self.model = checkpoint, model  # checkpoint: a shared_checkpoints.RunCheckpoint

    def after_epoch(self, progress: Progress) -> None:
        self.checkpoint.save(self.model, progress)


class LogEpochMetrics(EpochEnd):
    """The epoch's metrics into the active MLflow run, at the epoch's step."""

    def after_epoch(self, progress: Progress) -> None:
        active_run.log_epoch(progress.history)


class ReportToTrial(EpochEnd):
    """In an Optuna search: the epoch's validation accuracy to the trial, whose pruner may stop it."""

    def __init__(self, trial, epochs: int):
        self.trial, self.epochs = trial, epochs  # a search.TrialReporter, and the fit's last epoch

    def after_epoch(self, progress: Progress) -> None:
        self.trial.report(progress.epochs_done, progress.history, last=progress.epochs_done >= self.epochs)


def chosen(trainer: TrainerConfig, model: keras.Model, checkpoint, trial) -> list[EpochEnd]:
    """In the order they must run: the best weights kept before the checkpoint saves them, the
    checkpoint before the metrics, and the trial's verdict, which may end the fit, last."""
    ends: list[EpochEnd] = []
    if trainer.patience:
        ends.append(EarlyStopping(model, trainer.patience))
    if trainer.checkpoint:
        ends.append(SaveCheckpoint(checkpoint, model))
    ends.append(LogEpochMetrics())
    if trial:
        ends.append(ReportToTrial(trial, trainer.epochs))
    return ends
