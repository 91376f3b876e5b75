"""What the commands beside imdb-exp share: their store argument, the process configured and the store
opened once, and errors a user can act on said in one line."""

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from imdb_exp.errors import UserError, first_line, refuse
from imdb_exp.runtime import process
from imdb_exp.runtime.redaction import redact
from imdb_exp.tracking import store

ANOTHER_STORE = "--tracking-uri or MLFLOW_TRACKING_URI names another store"


def parser(prog: str, description: str) -> argparse.ArgumentParser:
    arguments = argparse.ArgumentParser(prog=prog, description=description)
    arguments.add_argument("--tracking-uri", help="default: MLFLOW_TRACKING_URI, else the imdb-exp SQLite store")
    return arguments


def open_store(prog: str, args: argparse.Namespace) -> MlflowClient:
    """The process configured (no backend notices, no MLflow progress bars) and the store the arguments
    name, which MLflow's fluent API then uses too; a SQLite file that is not there (MLflow would create
    an empty store in its place and then find no run in it) or a server that does not answer ends the command."""
    process.configure()
    uri = store.resolve_uri(args.tracking_uri)
    database = store.sqlite_file(uri)
    if database and not database.exists():
        refuse(prog, f"no store at {database} ({ANOTHER_STORE})")
    try:
        store.check_server_answers(uri, setting="--tracking-uri")  # in seconds, not after MLflow's minutes of retries
    except store.TrackingError as err:
        sys.exit(f"{prog}: error: {err}")  # exit status 1: the store, not what the command was given
    store.activate(uri)
    return store.client(uri)


@contextmanager
def errors_in_one_line(prog: str, client: MlflowClient) -> Iterator[None]:
    """A UserError, or MLflow's refusal (an unknown run id, a store that cannot be read), ends the command
    with one line; a run not found there names the store it was looked for in. Exit status 2 for what
    the command was given (as argparse's), 1 for what the store failed to do."""
    try:
        yield
    except UserError as err:
        refuse(prog, first_line(err))
    except MlflowException as err:
        if err.error_code == "RESOURCE_DOES_NOT_EXIST":
            refuse(prog, f"{first_line(err)} in {redact(client.tracking_uri)} ({ANOTHER_STORE})")
        if err.error_code == "INVALID_PARAMETER_VALUE":
            refuse(prog, first_line(err))
        sys.exit(f"{prog}: error: {first_line(err)}")
