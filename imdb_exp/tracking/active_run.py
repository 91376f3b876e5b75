"""A run in MLflow: its lifecycle (started or reopened, ended however its block ends, what it still has
to record handed to the records writer) and what it logs as it trains. Which store: store.py; what a
run was made from: lineage.py; the names of what it records: record.py."""

import functools
import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import mlflow
from matplotlib.figure import Figure
from omegaconf import DictConfig, OmegaConf

from imdb_exp.config import identity
from imdb_exp.config.schema import TrackingConfig
from imdb_exp.errors import first_line
from imdb_exp.runtime import interrupts
from imdb_exp.runtime.paths import default_uri, home
from imdb_exp.runtime.process import between_jobs
from imdb_exp.runtime.redaction import as_tag, redact
from imdb_exp.tracking import naming, record, store
from imdb_exp.tracking.store import TrackingError

if TYPE_CHECKING:  # Keras is imported by whoever chose its backend; its notices then are dropped
    import keras

log = logging.getLogger(__name__)

# A run's end shuts down the store's one queue of background writes (MLflow's set_terminated does),
# whichever thread ends it: the records thread ending the previous sweep job must not fall between
# this job's check that the queue is up and its write to it ("cannot schedule new futures after shutdown").
BACKGROUND_WRITES = threading.Lock()

PARAMS = ("data", "model", "optimizer", "trainer")  # the config's sections a run records as params


@dataclass
class OpenRun:
    """The run a job trains. ``remaining``, when the body sets it, is what the run still has to write
    after the body (figures, reports, the model): it is written on the background thread, which then
    ends the run; ``written`` is that work's future. ``let_go``, when the body sets it, is called once
    the run has ended, its records written (a lock that keeps other processes from taking the run)."""

    run: mlflow.ActiveRun
    remaining: Callable[[], None] | None = None
    written: Future | None = None
    let_go: Callable[[], None] = lambda: None


@contextmanager
def tracked_run(
    tracking: TrackingConfig, run_name: str, tags: dict[str, str], run_id: str | None = None
) -> Iterator[OpenRun]:
    """A new MLflow run, or run ``run_id`` reopened, that ends FINISHED, FAILED if the body raised,
    or KILLED on interrupt. In a sweep it is nested under the sweep's run and counted as its job."""
    uri = store.resolve_uri(tracking.uri)
    store.bound_server_waits(tracking.server_timeout)
    store.check_server_answers(uri)
    if tracking.parent_run_id:
        tags = tags | {record.PARENT: tracking.parent_run_id}
    try:
        if uri == default_uri():
            home().mkdir(parents=True, exist_ok=True)
        store.activate(uri)
        client = store.client(uri)
        if run_id:  # reopened: RUNNING again, these tags added to its own, named as it goes on
            run = mlflow.start_run(run_id=run_id, tags=tags, log_system_metrics=tracking.system_metrics)
            client.update_run(run_id, name=run_name)
            if record.FAILURE_REASON in run.data.tags:  # from the try that was cut off
                client.delete_tag(run_id, record.FAILURE_REASON)
        else:
            run = mlflow.start_run(
                experiment_id=store.experiment_id(client, tracking.experiment),
                run_name=run_name,
                tags=tags,
                log_system_metrics=tracking.system_metrics,
            )
        if tracking.parent_run_id:
            record.count_job(client, tracking.parent_run_id, tags.get(record.JOB), run.info.run_id)
    except Exception as err:
        message = f"the MLflow store {redact(uri)} cannot be used ({first_line(err)}); set tracking.uri"
        raise TrackingError(message) from None
    open_run = OpenRun(run)
    with _ended_as_the_block_ends(open_run):
        yield open_run


@contextmanager
def _ended_as_the_block_ends(open_run: OpenRun | None = None) -> Iterator[None]:
    """This thread's active run ends when the block does: FINISHED, FAILED with the reason if it raised,
    KILLED on interrupt; or, when the block left ``open_run.remaining``, RUNNING until the background
    thread has written them and ends it."""
    status = "FAILED"
    try:
        with interrupts.unmasked():
            yield
        status = "RUNNING" if open_run and open_run.remaining else "FINISHED"
    except KeyboardInterrupt as err:
        status = "KILLED"
        _tell_the_store(_say_why, interrupts.reason(err), "stopped")
        run_id = mlflow.active_run().info.run_id
        log.warning("run %s stopped: imdb-exp resume=%s continues it from its last completed epoch", run_id, run_id)
        raise
    except Exception as err:
        if not store.stopped_answering(err):
            _tell_the_store(_say_why, as_tag(f"{type(err).__name__}: {err}"), "failed")
            raise
        run_id = mlflow.active_run().info.run_id
        raise TrackingError(
            f"the MLflow server stopped answering (tracking.server_timeout bounds each call); run {run_id} stays "
            f"RUNNING there, its epochs kept in its checkpoint: imdb-exp resume={run_id} sends them once it answers"
        ) from None
    finally:
        with interrupts.held_off():  # cut in between, the run would stay RUNNING with nothing to end it
            try:
                _tell_the_store(end_run, status)
            finally:
                if status == "RUNNING":
                    remaining, run_id, let_go = open_run.remaining, open_run.run.info.run_id, open_run.let_go
                    records = functools.partial(_write_and_end, run_id, remaining, let_go)
                    open_run.written = between_jobs.writer.hand_over(run_id, records)
                elif open_run:
                    open_run.let_go()


def _say_why(reason: str, outcome: str) -> None:
    """The active run's reason for ending, and its name saying so (a chart's legend shows no status)."""
    client, run_id = mlflow.MlflowClient(), mlflow.active_run().info.run_id
    mlflow.set_tag(record.FAILURE_REASON, reason)
    # The store's name: a continued run was renamed after it started (its old outcome dropped).
    client.update_run(run_id, name=naming.ended_name(client.get_run(run_id).info.run_name, outcome))


