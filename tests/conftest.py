"""Shared fixtures: a synthetic archive in the real aclImdb layout, an isolated store and cache,
and Hydra composition of the shipped config tree."""

import io
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tarfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_module
from mlflow.tracking import MlflowClient

from imdb_exp.config import schema
from imdb_exp.runtime import process
from imdb_exp.sweeps import launchers

schema.register()  # the structured-config schema conf/config.yaml names first
process.configure()  # as the command does before any job (train() itself configures nothing)
launchers.register()  # the project's launcher defaults, as the imdb-exp command composes them

POSITIVE = ["great", "wonderful", "superb", "loved", "brilliant"]
NEGATIVE = ["awful", "boring", "terrible", "hated", "waste"]
NEUTRAL = ["the", "a", "movie", "film", "plot", "actor", "scene", "it", "was", "and", "of", "story", "i"]
# The shipped debug preset: seconds-long fits, large enough for a model to learn the planted words.
DEBUG = ["debug=tiny"]


def review_text(rng: np.random.Generator, positive: bool) -> str:
    words = list(rng.choice(NEUTRAL, size=rng.integers(15, 40)))
    words += list(rng.choice(POSITIVE if positive else NEGATIVE, size=3))
    rng.shuffle(words)
    return " ".join(words[:8]) + ". <br /><br />" + ", ".join(words[8:]).capitalize() + "!"


def write_archive(path: Path, per_class: dict[str, int], seed: int = 0, extra: dict[str, bytes] | None = None) -> Path:
    """A tar.gz laid out like aclImdb_v1.tar.gz: aclImdb/{train,test}/{pos,neg}/ID_RATING.txt."""
    rng = np.random.default_rng(seed)
    files = {"aclImdb/README": b"synthetic test archive\n"}
    for split, count in per_class.items():
        for polarity in ("pos", "neg"):
            for i in range(count):
                rating = rng.integers(7, 11) if polarity == "pos" else rng.integers(1, 5)
                files[f"aclImdb/{split}/{polarity}/{i}_{rating}.txt"] = review_text(rng, polarity == "pos").encode()
    files |= extra or {}
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture(scope="session")
def archive(tmp_path_factory) -> Path:
    return write_archive(tmp_path_factory.mktemp("data") / "aclImdb_v1.tar.gz", {"train": 100, "test": 60})


@pytest.fixture(scope="session")
def tiny_preset(tmp_path_factory) -> Path:
    """A tiny BERT saved as a keras-hub preset folder (backbone and word-piece tokenizer of the synthetic
    reviews' words): the pretrained family's real loading code, with nothing to download."""
    import keras_hub

    folder = tmp_path_factory.mktemp("preset")
    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *POSITIVE, *NEGATIVE, *NEUTRAL, ".", ",", "!"]
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=len(vocabulary), num_layers=1, num_heads=2, hidden_dim=16, intermediate_dim=32,
        max_sequence_length=64,
    )  # fmt: skip
    backbone.save_to_preset(str(folder))
    keras_hub.models.BertTokenizer(vocabulary=vocabulary, lowercase=True).save_to_preset(str(folder))
    return folder


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch) -> Path:
    """Every test gets its own store and cache; nothing touches ~/.imdb-exp or a real server."""
    home = tmp_path / "imdb-exp-home"
    monkeypatch.setenv("IMDB_EXP_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return home


@pytest.fixture
def compose_cfg():
    def _compose(*overrides: str):
        with initialize_config_module("imdb_exp.conf", version_base="1.3"):
            return compose("config", overrides=list(overrides), return_hydra_config=False)

    return _compose


def run_cli(
    *args: str, cwd: Path, timeout: int = 300, program: str = "imdb-exp", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """An installed command of the project in a subprocess, as a user would run it."""
    command = [str(Path(sys.executable).with_name(program)), *args]
    env = os.environ | {"PYTHONUNBUFFERED": "1"} | (env or {})
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def start_cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """The imdb-exp command started as from a terminal, to be signalled or killed while it runs.

    SIGINT is reset to its default: a CI runner may start us with it ignored, which the child would
    inherit. Its epoch lines are dropped (a pipe nobody reads would fill and stop it); stderr is kept.
    """
    command = [str(Path(sys.executable).with_name("imdb-exp")), *args]
    return subprocess.Popen(
        command,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ | (env or {}),
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


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


def wait_for_epochs(process: subprocess.Popen, database: Path, count: int, run_tag=None, timeout=120) -> None:
    deadline = time.monotonic() + timeout
    while epochs_logged(database, run_tag) < count and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    if epochs_logged(database, run_tag) < count:
        process.kill()
        raise AssertionError(f"training never logged {count} epochs; stderr: {process.communicate()[1][-2000:]}")


def steps(client: MlflowClient, run_id: str, metric: str) -> list[int]:
    """The steps at which a run logged ``metric``, in order (each once, when nothing was logged twice)."""
    return sorted(m.step for m in client.get_metric_history(run_id, metric))


def free_port() -> int:
    """A loopback port nothing listens on (at the moment of asking)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def recorded_runs(store: str | Path, filter_string: str = "") -> tuple[MlflowClient, list]:
    """A client of the store (a SQLite file or a URI) and its imdb-exp runs, oldest first."""
    client = MlflowClient(store if isinstance(store, str) else f"sqlite:///{store}")
    experiment = client.get_experiment_by_name("imdb-exp")
    return client, client.search_runs([experiment.experiment_id], filter_string, order_by=["start_time ASC"])


@contextmanager
def mlflow_server(backend_uri: str, cwd: Path) -> Iterator[str]:
    """A real `mlflow server` on a free loopback port over ``backend_uri``; yields its URL."""
    port = free_port()
    command = [
        str(Path(sys.executable).with_name("mlflow")),
        "server",
        "--backend-store-uri",
        backend_uri,
        "--artifacts-destination",
        str(cwd / "server-artifacts"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    # Its own process group: `mlflow server` starts uvicorn and job-runner children, which outlive a
    # signal to the parent alone and would take CPU from every later test.
    server = subprocess.Popen(
        command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(f"{url}/health", timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        else:
            raise RuntimeError("mlflow server did not answer within 2 minutes")
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
