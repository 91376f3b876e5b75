"""The imdb-exp-predict command in a subprocess."""

import pytest
from mlflow.tracking import MlflowClient

from imdb_exp.tracking import record
from tests.support.commands import run_cli


@pytest.mark.e2e
def test_predict_command_refuses_empty_input_before_loading_a_model(tmp_path):
    (tmp_path / "empty.txt").write_text("\n  \n")
    result = run_cli("--model", "models:/none@candidate", "--file", str(tmp_path / "empty.txt"), cwd=tmp_path,
                     program="imdb-exp-predict")  # fmt: skip
    assert result.returncode == 2
    assert "no reviews: the 2 reviews given are empty; give them as arguments, with --file," in result.stderr


@pytest.mark.e2e
def test_predict_command_says_in_one_line_that_a_file_of_reviews_is_missing(tmp_path):
    result = run_cli("--model", "models:/none@candidate", "--file", str(tmp_path / "absent.txt"), cwd=tmp_path,
                     program="imdb-exp-predict")  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"--file {tmp_path / 'absent.txt'}: No such file or directory" in result.stderr


@pytest.mark.e2e
def test_predict_command_asks_for_a_job_when_given_a_sweeps_parent_run(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    parent = client.create_run(client.create_experiment("imdb-exp"), tags={record.SWEEP: "optimizer=rmsprop,adam"})
    result = run_cli("--run-id", parent.info.run_id, "--tracking-uri", uri, "a fine film", cwd=tmp_path,
                     program="imdb-exp-predict")  # fmt: skip
    assert result.returncode == 2, result.stderr[-2000:]
    assert f"run {parent.info.run_id} is a sweep's parent run: give one of its jobs' run ids" in result.stderr


@pytest.mark.e2e
def test_a_run_id_not_in_the_store_is_said_with_the_store_it_was_looked_for_in(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    MlflowClient(uri).search_experiments()  # the store exists, without the run
    result = run_cli("--run-id", "0" * 32, "--tracking-uri", uri, "a fine film", cwd=tmp_path,
                     program="imdb-exp-predict")  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"not found in {uri} (--tracking-uri or MLFLOW_TRACKING_URI names another store)" in result.stderr


@pytest.mark.e2e
def test_empty_reviews_are_named_when_left_out_and_an_unfinished_run_is_said_to_have_no_model_yet(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    running = client.create_run(client.create_experiment("imdb-exp"))  # a run still training: no model yet
    result = run_cli("--run-id", running.info.run_id, "--tracking-uri", uri, "a fine film", "", "dull", " ",
                     cwd=tmp_path, program="imdb-exp-predict")  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "imdb-exp-predict: warning: reviews 2, 4 are empty, left out of the output" in result.stderr
    assert (
        f"run {running.info.run_id} is RUNNING: a run keeps its model and predictions when it finishes" in result.stderr
    )
