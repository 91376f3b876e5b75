"""The imdb-exp-compare command in a subprocess, on two runs of the imdb-exp command."""

import time

import pytest
from mlflow.tracking import MlflowClient

from imdb_exp.analysis import predictions
from tests.support.archives import write_archive
from tests.support.commands import run_cli
from tests.support.presets import DEBUG
from tests.support.store import recorded_runs


@pytest.mark.slow
@pytest.mark.e2e
def test_imdb_exp_compare_reads_two_runs_predictions_and_refuses_runs_of_another_archive(
    tmp_path, archive, isolated_home
):
    for model in ("dense", "ngram"):
        result = run_cli(f"model={model}", f"data.archive={archive}", *DEBUG, "tracking.log_model=false", cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
    other = write_archive(tmp_path / "other.tar.gz", {"train": 100, "test": 40})
    result = run_cli(f"data.archive={other}", *DEBUG, "tracking.log_model=false", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    client, (dense, ngram, elsewhere) = recorded_runs(isolated_home / "mlflow.db")
    kept = predictions.of_run(client, dense.info.run_id)
    assert len(kept.test.rows) == 120 and len(kept.val.rows) == 50  # 25% of the 200 training reviews held out
    assert kept.test.correct().mean() == pytest.approx(dense.data.metrics["test_accuracy"])

    result = run_cli(dense.info.run_id, ngram.info.run_id, cwd=tmp_path, program="imdb-exp-compare")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"A {dense.info.run_id} (dense-rmsprop): test accuracy {dense.data.metrics['test_accuracy']:.4f}"
    assert lines[1].startswith(f"B {ngram.info.run_id} (ngram-adam): test accuracy ")
    assert "95% interval" in lines[2] and "10,000 resamples of the 120 test reviews" in lines[2]
    assert lines[4].startswith("McNemar's exact test: p = ")

    refused = run_cli(dense.info.run_id, elsewhere.info.run_id, cwd=tmp_path, program="imdb-exp-compare")
    assert refused.returncode == 2
    assert refused.stderr.strip().startswith("imdb-exp-compare: error: the runs were tested on different data")


@pytest.mark.e2e
def test_a_store_that_is_not_there_is_said_and_left_uncreated(tmp_path, isolated_home):
    result = run_cli("a" * 32, "b" * 32, cwd=tmp_path, program="imdb-exp-compare")  # the default store: none yet
    assert result.returncode == 2 and "Traceback" not in result.stderr
    database = isolated_home / "mlflow.db"
    assert result.stderr.strip() == (
        f"imdb-exp-compare: error: no store at {database} (--tracking-uri or MLFLOW_TRACKING_URI names another store)"
    )
    assert not database.exists()


@pytest.mark.e2e
def test_the_same_run_twice_an_unfinished_run_and_a_server_that_does_not_answer_are_each_said_in_one_line(
    tmp_path,
):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("imdb-exp")
    killed, other = (client.create_run(experiment).info.run_id for _ in range(2))
    client.set_terminated(killed, "KILLED")

    same = run_cli(killed, killed, "--tracking-uri", uri, cwd=tmp_path, program="imdb-exp-compare")
    assert same.returncode == 2 and f"run_a and run_b are the same run ({killed}): give two runs" in same.stderr
    unfinished = run_cli(killed, other, "--tracking-uri", uri, cwd=tmp_path, program="imdb-exp-compare")
    assert unfinished.returncode == 2 and "Traceback" not in unfinished.stderr
    assert f"run {killed} is KILLED: a run keeps its model and predictions when it finishes" in unfinished.stderr

    started = time.monotonic()
    absent = run_cli(killed, other, "--tracking-uri", "http://127.0.0.1:9", cwd=tmp_path, program="imdb-exp-compare")
    assert time.monotonic() - started < 60  # MLflow's own retries would take minutes
    assert absent.returncode == 1  # the store failed, not what the command was given
    assert "imdb-exp-compare: error: the MLflow server http://127.0.0.1:9 does not answer" in absent.stderr
    assert "start it or fix --tracking-uri" in absent.stderr
