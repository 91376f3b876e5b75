"""What happens at an epoch's end: each object alone, early stopping, and the ones the config chooses."""

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from imdb_exp.config.schema import TrackingConfig, TrainerConfig
from imdb_exp.sweeps import search
from imdb_exp.tracking.active_run import tracked_run
from imdb_exp.training import checkpoints, epoch_end, fitting
from imdb_exp.training.checkpoints import Progress
from tests.support.toy_model import noisy_dataset, small_model


class SavedEpochs:
    """Stands in for a run's checkpoint: which epochs it was asked to save, with which weights."""

    def __init__(self):
        self.epochs, self.weights = [], []

    def save(self, model, progress: Progress) -> None:
        self.epochs.append(progress.epochs_done)
        self.weights.append(model.get_weights()[0].copy())


class PrunesAtEpoch:
    """Stands in for an Optuna trial whose pruner stops the fit after ``epoch``."""

    def __init__(self, epoch: int):
        self.epoch, self.reported, self.last = epoch, [], []

    def report(self, epoch: int, history: dict, last: bool) -> None:
        self.reported.append((epoch, history["val_loss"][epoch - 1]))
        self.last.append(last)
        if epoch == self.epoch:
            raise search.TrialPruned(epoch)


def test_the_config_chooses_the_epoch_ends_in_the_order_they_must_run():
    model, checkpoint, trial = small_model(), SavedEpochs(), PrunesAtEpoch(1)
    everything = epoch_end.chosen(TrainerConfig(patience=2, checkpoint=True), model, checkpoint, trial)
    kinds = [type(end).__name__ for end in everything]
    assert kinds == ["EarlyStopping", "SaveCheckpoint", "LogEpochMetrics", "ReportToTrial"]
    least = epoch_end.chosen(TrainerConfig(patience=None, checkpoint=False), model, checkpoint, None)
    assert [type(end) for end in least] == [epoch_end.LogEpochMetrics]


@pytest.mark.slow
def test_save_checkpoint_saves_after_every_epoch_the_weights_that_epoch_ended_with():
    model, checkpoint = small_model(), SavedEpochs()
    fitting.fit(model, noisy_dataset(), TrainerConfig(epochs=3, batch_size=32), Progress(), [],
                [epoch_end.SaveCheckpoint(checkpoint, model)], verbose=0)  # fmt: skip
    assert checkpoint.epochs == [1, 2, 3]
    np.testing.assert_array_equal(checkpoint.weights[-1], model.get_weights()[0])
    assert not np.array_equal(checkpoint.weights[0], checkpoint.weights[-1])


@pytest.mark.slow
def test_a_trials_pruner_ends_the_fit_at_the_epoch_it_prunes():
    model, trial = small_model(), PrunesAtEpoch(2)
    progress = Progress()
    with pytest.raises(search.TrialPruned):
        fitting.fit(model, noisy_dataset(), TrainerConfig(epochs=6, batch_size=32), progress, [],
                    [epoch_end.ReportToTrial(trial, epochs=6)], verbose=0)  # fmt: skip
    assert progress.epochs_done == 2 and [epoch for epoch, _ in trial.reported] == [1, 2]
    assert trial.last == [False, False]
    assert trial.reported[1][1] == progress.history["val_loss"][1]


@pytest.mark.slow
def test_the_trial_is_told_which_epoch_is_the_fits_last():
    model, trial = small_model(), PrunesAtEpoch(0)  # never prunes
    fitting.fit(model, noisy_dataset(), TrainerConfig(epochs=3, batch_size=32), Progress(), [],
                [epoch_end.ReportToTrial(trial, epochs=3)], verbose=0)  # fmt: skip
    assert trial.last == [False, False, True]


def test_epoch_metrics_are_logged_at_the_epochs_step(isolated_home):
    cfg = TrackingConfig(uri=f"sqlite:///{isolated_home}/mlflow.db", system_metrics=False)
    logging = epoch_end.LogEpochMetrics()
    with tracked_run(cfg, "epochs", {}) as open_run:
        for loss in (0.7, 0.5):
            history = {"loss": [*([0.7] if loss == 0.5 else []), loss]}
            logging.after_epoch(Progress(epochs_done=len(history["loss"]), history=history))
        mlflow.flush_async_logging()
    client = MlflowClient(cfg.uri)
    history = client.get_metric_history(open_run.run.info.run_id, "loss")
    assert sorted((m.step, m.value) for m in history) == [(1, 0.7), (2, 0.5)]


@pytest.mark.slow
def test_early_stopping_ends_patience_epochs_after_the_lowest_validation_loss_with_that_epochs_weights():
    model, dataset = small_model(), noisy_dataset()
    trainer = TrainerConfig(epochs=60, batch_size=32, patience=3)
    stopping = [epoch_end.EarlyStopping(model, trainer.patience)]
    progress = fitting.fit(model, dataset, trainer, checkpoints.Progress(), [], stopping, verbose=0)
    val_loss = progress.history["val_loss"]
    assert progress.epochs_done < 60, "the validation loss never turned up; the test data needs more noise"
    assert progress.best_epoch == int(np.argmin(val_loss)) + 1
    assert progress.epochs_done == progress.best_epoch + 3
    # The model now holds the best epoch's weights: it scores that epoch's validation loss again.
    assert model.evaluate(dataset.val.x, dataset.val.y, verbose=0) == pytest.approx(val_loss[progress.best_epoch - 1])
    final = fitting.final_val_metrics(progress, trainer.patience)
    assert final["final_val_loss"] == val_loss[progress.best_epoch - 1]