def end_run(status: str) -> None:
    """The active run ended with ``status``, no background write of another run's in flight meanwhile."""
    with BACKGROUND_WRITES:
        mlflow.end_run(status)


def _tell_the_store(call, *args) -> None:
    """How a run ended, told to a store that may have stopped answering: then the run stays RUNNING
    there (a stale run, which resume continues), and the error that ended it is what is reported."""
    try:
        call(*args)
    except Exception as err:
        if not store.stopped_answering(err):
            raise
        log.warning("the MLflow store did not answer; the run stays RUNNING there")


def _write_and_end(run_id: str, remaining: Callable[[], None], let_go: Callable[[], None]) -> None:
    """On the background thread: run ``run_id`` active here while ``remaining`` writes, then ended
    (FAILED with the reason if they could not be written; RUNNING if the store cannot be reached),
    then ``let_go``."""
    try:
        mlflow.start_run(run_id=run_id, log_system_metrics=False)
        with _ended_as_the_block_ends():
            remaining()
    except OSError as err:  # a full disk, a folder not writable: said in a line, the run FAILED with it
        log.error("the records of run %s could not be written: %s", run_id, err)
        raise
    except Exception:
        log.exception("the records of run %s could not be written", run_id)
        raise
    finally:
        let_go()


def _flatten(node: dict, prefix: str = "") -> dict[str, str]:
    """Dotted keys and their values as text; a null is left out (config.yaml keeps it): logged as the
    text "None", it would drop the run from every numeric axis of MLflow's charts."""
    flat = {}
    for key, value in node.items():
        if isinstance(value, dict):
            flat |= _flatten(value, f"{prefix}{key}.")
        elif value is not None:
            flat[f"{prefix}{key}"] = str(value)
    return flat


def log_config(cfg: DictConfig, run: mlflow.ActiveRun) -> None:
    """What the run trained as params (PARAMS: the settings a user chooses, not how the run was launched
    or recorded), and the whole config as config.yaml. A continued run keeps the params it has (MLflow
    never changes one); a value the continuation changed (more trainer.epochs) is also a tag of that name."""
    values = OmegaConf.to_container(cfg, resolve=True)
    chosen = {section: values[section] for section in PARAMS}
    flat = {key: redact(value) for key, value in _flatten(chosen).items() if not identity.is_launch_only(key)}
    recorded = run.data.params
    if recorded:
        mlflow.set_tags({key: value for key, value in flat.items() if recorded.get(key, value) != value})
    else:
        mlflow.log_params(flat)
    mlflow.log_text(redact(OmegaConf.to_yaml(values)), record.CONFIG)


def log_model_summary(model: "keras.Model") -> None:
    lines: list[str] = []
    model.summary(print_fn=lambda line, **_: lines.append(line))
    mlflow.log_text("\n".join(lines), record.MODEL_SUMMARY)


def log_text(text: str, path: str) -> None:
    mlflow.log_text(text, path)


def readable(value: float) -> float:
    """A metric as the command prints it: 6 significant digits at most, so that a float32 accuracy is
    logged as 0.9104, not 0.9103999733924866."""
    return float(f"{float(value):.6g}")


def readable_metrics(metrics: dict[str, float]) -> dict[str, float]:
    return {name: readable(value) for name, value in metrics.items()}


def log_metrics(metrics: dict[str, float]) -> None:
    mlflow.log_metrics(readable_metrics(metrics))


def log_figure(figure: Figure, path: str) -> None:
    # zlib's fastest level: a little larger files, saved faster (docs/benchmarks.md).
    mlflow.log_figure(figure, path, save_kwargs={"pil_kwargs": {"compress_level": 1}})


def log_epoch(history: dict[str, list[float]]) -> None:
    """The metrics of the epoch just done (the last value of each ``history``), at its step (the epoch
    number, from 1); written while the next epoch trains (the run's end waits for them; after a kill,
    the checkpoint has them: log_missing_epochs)."""
    metrics = readable_metrics({name: values[-1] for name, values in history.items()})
    with BACKGROUND_WRITES:
        mlflow.log_metrics(metrics, step=len(history["loss"]), synchronous=False)


def log_pruned(epoch: int, history: dict[str, list[float]]) -> None:
    """A trial its search stopped: tagged and named so, its validation metrics at that epoch as its
    final ones, so that charts place it by the value it reached (a search ranks only finished trials)."""
    run = mlflow.active_run()
    mlflow.set_tag(record.PRUNED_AT_EPOCH, str(epoch))
    mlflow.MlflowClient().update_run(run.info.run_id, name=naming.ended_name(run.info.run_name, "pruned"))
    log_metrics({f"final_{name}": values[epoch - 1] for name, values in history.items() if name.startswith("val_")})


def epochs_logged(run_id: str) -> int:
    return len(mlflow.tracking.MlflowClient().get_metric_history(run_id, "loss"))


def log_missing_epochs(run_id: str, history: dict[str, list[float]]) -> None:
    """Steps of a checkpoint's ``history`` that the run lacks: a kill can fall between the checkpoint and
    the metrics it writes, and a server that stopped answering drops a batch of epochs written in the
    background. Steps after the checkpoint cannot have been logged (it is written first)."""
    mlflow.flush_async_logging()  # what is still on its way arrives, or fails, first
    logged = {metric.step for metric in mlflow.tracking.MlflowClient().get_metric_history(run_id, "loss")}
    for step in range(1, len(history.get("loss", [])) + 1):
        if step not in logged:
            mlflow.log_metrics(
                readable_metrics({name: values[step - 1] for name, values in history.items()}), step=step
            )
