"""A run's predictions, kept: each held-out and test review's index, label and probability, so that
two runs can be compared review by review (compare.py) and runs combined.

One small .npz artifact (about 0.4 MB for the 35,000 reviews of a default run), written with the
run's records; plain arrays, no pickle. The archive's SHA-256 says which reviews the indices are of.
"""

import os
import tempfile
from dataclasses import dataclass

import mlflow
import numpy as np
from mlflow.tracking import MlflowClient

from imdb_exp.data.labels import called_positive
from imdb_exp.errors import UserError, first_line
from imdb_exp.runtime.checked_npz import array_text, text_array
from imdb_exp.tracking import record


class PredictionsError(UserError):
    pass


@dataclass(frozen=True)
class Scored:
    """One split's reviews (their indices in the source's training or test reviews), labels and probabilities."""

    rows: np.ndarray
    labels: np.ndarray
    probabilities: np.ndarray

    def correct(self) -> np.ndarray:
        return called_positive(self.probabilities) == self.labels.astype(bool)


@dataclass(frozen=True)
class Predictions:
    source: str  # the archive's SHA-256, or the keras source's name
    test: Scored
    val: Scored | None


def log(predictions: Predictions) -> None:
    """Into the active run, as record.PREDICTIONS."""
    arrays = {"source": text_array(predictions.source)}
    for name, scored in (("test", predictions.test), ("val", predictions.val)):
        if scored is not None:
            arrays[f"{name}_rows"] = scored.rows.astype(np.int32)
            arrays[f"{name}_labels"] = scored.labels.astype(np.uint8)
            arrays[f"{name}_probabilities"] = scored.probabilities.astype(np.float32)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, os.path.basename(record.PREDICTIONS))
        np.savez_compressed(path, **arrays)
        mlflow.log_artifact(path, os.path.dirname(record.PREDICTIONS))


def of_run(client: MlflowClient, run_id: str) -> Predictions:
    """The predictions run ``run_id`` kept; PredictionsError, naming the run, when it kept none."""
    with tempfile.TemporaryDirectory() as folder:
        try:
            path = client.download_artifacts(run_id, record.PREDICTIONS, folder)
        except Exception as err:
            if why := record.why_nothing_kept(client.get_run(run_id)):
                raise PredictionsError(f"run {run_id} {why}") from None
            raise PredictionsError(
                f"run {run_id} kept no predictions ({record.PREDICTIONS}: {first_line(err)})"
            ) from None
        with np.load(path, allow_pickle=False) as arrays:
            split = {
                name: Scored(*(arrays[f"{name}_{part}"] for part in ("rows", "labels", "probabilities")))
                for name in ("test", "val")
                if f"{name}_rows" in arrays
            }
            return Predictions(array_text(arrays["source"]), split["test"], split.get("val"))
