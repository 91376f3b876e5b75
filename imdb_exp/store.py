"""Where MLflow records go: the default SQLite store, the URI resolution order, the experiment.

Kept free of Keras so that the sweep callback, which runs before any job picks its backend, and
the predict command can use it.
"""

import os
import urllib.error
import urllib.request

import mlflow
from mlflow.tracking import MlflowClient

from imdb_exp import home
from imdb_exp.schema import UserError


class TrackingError(UserError):
    pass


def default_uri() -> str:
    return f"sqlite:///{home() / 'mlflow.db'}"


def resolve_uri(configured: str | None) -> str:
    return configured or os.environ.get("MLFLOW_TRACKING_URI") or default_uri()


def check_server_answers(uri: str, timeout: float = 5) -> None:
    """Fail in seconds, not after MLflow's minutes of retries, when a tracking server is unreachable."""
    if not uri.startswith(("http://", "https://")):
        return
    try:
        urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout)
    except urllib.error.HTTPError:
        return  # it answered, if not on this path: the server is there
    except OSError as err:
        raise TrackingError(f"the MLflow server {uri} does not answer ({err}); start it or fix tracking.uri") from None


def activate(uri: str) -> None:
    """Point MLflow's fluent API at ``uri`` without changing how the next run resolves its URI.

    mlflow.set_tracking_uri also exports MLFLOW_TRACKING_URI; left there, one sweep job's store
    would become the next job's "user setting" in the same process.
    """
    before = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    if before is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = before


def experiment_id(client: MlflowClient, name: str) -> str:
    """The experiment's id, created on first use."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    # With the default store, artifacts go beside the database rather than into ./mlruns of
    # whatever directory the job happens to run in.
    location = (home() / "artifacts").as_uri() if client.tracking_uri == default_uri() else None
    if location:
        home().mkdir(parents=True, exist_ok=True)
    try:
        return client.create_experiment(name, artifact_location=location)
    except mlflow.exceptions.MlflowException:  # created meanwhile by a concurrent job
        return client.get_experiment_by_name(name).experiment_id
