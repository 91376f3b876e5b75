"""A store's runs and metrics read back."""

import sqlite3
from pathlib import Path

from mlflow.tracking import MlflowClient


def epochs_logged(database: Path, run_tag: tuple[str, str] | None = None) -> int:
    """Epochs (loss values) in the store, of the runs with that tag if given.

    Read-only and without MLflow: a client here would create or migrate the store while a job is
    creating it.
    """
    query = "SELECT COUNT(*) FROM metrics m WHERE m.key = 'loss'"
    if run_tag:
        query += " AND m.run_uuid IN (SELECT run_uuid FROM tags WHERE key = ? AND value = ?)"
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
            return db.execute(query, run_tag or ()).fetchone()[0]
    except sqlite3.Error:
        return 0


def steps(client: MlflowClient, run_id: str, metric: str) -> list[int]:
    """The steps at which a run logged ``metric``, in order (each once, when nothing was logged twice)."""
    return sorted(m.step for m in client.get_metric_history(run_id, metric))


def recorded_runs(store: str | Path, filter_string: str = "") -> tuple[MlflowClient, list]:
    """A client of the store (a SQLite file or a URI) and its imdb-exp runs, oldest first; none in a
    store a signal stopped the command in before the experiment was made (its tables just created)."""
    client = MlflowClient(store if isinstance(store, str) else f"sqlite:///{store}")
    experiment = client.get_experiment_by_name("imdb-exp")
    if experiment is None:
        return client, []
    return client, client.search_runs([experiment.experiment_id], filter_string, order_by=["start_time ASC"])


def runs(home):
    return recorded_runs(home / "mlflow.db")
