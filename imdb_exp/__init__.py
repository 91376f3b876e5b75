"""imdb-exp: config-driven IMDB sentiment experiments with Keras 3, Hydra and MLflow."""

import os
from pathlib import Path


def home() -> Path:
    """IMDB_EXP_HOME (default ~/.imdb-exp): the default MLflow store, its artifacts and the data cache."""
    return Path(os.environ.get("IMDB_EXP_HOME") or Path.home() / ".imdb-exp").expanduser().resolve()
