"""Sweeps over seeds summarised as mean and sd, with intervals and Welch's test against the best."""

import math
import statistics

import pytest
from scipy import stats

from imdb_exp.analysis import summary


def test_a_seed_summary_gives_95_percent_intervals_and_welchs_test_against_the_best():
    def row(overrides, accuracy):
        return {"configuration": overrides.split()[0], "overrides": overrides, "status": "FINISHED",
                "test_accuracy": accuracy, "test_auc": 0.9, "final_val_accuracy": accuracy,
                "fit_seconds": 1.0}  # fmt: skip

    best, close, apart = [0.86, 0.87, 0.88], [0.855, 0.87, 0.875], [0.80, 0.81, 0.82]
    configurations = {"a": best, "b": close, "c": apart}
    rows = [
        row(f"{name} trainer.seed={seed}", value) for name, v in configurations.items() for seed, value in enumerate(v)
    ]
    a, b, c = summary.by_configuration(rows)
    # t(0.975, 2 df) = 4.302653; sd of best = 0.01: the half-width is 4.302653 * 0.01 / sqrt(3)
    half = 4.302653 * 0.01 / math.sqrt(3)
    assert (a["test_accuracy_ci_low"], a["test_accuracy_ci_high"]) == pytest.approx((0.87 - half, 0.87 + half))
    # Welch's t for c against a: equal sds of 0.01, n = 3 each: t = 0.06 / sqrt(2 * 0.01**2 / 3), 4 df.
    t = 0.06 / math.sqrt(2 * 0.01**2 / 3)
    assert c["test_accuracy_p_vs_best"] == pytest.approx(2 * stats.t.sf(t, 4))
    assert c["test_accuracy_p_vs_best"] < 0.05 < b["test_accuracy_p_vs_best"] and a["test_accuracy_p_vs_best"] is None
    words = summary.in_words([a, b, c])
    assert "best `a`, mean 0.8700 (n=3)" in words
    assert "`b` (-0.0033): not distinguishable from the best at 5%" in words
    assert "`c` (-0.0600): lower beyond chance (Welch p=0.00" in words


def test_a_seed_summary_counts_finished_runs_and_gives_mean_and_sd():
    def row(overrides, status="FINISHED", accuracy=0.8):
        return {
            # The runs' config_group tag: blind to seeds and folds.
            "configuration": " ".join(
                ["dense adam", *(o for o in overrides.split() if "seed" not in o and "fold" not in o)]
            ),
            "overrides": overrides,
            "status": status,
            "test_accuracy": accuracy,
            "test_auc": 0.9,
            "final_val_accuracy": 0.85,
            "fit_seconds": 1.0,
        }

    rows = [
        row("lr=1 trainer.seed=0", accuracy=0.80),
        row("lr=1 trainer.seed=1", accuracy=0.90),
        row("lr=1 trainer.seed=2", "FAILED", None),
        row("lr=2 trainer.seed=0", accuracy=0.70),
        row("lr=2 trainer.seed=1", accuracy=None),
    ]  # a pruned trial: FINISHED without a model
    assert summary.replicates_vary(["optimizer.learning_rate", "trainer.seed"])
    assert summary.replicates_vary(["model", "data.fold"]) and not summary.replicates_vary(["model", "optimizer"])
    assert summary.replicates_vary(["data.split_seed"])
    first, second = summary.by_configuration(rows)
    assert (first["configuration"], first["n"], second["configuration"], second["n"]) == ("lr=1", 2, "lr=2", 1)
    assert first["test_accuracy_mean"] == pytest.approx(0.85)
    assert first["test_accuracy_sd"] == pytest.approx(statistics.stdev([0.8, 0.9]))
    assert second["test_accuracy_sd"] is None
    assert first["test_accuracy_diff_vs_best"] == 0 and second["test_accuracy_diff_vs_best"] == pytest.approx(-0.15)
    assert second["test_accuracy_p_vs_best"] is None  # one run: nothing to test
    (folds,) = summary.by_configuration([row("data.fold=0", accuracy=0.8), row("data.fold=1", accuracy=0.9)])
    assert folds["configuration"] == summary.ONLY_REPLICATES and folds["n"] == 2  # named, not an empty cell
    # A configuration at its presets beside one that sets a value: not "all", which would say it holds every run.
    base, varied = summary.by_configuration([row("trainer.seed=0"), row("lr=2 trainer.seed=0")])
    assert (base["configuration"], varied["configuration"]) == (summary.AT_PRESETS, "lr=2")
    assert summary.curve_bands([[0.5, 0.7, 0.9], [0.7, 0.9]]) == (
        pytest.approx([0.6, 0.8, 0.9]),
        pytest.approx([statistics.stdev([0.5, 0.7])] * 2 + [0.0]),
    )


def test_a_summary_that_puts_transductive_runs_beside_others_warns_and_one_of_a_kind_does_not():
    def row(configuration, seed, transductive):
        return {"configuration": configuration, "overrides": f"{configuration} trainer.seed={seed}",
                "status": "FINISHED", "test_accuracy": 0.9 + seed / 100, "test_auc": 0.95,
                "final_val_accuracy": 0.9, "fit_seconds": 1.0, "transductive": transductive}  # fmt: skip

    mixed = [row("data.unlabeled=[]", s, False) for s in range(2)] + [
        row("data.unlabeled=[test]", s, True) for s in range(2)
    ]
    words = summary.in_words(summary.by_configuration(mixed))
    assert "- Warning: `data.unlabeled=[test]` learned from the test reviews' text (transductive)" in words
    alike = [row("data.unlabeled=[test] model.dim=100", s, True) for s in range(2)]
    alike += [row("data.unlabeled=[test] model.dim=200", s, True) for s in range(2)]
    assert "Warning" not in summary.in_words(summary.by_configuration(alike))
