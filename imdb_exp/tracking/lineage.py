"""A run's lineage: what code made it (provenance tags) and what data it read (MLflow datasets)."""

import hashlib
import subprocess
import warnings
from importlib.metadata import version
from pathlib import Path

import keras
import mlflow
from mlflow.exceptions import MlflowException

from imdb_exp.config.schema import DataConfig
from imdb_exp.data.splits import Dataset
from imdb_exp.tracking import record


def provenance(backend: str, source: Path = Path(__file__).parent) -> dict[str, str]:
    """Tags that say what code made a run: the package, Keras and backend versions, and the git
    commit when the package's ``source`` folder is a checkout (MLflow's own tag, which its UI shows)."""
    tags = {record.PACKAGE_VERSION: version("imdb-exp"), record.KERAS_VERSION: keras.__version__}
    tags[record.backend_version(backend)] = version(backend)
    try:
        checkout = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True, check=False
        )
    except OSError:  # no git on this machine
        return tags
    if checkout.returncode == 0:
        tags[record.GIT_COMMIT] = checkout.stdout.strip()
    return tags


KERAS_IMDB_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/imdb.npz"  # data.source=keras


def log_datasets(dataset: Dataset, data: DataConfig) -> None:
    """The run's training, validation and test inputs as MLflow datasets (the UI's Dataset column and
    view): named after their split, with the archive as source and a digest of everything that
    decides their rows (the archive's content, the split, the encoding and its settings)."""
    corpus = dataset.corpus
    source = corpus.archive if corpus else KERAS_IMDB_URL
    content = corpus.archive_sha256 if corpus else f"keras.datasets.imdb num_words={data.num_words}"
    for context, split in (("training", dataset.train), ("validation", dataset.val), ("test", dataset.test)):
        if split is None:
            continue
        decided_by = f"{content} {context} {data.encoding} {data.num_words} {data.maxlen} {data.val_size} "
        decided_by += f"{data.split_seed} {data.val_holdout}" + (
            f" fold {data.fold} of {data.folds}" if data.folds else ""
        )
        digest, name = hashlib.sha256(decided_by.encode()).hexdigest()[:16], f"imdb-{context}"
        with warnings.catch_warnings():  # MLflow registers its local-file source twice, then warns of the tie
            warnings.filterwarnings("ignore", "The specified dataset source can be interpreted in multiple ways")
            inputs = mlflow.data.from_numpy(split.x, source=source, targets=split.y, name=name, digest=digest)
        try:
            mlflow.log_input(inputs, context=context)
        except MlflowException:
            # Parallel jobs log the same dataset: MLflow looks it up, then inserts it, and the slower
            # of two inserts breaks the store's uniqueness; on the second try the row is found.
            mlflow.log_input(inputs, context=context)
