"""The servable model: the Keras model and its vocabulary behind a text-in, probability-out MLflow
interface (predict.ReviewClassifier, loaded from served_model.py's code, never unpickled), optionally
registered under a name with an alias."""

import os
import tempfile
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING

import mlflow
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema

import imdb_exp
from imdb_exp.config.schema import Config
from imdb_exp.runtime.process import between_jobs
from imdb_exp.serving.classifier import COLUMN
from imdb_exp.tracking import record

if TYPE_CHECKING:  # Keras is imported by whoever chose its backend; its notices then are dropped
    import keras

SIGNATURE = ModelSignature(
    inputs=Schema([ColSpec("string", COLUMN)]),
    outputs=Schema([ColSpec("double", "probability"), ColSpec("string", "label")]),
)


SERVED_FILES = {"keras_model": "model.keras", "vocabulary": record.VOCABULARY}  # artifact name -> file
INPUT_EXAMPLE = "A moving film with a wonderful cast; I would watch it again."
PACKAGE_ROOT = Path(imdb_exp.__file__).parent


def requirements(backend: str) -> list[str]:
    """What the logged model needs, pinned to this process's versions as PyPI spells them: a local
    label such as torch's ``+cpu`` is dropped (PyPI has no such release), and jax brings its jaxlib."""
    packages = ["keras", "keras-hub", "mlflow", "numpy", "pandas", "hydra-core", backend]
    packages += ["jaxlib"] if backend == "jax" else []
    return [f"{package}=={version(package).split('+')[0]}" for package in packages]


def save_classifier(model: "keras.Model", vocabulary_tsv: str) -> tempfile.TemporaryDirectory:
    """The files of the servable model, saved by the thread that trained it (Keras's saving state
    belongs to that thread; the next job's clear_session resets it)."""
    files = tempfile.TemporaryDirectory()
    model.save(os.path.join(files.name, SERVED_FILES["keras_model"]))
    with open(os.path.join(files.name, SERVED_FILES["vocabulary"]), "w", encoding="utf-8") as f:
        f.write(vocabulary_tsv)
    return files


def log_classifier(files: tempfile.TemporaryDirectory, settings: Config) -> None:
    """The servable model: Keras weights, vocabulary and encoding settings behind a text interface."""
    with files:
        logged = log_pyfunc(
            "served_model.py",
            artifacts={name: os.path.join(files.name, file) for name, file in SERVED_FILES.items()},
            model_config={
                "backend": settings.trainer.backend,
                **{k: getattr(settings.data, k) for k in ("encoding", "num_words", "maxlen")},
            },
            backend=settings.trainer.backend,
            registered_model_name=settings.tracking.register_model,
        )
    if settings.tracking.register_model:  # an alias names the version to use; MLflow's stages are deprecated
        mlflow.MlflowClient().set_registered_model_alias(
            settings.tracking.register_model, settings.tracking.model_alias, logged.registered_model_version
        )


def log_pyfunc(code: str, artifacts: dict[str, str], model_config: dict, backend: str, **options):
    """Into the active run: a text-in, probability-out model whose code is ``code`` (a file of this
    folder, MLflow's models from code) running on this package, which it carries (code_paths)."""
    # MLflow loads the model to check it answers its input example: layers built meanwhile draw seeds,
    # and the next job may be building its model on the training thread (RecordsWriter.model_seeding).
    with between_jobs.writer.model_seeding:
        return mlflow.pyfunc.log_model(
            name=record.LOGGED_MODEL,
            python_model=str(Path(__file__).with_name(code)),
            artifacts=artifacts,
            model_config=model_config,
            code_paths=[str(PACKAGE_ROOT)],  # the model runs this package's tokenizer and encoders
            # Named, not inferred: inference re-loads the model in a subprocess and takes many seconds.
            pip_requirements=requirements(backend),
            signature=SIGNATURE,
            input_example=pd.DataFrame({COLUMN: [INPUT_EXAMPLE]}),
            **options,
        )
