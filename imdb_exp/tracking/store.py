"""Where MLflow records go: the store a command resolves (its order in runtime/paths.py, which --help
reads without MLflow; resolve_uri is taken from there), the client, the experiment.

Kept free of Keras so that the sweep callback, which runs before any job picks its backend, and
the predict command can use it.
"""

import fcntl
import os
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient

from imdb_exp.errors import UserError
from imdb_exp.runtime.paths import resolve_uri
from imdb_exp.runtime.redaction import redact


class TrackingError(UserError):
    pass


def is_server(uri: str) -> bool:
    """A tracking server (MLflow's REST API), as opposed to a database or folder this machine opens."""
    return uri.startswith(("http://", "https://"))


def sqlite_file(uri: str) -> Path | None:
    """The database file of a SQLite store's URI (less its ?options); None for any other kind of store,
    and for a database in memory."""
    path = uri.removeprefix("sqlite:///").split("?", 1)[0]
    return Path(path) if uri.startswith("sqlite:///") and path != ":memory:" else None


def run_page(experiment_id: str, run_id: str) -> str:
    """A run's page in MLflow's UI, in its Model training view (the UI may otherwise open on GenAI)."""
    return f"#/experiments/{experiment_id}/runs/{run_id}?workflowType=machine_learning"


def where_to_see(uri: str, experiment_id: str, run_id: str) -> str:
    """How to open a run in MLflow's UI: the server's page, or for a local store the command first."""
    page = run_page(experiment_id, run_id)
    if is_server(uri):
        return f"see the run at {redact(uri).rstrip('/')}/{page}"
    return f"see the run: mlflow ui --backend-store-uri {uri}, then http://127.0.0.1:5000/{page}"


RETRY_BACKOFF = 1  # MLflow's retries of a call wait 1, 2 and 4 s before the 2nd, 3rd and 4th try
RETRIES = 3


def bound_server_waits(seconds: float) -> None:
    """Every call to a tracking server (its retries included) gives up after about ``seconds``:
    each of the 1 + RETRIES tries waits at most (seconds - 7) / 4 for an answer, and the backoff
    between them sums to 7 s. MLflow's own defaults (7 retries, 120 s a try) wait many minutes."""
    backoff_total = RETRY_BACKOFF * (2**RETRIES - 1)
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = str(RETRIES)
    os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] = str(RETRY_BACKOFF)
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(max(1, int((seconds - backoff_total) / (RETRIES + 1))))


def stopped_answering(err: BaseException) -> bool:
    """Whether ``err`` (or what it was raised from) is a tracking server that did not answer in time."""
    import requests

    while err is not None:
        if isinstance(err, requests.exceptions.ConnectionError | requests.exceptions.Timeout):
            return True
        err = err.__cause__ or err.__context__
    return False


def check_server_answers(uri: str, timeout: float = 5, setting: str = "tracking.uri") -> None:
    """Fail in seconds, not after MLflow's minutes of retries, when a tracking server is unreachable;
    the message names ``setting``, where the user gave the URI."""
    if not is_server(uri):
        return
    try:
        urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout)
    except urllib.error.HTTPError:
        return  # it answered, if not on this path: the server is there
    except OSError as err:
        message = f"the MLflow server {redact(uri)} does not answer ({err}); start it or fix {setting}"
        raise TrackingError(message) from None


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


def client(configured: str | None) -> MlflowClient:
    """A client of the store that ``configured`` resolves to."""
    uri = resolve_uri(configured)
    with taking_turns(uri):
        database = sqlite_file(uri)
        if database is not None and not database.exists():
            _create(database)
        return MlflowClient(uri)


def _create(database: Path) -> None:
    """A new SQLite store's tables, made beside it and then moved into place: MLflow migrates a new
    store through dozens of schema versions, not in one transaction, and a process killed halfway
    would leave a store that no later command can open."""
    for left in database.parent.glob(f"{database.name}.making-*"):  # by processes killed while they made it
        left.unlink()
    making = database.with_name(f"{database.name}.making-{uuid.uuid4().hex}")  # MLflow caches stores by URI
    MlflowClient(f"sqlite:///{making}")
    os.replace(making, database)


@contextmanager
def taking_turns(uri: str) -> Iterator[None]:
    """Processes opening one SQLite store take turns: two that open a new one at once would both
    create its tables, and one of them fail ("table experiments already exists")."""
    database = sqlite_file(uri)
    if database is None:
        yield
        return
    lock = database.with_name(database.name + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # released when the file closes
        yield


def experiment_id(client: MlflowClient, name: str) -> str:
    """The experiment's id, created on first use."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    # A SQLite store keeps its artifacts in a folder beside its database (the default store's:
    # IMDB_EXP_HOME/artifacts), not in ./mlruns of whatever directory the job happens to run in.
    location, database = None, sqlite_file(client.tracking_uri)
    if database is not None:
        folder = database.resolve().parent
        folder.mkdir(parents=True, exist_ok=True)
        location = (folder / "artifacts").as_uri()
    try:
        return client.create_experiment(name, artifact_location=location)
    except mlflow.exceptions.MlflowException:  # created meanwhile by a concurrent job
        return client.get_experiment_by_name(name).experiment_id
