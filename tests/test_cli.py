"""The installed command end to end, in a subprocess, from an unrelated working directory."""

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import FAST, run_cli


def test_help_lists_every_group_and_option(tmp_path):
    result = run_cli("--help", cwd=tmp_path)
    assert result.returncode == 0
    for line in ("data: multihot, padded", "model: cnn_lstm, dense, lstm, lstm_dropout", "optimizer: adam, rmsprop"):
        assert line in result.stdout
    for key in ("num_words", "val_size", "batch_size", "backend", "learning_rate", "experiment"):
        assert f"{key}:" in result.stdout


def test_impossible_pairing_stops_with_one_line_and_no_run(tmp_path, isolated_home):
    result = run_cli("model=lstm", "data=multihot", "data.archive=/nonexistent.tar.gz", cwd=tmp_path)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("imdb-exp: error:")]
    assert errors == [
        "imdb-exp: error: model family 'lstm' reads data=padded, but data=multihot was chosen; "
        "drop the data override or pick data=padded"
    ]
    assert "Traceback" not in result.stderr
    assert not (isolated_home / "mlflow.db").exists()


@pytest.mark.slow
def test_a_sweep_adds_one_run_per_job_to_the_default_store(tmp_path, archive, isolated_home):
    result = run_cli("-m", "model=dense,lstm", f"data.archive={archive}", *FAST, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{isolated_home / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("imdb-exp")
    found = client.search_runs([experiment.experiment_id])
    assert sorted(r.data.tags["model"] for r in found) == ["dense", "lstm"]
    assert {r.info.status for r in found} == {"FINISHED"}
    assert all(0.0 <= r.data.metrics["test_accuracy"] <= 1.0 for r in found)
    assert not (tmp_path / "mlruns").exists()
