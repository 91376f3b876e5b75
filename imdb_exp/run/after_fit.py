"""After the fit: the test set's verdict on the training thread, then the run's records (figures,
reports, the servable model) from one FitResult, written on the records writer thread (runtime/records_writer.py)."""

import tempfile
from dataclasses import dataclass

import keras
import numpy as np

from imdb_exp.analysis import evaluation, plots, predictions
from imdb_exp.analysis.predictions import Predictions, Scored
from imdb_exp.config.schema import Config
from imdb_exp.data.corpus import Corpus
from imdb_exp.data.splits import Dataset, Split
from imdb_exp.runtime.interrupts import Interrupts
from imdb_exp.serving import logged_model
from imdb_exp.tracking import active_run, record
from imdb_exp.training import fitting
from imdb_exp.training.checkpoints import Progress
from imdb_exp.training.guards import InterruptAtBatchEnd
from imdb_exp.training.shared_checkpoints import RunCheckpoint

CURVES = {record.LOSS_CURVE: "loss", record.ACCURACY_CURVE: "accuracy"}  # figure -> metric per epoch


@dataclass(frozen=True)
class FitResult:
    """What a finished fit leaves for its records: nothing in it changes once made, so the records
    thread reads it while the next sweep job trains."""

    settings: Config
    progress: Progress
    test: Scored
    val: Scored | None  # None without a validation split
    corpus: Corpus | None  # None for the keras source, which has no text
    served_model: tempfile.TemporaryDirectory | None  # its files, saved by the thread that trained it

    def predictions(self) -> Predictions:
        source = self.corpus.archive_sha256 if self.corpus else f"keras.datasets.imdb {self.settings.data.num_words}"
        return Predictions(source, self.test, self.val)


def evaluate(
    trained: keras.Model,
    model: keras.Model,
    dataset: Dataset,
    settings: Config,
    progress: Progress,
    interrupts: Interrupts,
) -> FitResult:
    """The test and validation probabilities of the model that was fitted (a signal waits for its
    batch's end), and the whole ``model`` saved for serving when the run logs it (Keras saves on its
    own thread)."""

    def scored(split: Split) -> Scored:
        return Scored(split.rows, split.y, predicted(trained, split.x, settings.trainer.batch_size, interrupts))

    corpus, served = dataset.corpus, None
    if corpus and settings.tracking.log_model:
        served = logged_model.save_classifier(model, corpus.vocabulary_tsv)
    val = scored(dataset.val) if dataset.val else None
    return FitResult(settings, progress, scored(dataset.test), val, corpus, served)


def predicted(trained: keras.Model, x: np.ndarray, batch_size: int, interrupts: Interrupts) -> np.ndarray:
    """The probabilities of rows ``x``, a signal taken at a batch's end.

    On TensorFlow, one call of the model's predict function a batch: keras.Model.predict builds a
    tf.data dataset and its iterator for every call, 40% of the time of a dense sweep job's test and
    validation predictions; the probabilities are the same. The other backends' predict builds no such
    pipeline and keeps the device a batch ahead of the host (a batch a call was 10% slower on JAX).
    """
    with interrupts.deferred():
        if keras.backend.backend() != "tensorflow":
            return trained.predict(
                x, batch_size=batch_size, callbacks=[InterruptAtBatchEnd(interrupts)], verbose=0
            ).ravel()
        batches = []
        for start in range(0, len(x), batch_size):
            batches.append(trained.predict_on_batch(x[start : start + batch_size]))
            interrupts.raise_pending()
    return np.concatenate(batches).ravel()


def metrics(result: FitResult) -> dict[str, float]:
    """The run's verdict: test accuracy, AUC and loss, the final validation metrics, and the fit's extent."""
    progress, loss, test = result.progress, keras.losses.get(result.settings.model.loss), result.test
    test_loss = float(keras.ops.mean(loss(test.labels[:, None], test.probabilities[:, None])))
    return (
        evaluation.test_metrics(test.labels, test.probabilities)
        | fitting.final_val_metrics(progress, result.settings.trainer.patience)
        | {"test_loss": test_loss, "fit_seconds": progress.fit_seconds, "epochs_trained": progress.epochs_done}
        | ({"best_epoch": progress.best_epoch} if progress.best_epoch else {})
    )


def write_records(result: FitResult, checkpoint: RunCheckpoint) -> None:
    """The run's figures and reports, and its servable model (on the records thread, the run active
    there); then its checkpoint goes: the run is complete, and its logged model is what lasts."""
    labels, probabilities, history = result.test.labels, result.test.probabilities, result.progress.history
    figures = {path: plots.learning_curve(history, metric) for path, metric in CURVES.items()}
    figures |= {path: draw(labels, probabilities) for path, draw in plots.EVALUATION_FIGURES.items()}
    for path, figure in figures.items():
        active_run.log_figure(figure, path)
    predictions.log(result.predictions())
    corpus = result.corpus
    if corpus:
        count = result.settings.tracking.misclassified_reviews
        active_run.log_text(
            evaluation.misclassified_report(corpus.test, corpus.decode, probabilities, count), record.MISCLASSIFIED
        )
        active_run.log_text(corpus.vocabulary_tsv, record.VOCABULARY)
    if result.served_model:
        logged_model.log_classifier(result.served_model, result.settings)
    checkpoint.discard()
