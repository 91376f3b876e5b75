"""Where imdb-exp keeps its files by default: one folder for the store, its artifacts, the data cache
and the checkpoints, so that IMDB_EXP_HOME moves them all together."""

import os
from pathlib import Path


def home() -> Path:
    """IMDB_EXP_HOME (default ~/.imdb-exp)."""
    return Path(os.environ.get("IMDB_EXP_HOME") or Path.home() / ".imdb-exp").expanduser().resolve()
