"""The imdb-exp-ensemble command in a subprocess, on a sweep of the imdb-exp command."""

import numpy as np
import pytest

from imdb_exp.analysis import predictions
from imdb_exp.tracking import record
from tests.support.commands import run_cli
from tests.support.presets import DEBUG
from tests.support.store import recorded_runs


@pytest.mark.slow
@pytest.mark.e2e
def test_imdb_exp_ensemble_of_a_sweep_is_a_run_with_members_weights_metrics_and_a_model_that_serves(
    tmp_path, archive, isolated_home
):
    result = run_cli("-m", "model=dense,ngram", f"data.archive={archive}", *DEBUG, "trainer.epochs=3", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    client, runs = recorded_runs(isolated_home / "mlflow.db")
    (parent,) = [r for r in runs if record.SWEEP in r.data.tags]
    members = {r.info.run_id for r in runs if r is not parent}

    made = run_cli(parent.info.run_id, cwd=tmp_path, program="imdb-exp-ensemble")
    assert made.returncode == 0, made.stderr[-3000:]
    last = made.stdout.strip().splitlines()[-1]
    assert last.startswith("imdb-exp-ensemble: run ") and ", test accuracy " in last
    run_id = last.split()[2].rstrip(":")
    run = client.get_run(run_id)
    assert set(run.data.tags[record.MEMBERS].split(",")) == members
    # Each candidate's weight, named after it; the ensemble belongs to the sweep its members come from.
    weights = {key: value for key, value in run.data.metrics.items() if key.startswith("weight/")}
    assert set(weights) == {"weight/dense", "weight/ngram"} and sum(weights.values()) == pytest.approx(1.0, abs=1e-3)
    assert run.data.tags[record.PARENT] == parent.info.run_id and run.info.run_name.startswith("ensemble ")
    assert "[dense](#/experiments/" in run.data.tags[record.NOTE]
    kept = predictions.of_run(client, run_id)
    assert run.data.metrics["test_accuracy"] == pytest.approx(np.mean(kept.test.correct()))
    assert run.data.metrics["final_val_accuracy"] == pytest.approx(np.mean(kept.val.correct()))
    assert {record.ROC_FIGURE, record.PREDICTIONS} <= {a.path for a in client.list_artifacts(run_id, "evaluation")}
    served = run_cli("--run-id", run_id, "a wonderful film", cwd=tmp_path, program="imdb-exp-predict")
    assert served.returncode == 0, served.stderr[-3000:]
    label, probability, _ = served.stdout.strip().split("\t")
    assert label in ("positive", "negative") and 0.0 <= float(probability) <= 1.0

    # The same sweep launched again counts the runs the first launch trained as its jobs: an ensemble of
    # it belongs to it, though its members are nested under the first.
    again = run_cli("-m", "model=dense,ngram", f"data.archive={archive}", *DEBUG, "trainer.epochs=3", cwd=tmp_path)
    assert again.returncode == 0 and again.stdout.count("already done") == 2, again.stderr[-3000:]
    (relaunch,) = [r for r in recorded_runs(isolated_home / "mlflow.db")[1] if r.data.tags.get(record.SWEEP)
                   and r.info.run_id != parent.info.run_id]  # fmt: skip
    made = run_cli(relaunch.info.run_id, cwd=tmp_path, program="imdb-exp-ensemble")
    assert made.returncode == 0, made.stderr[-3000:]
    second = client.get_run(made.stdout.strip().splitlines()[-1].split()[2].rstrip(":"))
    assert second.data.tags[record.PARENT] == relaunch.info.run_id
    assert set(second.data.tags[record.MEMBERS].split(",")) == members

    other = run_cli(f"data.archive={archive}", *DEBUG, "data.val_size=0.3", cwd=tmp_path)
    assert other.returncode == 0, other.stderr[-3000:]
    _, (*_, elsewhere) = recorded_runs(isolated_home / "mlflow.db")
    refused = run_cli(parent.info.run_id, elsewhere.info.run_id, cwd=tmp_path, program="imdb-exp-ensemble")
    assert refused.returncode == 2 and "val reviews are not" in refused.stderr
