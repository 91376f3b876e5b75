"""What a process running imdb-exp sets at its start and keeps from one job to the next, in one place.

Set once, at the start (``configure``, called by the command and by each job a launcher's worker runs;
nothing here happens on import):
  - environment defaults that MLflow and the backends read later (a variable already set wins);
  - the log levels of MLflow's, Alembic's and JAX's bookkeeping, TensorFlow's retracing warning
    dropped, and the redaction of every record;
  - stdout and stderr that outlive the terminal (terminal.py), so that a hang-up ends a run KILLED.

Kept between the jobs of one process (Hydra's basic and joblib launchers run a sweep's jobs in the
process that launched it), in ``between_jobs``:
  - ``dataset``: the last dataset loaded and what decided it (data/splits.load_dataset), replaced when a
    job's data config or archive differs;
  - ``fixed_part``: the last dataset passed through a model's fixed layers (models/builders.prepare),
    with those layers' settings and adapted weights, taken again by a job whose fixed layers are alike;
  - ``sweep``: the sweep run this process opened and has not ended (sweeps/multirun.py); while it is
    open, a job hands what it still has to record to the writer and goes on instead of waiting;
  - ``writer``: the records writer thread (records_writer.py), waited for at each sweep's end, after a
    run of its own and before the command exits;
  - ``search_owner``: the lock file by which a search process owns its trials in a journal file
    (sweeps/study_storage.py), held, and then removed, when the process exits.
Reset at each job's start (``start_job``): Keras's graphs and names, and the heap's collection.
Chosen once, by the first job: the Keras backend (``use_backend``), which Keras reads at its first import.
"""

import gc
import logging
import os
from dataclasses import dataclass, field
from typing import Any

from imdb_exp.errors import ConfigError
from imdb_exp.runtime import quiet, terminal
from imdb_exp.runtime.records_writer import RecordsWriter
from imdb_exp.runtime.redaction import redact_log_records

ENVIRONMENT = {
    # TensorFlow's C++ info and warnings, where it reads this (quiet.py drops the rest).
    "TF_CPP_MIN_LOG_LEVEL": "2",
    # Parallel sweep jobs share a GPU: each takes memory as it needs it instead of the whole card.
    "TF_FORCE_GPU_ALLOW_GROWTH": "true",
    "XLA_PYTHON_CLIENT_PREALLOCATE": "false",
    # MLflow sets its loggers' level when it is imported, which may come after this: INFO is its
    # bookkeeping (creating tables, the system metrics monitor, checking an input example).
    "MLFLOW_LOGGING_LEVEL": "WARNING",
    # MLflow draws a progress bar for each file it reads back while logging the model.
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    # MLflow samples system metrics every 10 s by default; a short run would end before its first sample.
    "MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL": "2",
    # Unbuffered, MLflow's asynchronous logging waits on its queue with a timeout that a run's end
    # cannot interrupt; buffered, its thread waits on an event that the end sets (docs/benchmarks.md).
    "MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS": "1",
}

# Their INFO lines are bookkeeping (MLflow creating tables, starting and stopping the system metrics
# monitor, checking the input example; Alembic's plugins; JAX finding no TPU); warnings still show.
QUIETED_LOGGERS = ("mlflow", "alembic", "jax._src.xla_bridge")


def configure() -> None:
    """Sets what this module's docstring lists; calling it again changes nothing."""
    for name, value in ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    terminal.outlive_hang_ups()
    import mlflow  # noqa: F401  (importing it sets its own and Alembic's log levels: quieted after that)

    for name in QUIETED_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    if not any(isinstance(f, NotRetracing) for f in logging.getLogger("tensorflow").filters):
        logging.getLogger("tensorflow").addFilter(NotRetracing())
    redact_log_records()


class NotRetracing(logging.Filter):
    """TensorFlow's warning that a predict function "triggered tf.function retracing", which it gives
    when several models predict in turn (an ensemble's members, each traced once): nothing to mend."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


@dataclass
class BetweenJobs:
    dataset: tuple[tuple, Any] | None = None  # (what decided it, splits.Dataset)
    fixed_part: tuple | None = None  # (dataset, its fixed layers' settings, their weights, the dataset through them)
    sweep: Any = None  # multirun.SweepParentRun
    writer: RecordsWriter = field(default_factory=RecordsWriter)
    search_owner: tuple[str, int | None] | None = None  # (lock file, its descriptor)


between_jobs = BetweenJobs()


def start_job(keras) -> None:
    """Collects what the previous job left (its model, its graphs), then freezes what survives: the
    long-lived objects of MLflow, Hydra, pandas and the backend are then left out of the collections
    that training's allocations trigger (docs/benchmarks.md measures what a full one costs). What the
    process keeps stays frozen; objects it drops later are still freed by their reference counts."""
    if keras.backend.backend() == "tensorflow":
        _forget_traced_gradients()
    keras.utils.clear_session()  # starts each job from a clean graph, and collects
    gc.freeze()


def _forget_traced_gradients() -> None:
    """TensorFlow keeps, in a global registry it never prunes, the gradient function of every
    tf.custom_gradient traced in a graph (Keras's optimizer traces one in its all-reduce, for each
    model's train step), and with it the whole traced step: about 4 MB a job, the resident memory of
    a 100-job sweep grew by 1.4x. Only a trace in progress needs its entry; the previous jobs' are done."""
    from tensorflow.python.framework import ops

    registry = getattr(getattr(ops, "_gradient_registry", None), "_registry", {})  # private: absent, nothing to do
    for name in [name for name in registry if name.startswith("CustomGradient-")]:
        del registry[name]


def use_backend(name: str):
    """Keras with the chosen backend; Keras reads KERAS_BACKEND once, at its first import."""
    os.environ["KERAS_BACKEND"] = name
    try:
        with quiet.start_up_notices_dropped():
            import keras

            # Imported on every backend: Keras's set_random_seed seeds TensorFlow too wherever it is
            # installed (it is a dependency), so its notices would otherwise come mid-run on JAX or torch.
            import tensorflow as tf

            if name == "tensorflow":  # the CUDA probe, and its notices, happen at the first device query
                tf.config.list_physical_devices("GPU")
    except ImportError as err:
        raise ConfigError(
            f"trainer.backend={name} cannot be loaded ({err}); install it, e.g. pip install 'imdb-exp[jax]'"
        ) from None
    if keras.backend.backend() != name:
        raise ConfigError(
            f"trainer.backend={name}, but this process already runs Keras on {keras.backend.backend()}; "
            "sweep backends in separate processes"
        )
    return keras
