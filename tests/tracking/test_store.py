"""Which store a run goes to, and a server that does not answer."""

import signal
import subprocess
import sys
import time

import pytest

from imdb_exp.tracking import store
from tests.support.commands import run_cli
from tests.support.servers import free_port


def test_tracking_uri_resolution_order(monkeypatch, isolated_home):
    assert store.resolve_uri(None) == f"sqlite:///{isolated_home.resolve() / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert store.resolve_uri(None) == "http://127.0.0.1:5999"
    assert store.resolve_uri("sqlite:////elsewhere.db") == "sqlite:////elsewhere.db"


@pytest.mark.e2e
def test_a_tracking_server_that_does_not_answer_fails_fast_before_data(tmp_path, archive, isolated_home):
    started = time.monotonic()
    result = run_cli(f"tracking.uri=http://127.0.0.1:{free_port()}", f"data.archive={archive}", cwd=tmp_path)
    assert result.returncode == 2
    assert "imdb-exp: error: the MLflow server http://127.0.0.1:" in result.stderr
    assert "does not answer" in result.stderr and "Traceback" not in result.stderr
    assert time.monotonic() - started < 60
    assert not (isolated_home / "cache").exists()  # the reviews were not read


@pytest.mark.slow
def test_a_process_killed_while_it_creates_the_store_leaves_one_the_next_command_opens(tmp_path):
    """MLflow makes a new SQLite store through dozens of migrations; killed halfway, the old way left
    a schema no later command could open (about one kill in five, measured)."""
    for delay in (0.1, 0.3, 0.5, 0.7, 0.9, 1.1):  # after its file appears: MLflow migrates for about 1.3 s
        folder = tmp_path / str(delay)  # a store of its own: MLflow caches a store by its URI
        folder.mkdir()
        uri = f"sqlite:///{folder}/mlflow.db"
        making = f"from imdb_exp.tracking import store; store.client('{uri}')"
        process = subprocess.Popen([sys.executable, "-c", making], stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while not [path for path in folder.glob("mlflow.db*") if path.suffix != ".lock"]:
            assert process.poll() is None and time.monotonic() < deadline, "the store was never begun"
            time.sleep(0.01)
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait()
        client = store.client(uri)
        assert store.experiment_id(client, "imdb-exp") == client.get_experiment_by_name("imdb-exp").experiment_id
