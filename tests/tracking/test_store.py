"""Which store a run goes to, and a server that does not answer."""

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
def test_a_tracking_server_that_does_not_answer_fails_fast_before_data(tmp_path):
    started = time.monotonic()
    result = run_cli(f"tracking.uri=http://127.0.0.1:{free_port()}", "data.archive=/nonexistent.tar.gz", cwd=tmp_path)
    assert result.returncode == 2
    assert "imdb-exp: error: the MLflow server http://127.0.0.1:" in result.stderr
    assert "does not answer" in result.stderr and "Traceback" not in result.stderr
    assert time.monotonic() - started < 60
