"""Two runs compared review by review: kept predictions, the paired difference, McNemar's test."""

import numpy as np
import pytest

from imdb_exp.analysis import predictions
from imdb_exp.analysis.compare import compare
from imdb_exp.analysis.predictions import Predictions, PredictionsError, Scored
from tests.conftest import DEBUG, recorded_runs, run_cli, write_archive


def predicted(right: np.ndarray, source: str = "archive-sha") -> Predictions:
    """Predictions that get exactly the reviews in ``right`` right (labels all positive)."""
    rows = np.arange(len(right))
    return Predictions(source, Scored(rows, np.ones(len(right)), np.where(right, 0.9, 0.1)), None)


def test_the_paired_difference_its_interval_and_mcnemars_exact_p_value():
    # 100 reviews: both right on 80, only A on 10, only B on 2, neither on 8.
    a = np.array([True] * 80 + [True] * 10 + [False] * 2 + [False] * 8)
    b = np.array([True] * 80 + [False] * 10 + [True] * 2 + [False] * 8)
    c = compare(predicted(a), predicted(b))
    assert (c.accuracy_a, c.accuracy_b, c.only_a, c.only_b, c.both) == (0.9, 0.82, 10, 2, 80)
    assert c.difference == pytest.approx(0.08)
    # Two-sided exact binomial test of 2 successes in 12 at p = 1/2: 2 * (1 + 12 + 66) / 4096.
    assert c.p_value == pytest.approx(2 * 79 / 4096)
    # The bootstrap's spread: the sd of the paired difference's mean is sqrt((0.12 - 0.08**2) / 100).
    sd = np.sqrt((0.12 - 0.08**2) / 100)
    assert c.interval[0] == pytest.approx(0.08 - 1.96 * sd, abs=0.01) and c.interval[1] == pytest.approx(
        0.08 + 1.96 * sd, abs=0.01
    )
    same = compare(predicted(a), predicted(a))
    assert (same.p_value, same.interval) == (1.0, (0.0, 0.0))


def test_runs_tested_on_other_reviews_are_refused():
    right = np.ones(10, bool)
    with pytest.raises(PredictionsError, match="tested on different data"):
        compare(predicted(right), predicted(right, source="another-archive"))
    with pytest.raises(PredictionsError, match="tested on different reviews"):
        compare(predicted(right), predicted(right[:8]))


@pytest.mark.slow
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
    assert refused.returncode == 1
    assert refused.stderr.strip().startswith("imdb-exp-compare: error: the runs were tested on different data")
