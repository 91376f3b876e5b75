"""Where imdb-exp keeps its files by default: one folder for the store, its artifacts, the data cache
and the checkpoints, so that IMDB_EXP_HOME moves them all together."""

import os
from pathlib import Path


def home() -> Path:
    """IMDB_EXP_HOME (default ~/.imdb-exp)."""
    return Path(os.environ.get("IMDB_EXP_HOME") or Path.home() / ".imdb-exp").expanduser().resolve()


def default_uri() -> str:
    """The MLflow store in home(): a SQLite file."""
    return f"sqlite:///{home() / 'mlflow.db'}"


def resolve_uri(configured: str | None) -> str:
    """The MLflow store a command uses: tracking.uri, else MLFLOW_TRACKING_URI, else default_uri()."""
    return configured or os.environ.get("MLFLOW_TRACKING_URI") or default_uri()
