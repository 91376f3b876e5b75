"""MLflow: a run's lifecycle and everything a run records (the store itself: store.py)."""

import hashlib
import logging
import os
import subprocess
import tempfile
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import version

import keras
import mlflow
import pandas as pd
from matplotlib.figure import Figure
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema
from omegaconf import DictConfig, OmegaConf

from imdb_exp import home, interrupts, recorder, search, store, sweep
from imdb_exp.checkpoints import Progress
from imdb_exp.data import Dataset
from imdb_exp.predict import COLUMN
from imdb_exp.redaction import as_tag, redact
from imdb_exp.schema import Config, DataConfig, TrackingConfig
from imdb_exp.store import TrackingError

log = logging.getLogger(__name__)

# MLflow draws a progress bar for each file it reads back while logging the model: noise in a
# run's output, and in the logs of sweep jobs.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
# MLflow samples system metrics every 10 s by default, so a default dense run (about 10 s) would
# often end before its first sample; every 2 s costs a psutil call and one small write.
os.environ.setdefault("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "2")
# MLflow's asynchronous logging (each epoch's metrics) waits on its queue with a 1 s timeout that
# a run's end cannot interrupt: every run ended 0.5-0.7 s late. Buffered, its thread waits on an
# event that the end does set, and writes what the second gathered in one batch.
os.environ.setdefault("MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS", "1")

SIGNATURE = ModelSignature(
    inputs=Schema([ColSpec("string", COLUMN)]),
    outputs=Schema([ColSpec("double", "probability"), ColSpec("string", "label")]),
)


@dataclass
class OpenRun:
    """The run a job trains. ``records``, when the body sets it, is what the run still has to write
    after the body (figures, reports, the model): it is written on the background thread, which then
    ends the run; ``written`` is that work's future."""

    run: mlflow.ActiveRun
    records: Callable[[], None] | None = None
    written: Future | None = None


@contextmanager
def tracked_run(
    cfg: TrackingConfig, run_name: str, tags: dict[str, str], run_id: str | None = None
) -> Iterator[OpenRun]:
    """A new MLflow run, or run ``run_id`` reopened, that ends FINISHED, FAILED if the body raised,
    or KILLED on interrupt. In a sweep it is nested under the sweep's run and counted as its job."""
    uri = store.resolve_uri(cfg.uri)
    store.bound_server_waits(cfg.server_timeout)
    store.check_server_answers(uri)
    if cfg.parent_run_id:
        tags = tags | {"mlflow.parentRunId": cfg.parent_run_id}
    try:
        if uri == store.default_uri():
            home().mkdir(parents=True, exist_ok=True)
        store.activate(uri)
        client = store.client(uri)
        if run_id:  # reopened: RUNNING again, these tags added to its own
            run = mlflow.start_run(run_id=run_id, tags=tags, log_system_metrics=cfg.system_metrics)
            if "failure_reason" in run.data.tags:  # from the try that was cut off
                client.delete_tag(run_id, "failure_reason")
        else:
            run = mlflow.start_run(
                experiment_id=store.experiment_id(client, cfg.experiment),
                run_name=run_name,
                tags=tags,
                log_system_metrics=cfg.system_metrics,
            )
        if cfg.parent_run_id:
            sweep.count_job(client, cfg.parent_run_id, tags.get(sweep.JOB_TAG), run.info.run_id)
    except Exception as err:
        detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        message = f"the MLflow store {redact(uri)} cannot be used ({detail}); set tracking.uri"
        raise TrackingError(message) from None
    open_run = OpenRun(run)
    with _ended_as_the_block_ends(open_run):
        yield open_run


@contextmanager
def _ended_as_the_block_ends(open_run: OpenRun | None = None) -> Iterator[None]:
    """This thread's active run ends when the block does: FINISHED, FAILED with the reason if it raised,
    KILLED on interrupt; or, when the block left ``open_run.records``, RUNNING until the background
    thread has written them and ends it."""
    status = "FAILED"
    try:
        yield
        status = "RUNNING" if open_run and open_run.records else "FINISHED"
    except KeyboardInterrupt as err:
        status = "KILLED"
        _tell_the_store(mlflow.set_tag, "failure_reason", interrupts.reason(err))
        raise
    except Exception as err:
        if not store.stopped_answering(err):
            _tell_the_store(mlflow.set_tag, "failure_reason", as_tag(f"{type(err).__name__}: {err}"))
            raise
        run_id = mlflow.active_run().info.run_id
        raise TrackingError(
            f"the MLflow server stopped answering (tracking.server_timeout bounds each call); run {run_id} stays "
            f"RUNNING there, its epochs kept in its checkpoint: imdb-exp resume={run_id} sends them once it answers"
        ) from None
    finally:
        with interrupts.held_off():  # cut in between, the run would stay RUNNING with nothing to end it
            _tell_the_store(mlflow.end_run, status)
            if status == "RUNNING":
                records, run_id = open_run.records, open_run.run.info.run_id
                open_run.written = recorder.hand_over(lambda: _write_and_end(run_id, records))


def _tell_the_store(call, *args) -> None:
    """How a run ended, told to a store that may have stopped answering: then the run stays RUNNING
    there (a stale run, which resume continues), and the error that ended it is what is reported."""
    try:
        call(*args)
    except Exception as err:
        if not store.stopped_answering(err):
            raise
        log.warning("the MLflow store did not answer; the run stays RUNNING there")


def _write_and_end(run_id: str, records: Callable[[], None]) -> None:
    """On the background thread: run ``run_id`` active here while ``records`` writes, then ended
    (FAILED with the reason if they could not be written; RUNNING if the store cannot be reached)."""
    try:
        mlflow.start_run(run_id=run_id, log_system_metrics=False)
        with _ended_as_the_block_ends():
            records()
    except OSError as err:  # a full disk, a folder not writable: said in a line, the run FAILED with it
        log.error("the records of run %s could not be written: %s", run_id, err)
        raise
    except Exception:
        log.exception("the records of run %s could not be written", run_id)
        raise


def _flatten(node: dict, prefix: str = "") -> dict[str, str]:
    flat = {}
    for key, value in node.items():
        if isinstance(value, dict):
            flat |= _flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = str(value)
    return flat


def log_config(cfg: DictConfig, run: mlflow.ActiveRun) -> None:
    """The config as params, and as config.yaml. A continued run keeps the params it has (MLflow never
    changes one); a value the continuation changed (more trainer.epochs) is also a tag of that name."""
    values = OmegaConf.to_container(cfg, resolve=True)
    flat, recorded = {key: redact(value) for key, value in _flatten(values).items()}, run.data.params
    if recorded:
        mlflow.set_tags({key: value for key, value in flat.items() if recorded.get(key, value) != value})
    else:
        mlflow.log_params(flat)
    mlflow.log_text(redact(OmegaConf.to_yaml(values)), "config.yaml")


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
        decided_by += f"{data.split_seed} {data.val_holdout}"
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


def log_model_summary(model: keras.Model) -> None:
    lines: list[str] = []
    model.summary(print_fn=lambda line, **_: lines.append(line))
    mlflow.log_text("\n".join(lines), "model_summary.txt")


def log_text(text: str, path: str) -> None:
    mlflow.log_text(text, path)


def provenance(backend: str) -> dict[str, str]:
    """Tags that say what code made a run: the package, Keras and backend versions, and the git
    commit when the package runs from a checkout (MLflow's own tag, which its UI shows)."""
    tags = {"imdb_exp.version": version("imdb-exp"), "keras.version": keras.__version__}
    tags[f"{backend}.version"] = version(backend)
    try:
        checkout = subprocess.run(
            ["git", "-C", os.path.dirname(__file__), "rev-parse", "HEAD"], capture_output=True, text=True, check=False
        )
    except OSError:  # no git on this machine
        return tags
    if checkout.returncode == 0:
        tags["mlflow.source.git.commit"] = checkout.stdout.strip()
    return tags


SERVED_FILES = {"keras_model": "model.keras", "vocabulary": "vocabulary.tsv"}  # artifact name -> file
INPUT_EXAMPLE = "A moving film with a wonderful cast; I would watch it again."


def requirements(backend: str) -> list[str]:
    """What the logged model needs, pinned to this process's versions as PyPI spells them: a local
    label such as torch's ``+cpu`` is dropped (PyPI has no such release), and jax brings its jaxlib."""
    packages = ["keras", "mlflow", "numpy", "pandas", "hydra-core", backend] + (["jaxlib"] if backend == "jax" else [])
    return [f"{package}=={version(package).split('+')[0]}" for package in packages]


def save_classifier(model: keras.Model, vocabulary_tsv: str) -> tempfile.TemporaryDirectory:
    """The files of the servable model, saved by the thread that trained it (Keras's saving state
    belongs to that thread; the next job's clear_session resets it)."""
    files = tempfile.TemporaryDirectory()
    model.save(os.path.join(files.name, SERVED_FILES["keras_model"]))
    with open(os.path.join(files.name, SERVED_FILES["vocabulary"]), "w", encoding="utf-8") as f:
        f.write(vocabulary_tsv)
    return files


def log_classifier(files: tempfile.TemporaryDirectory, settings: Config) -> None:
    """The servable model: Keras weights, vocabulary and encoding settings behind a text interface."""
    backend = settings.trainer.backend
    with files:
        logged = mlflow.pyfunc.log_model(
            name="model",
            python_model=os.path.join(os.path.dirname(__file__), "served_model.py"),
            artifacts={name: os.path.join(files.name, file) for name, file in SERVED_FILES.items()},
            model_config={
                "backend": backend,
                **{k: getattr(settings.data, k) for k in ("encoding", "num_words", "maxlen")},
            },
            code_paths=[os.path.dirname(__file__)],  # the model runs this package's tokenizer and encoders
            # Named, not inferred: inference re-loads the model in a subprocess and takes many seconds.
            pip_requirements=requirements(backend),
            signature=SIGNATURE,
            input_example=pd.DataFrame({COLUMN: [INPUT_EXAMPLE]}),
            registered_model_name=settings.tracking.register_model,
        )
    if settings.tracking.register_model:  # an alias names the version to use; MLflow's stages are deprecated
        mlflow.MlflowClient().set_registered_model_alias(
            settings.tracking.register_model, settings.tracking.model_alias, logged.registered_model_version
        )


def log_metrics(metrics: dict[str, float]) -> None:
    mlflow.log_metrics({name: float(value) for name, value in metrics.items()})


def log_figure(figure: Figure, path: str) -> None:
    # zlib's fastest level: 0.05-0.07 s less a figure than the default level, for files ~15% larger.
    mlflow.log_figure(figure, path, save_kwargs={"pil_kwargs": {"compress_level": 1}})


def log_epoch(progress: Progress) -> None:
    """The metrics of the epoch just done, at its step (the epoch number, from 1); written while the next
    epoch trains (the run's end waits for them; after a kill, the checkpoint has them: log_missing_epochs)."""
    metrics = {name: values[-1] for name, values in progress.history.items()}
    mlflow.log_metrics(metrics, step=progress.epochs_done, synchronous=False)


def log_pruned(epoch: int) -> None:
    mlflow.set_tag(search.PRUNED_TAG, str(epoch))


def epochs_logged(run_id: str) -> int:
    return len(mlflow.tracking.MlflowClient().get_metric_history(run_id, "loss"))


def log_missing_epochs(run_id: str, progress: Progress) -> None:
    """Steps of a checkpoint's history that the run lacks: a kill can fall between the checkpoint and
    the metrics it writes, and a server that stopped answering drops a batch of epochs written in the
    background. Steps after the checkpoint cannot have been logged (it is written first)."""
    mlflow.flush_async_logging()  # what is still on its way arrives, or fails, first
    logged = {metric.step for metric in mlflow.tracking.MlflowClient().get_metric_history(run_id, "loss")}
    for step in range(1, progress.epochs_done + 1):
        if step not in logged:
            mlflow.log_metrics({name: values[step - 1] for name, values in progress.history.items()}, step=step)
