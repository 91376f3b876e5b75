"""MLflow: a run's lifecycle and everything a run records (the store itself: store.py)."""

import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import version

import keras
import mlflow
from matplotlib.figure import Figure
from mlflow.models import ModelSignature
from mlflow.tracking import MlflowClient
from mlflow.types import ColSpec, Schema
from omegaconf import DictConfig, OmegaConf

from imdb_exp import home, store
from imdb_exp.predict import COLUMN, ReviewClassifier
from imdb_exp.schema import Config, TrackingConfig
from imdb_exp.store import TrackingError

SIGNATURE = ModelSignature(
    inputs=Schema([ColSpec("string", COLUMN)]),
    outputs=Schema([ColSpec("double", "probability"), ColSpec("string", "label")]),
)


@contextmanager
def tracked_run(cfg: TrackingConfig, run_name: str, tags: dict[str, str]) -> Iterator[mlflow.ActiveRun]:
    """An MLflow run that ends FINISHED, FAILED if the body raised, or KILLED on interrupt."""
    uri = store.resolve_uri(cfg.uri)
    store.check_server_answers(uri)
    try:
        if uri == store.default_uri():
            home().mkdir(parents=True, exist_ok=True)
        store.activate(uri)
        experiment_id = store.experiment_id(MlflowClient(uri), cfg.experiment)
        run = mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=tags)
    except Exception as err:
        detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise TrackingError(f"the MLflow store {uri} cannot be used ({detail}); set tracking.uri") from None
    status = "FAILED"
    try:
        yield run
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    except Exception as err:
        mlflow.set_tag("failure_reason", f"{type(err).__name__}: {err}"[:4000])
        raise
    finally:
        mlflow.end_run(status)


def _flatten(node: dict, prefix: str = "") -> dict[str, str]:
    flat = {}
    for key, value in node.items():
        if isinstance(value, dict):
            flat |= _flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = str(value)
    return flat


def log_config(cfg: DictConfig) -> None:
    mlflow.log_params(_flatten(OmegaConf.to_container(cfg, resolve=True)))
    mlflow.log_text(OmegaConf.to_yaml(cfg, resolve=True), "config.yaml")


def log_model_summary(model: keras.Model) -> None:
    lines: list[str] = []
    model.summary(print_fn=lambda line, **_: lines.append(line))
    mlflow.log_text("\n".join(lines), "model_summary.txt")


def log_text(text: str, path: str) -> None:
    mlflow.log_text(text, path)


def log_classifier(model: keras.Model, vocabulary_tsv: str, settings: Config) -> None:
    """The servable model: Keras weights, vocabulary and encoding settings behind a text interface."""
    backend = settings.trainer.backend
    with tempfile.TemporaryDirectory() as tmp:
        keras_path, vocabulary_path = os.path.join(tmp, "model.keras"), os.path.join(tmp, "vocabulary.tsv")
        model.save(keras_path)
        with open(vocabulary_path, "w", encoding="utf-8") as f:
            f.write(vocabulary_tsv)
        mlflow.pyfunc.log_model(
            name="model",
            python_model=ReviewClassifier(),
            artifacts={"keras_model": keras_path, "vocabulary": vocabulary_path},
            model_config={
                "backend": backend,
                **{k: getattr(settings.data, k) for k in ("encoding", "num_words", "maxlen")},
            },
            code_paths=[os.path.dirname(__file__)],  # the model runs this package's tokenizer and encoders
            # Named, not inferred: inference re-loads the model in a subprocess and takes many seconds.
            pip_requirements=[
                f"{pkg}=={version(pkg)}" for pkg in ("keras", "mlflow", "numpy", "pandas", "hydra-core", backend)
            ],
            signature=SIGNATURE,
            registered_model_name=settings.tracking.register_model,
        )


def log_metrics(metrics: dict[str, float]) -> None:
    mlflow.log_metrics({name: float(value) for name, value in metrics.items()})


def log_figure(figure: Figure, path: str) -> None:
    mlflow.log_figure(figure, path)


class EpochMetrics(keras.callbacks.Callback):
    """Logs each epoch's loss, accuracy, their validation twins and its duration, as it ends."""

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        metrics = {name: float(value) for name, value in (logs or {}).items()}
        metrics["epoch_seconds"] = time.perf_counter() - self.started
        mlflow.log_metrics(metrics, step=epoch + 1)
