"""The servable model: the Keras model and its vocabulary behind a text-in, probability-out MLflow
interface (predict.ReviewClassifier, loaded from served_model.py's code, never unpickled), optionally
registered under a name with an alias."""

import json
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
from imdb_exp.serving.classifier import COLUMN, SETTINGS
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
            settings.model.family,
            "served_model.py",
            artifacts={name: os.path.join(files.name, file) for name, file in SERVED_FILES.items()},
            served={
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


def log_pyfunc(name: str, code: str, artifacts: dict[str, str], served: dict, backend: str, **options):
    """Into the active run: a text-in, probability-out model named ``name`` (its family, or ``ensemble``)
    whose code is ``code`` (a file of this folder, MLflow's models from code) running on this package,
    which it carries (code_paths). Its settings (``served``) travel as an artifact: given to MLflow as
    the model's config, they would also become params of the run, beside the run's own."""
    # MLflow loads the model to check it answers its input example: layers built meanwhile draw seeds,
    # and the next job may be building its model on the training thread (RecordsWriter.model_seeding).
    with tempfile.TemporaryDirectory() as folder, between_jobs.writer.model_seeding:
        settings_file = Path(folder) / f"{SETTINGS}.json"
        settings_file.write_text(json.dumps(served))
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=str(Path(__file__).with_name(code)),
            artifacts=artifacts | {SETTINGS: str(settings_file)},
            code_paths=[str(PACKAGE_ROOT)],  # the model runs this package's tokenizer and encoders
            # Named, not inferred: inference re-loads the model in a subprocess and takes many seconds.
            pip_requirements=requirements(backend),
            signature=SIGNATURE,
            input_example=pd.DataFrame({COLUMN: [INPUT_EXAMPLE]}),
            **options,
        )
