"""Keras's TensorBoard logs as a run's artifact: written to a folder of this process, then copied into
the run under tensorboard/ after every epoch, so that whoever reads the store reads them
(`tensorboard --logdir` on the downloaded folder)."""

import shutil
import tempfile
import weakref

import keras
import mlflow

from imdb_exp.errors import ConfigError
from imdb_exp.tracking import record


class TensorBoardLogs(keras.callbacks.TensorBoard):
    def __init__(self, **options):
        try:
            import tensorboard  # noqa: F401  (Keras's callback needs it only once it writes)
        except ImportError:
            message = "callbacks=[...,tensorboard] needs TensorBoard: pip install 'imdb-exp[tensorboard]'"
            raise ConfigError(message) from None
        folder = tempfile.mkdtemp(prefix="imdb-exp-tensorboard-")
        super().__init__(log_dir=folder, **options)
        weakref.finalize(self, shutil.rmtree, folder, ignore_errors=True)

    def on_train_end(self, logs=None) -> None:
        super().on_train_end(logs)  # closes the epoch's event files
        mlflow.log_artifacts(self.log_dir, record.TENSORBOARD)  # fitting.fit runs one fit per epoch
