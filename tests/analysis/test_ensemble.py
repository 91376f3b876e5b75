"""Runs combined by greedy selection on validation predictions, into a run with a servable model."""

import numpy as np
import pytest
from mlflow import MlflowClient

from imdb_exp.analysis import ensemble
from imdb_exp.analysis.predictions import Predictions, PredictionsError, Scored
from imdb_exp.tracking import record


def scored(probabilities, labels=None, rows=None) -> Scored:
    probabilities = np.asarray(probabilities, float)
    labels = np.ones(len(probabilities)) if labels is None else np.asarray(labels)
    return Scored(np.arange(len(probabilities)) if rows is None else rows, labels, probabilities)


def test_selection_on_validation_combines_members_that_err_on_different_reviews():
    # Every review positive. A is right on the first half (barely wrong on the rest), B the reverse;
    # C is right on 60% of the reviews but wrong by far on the rest.
    first, second = np.r_[[0.9] * 50, [0.45] * 50], np.r_[[0.45] * 50, [0.9] * 50]
    weak = np.r_[[0.6] * 60, [0.05] * 40]
    members = [scored(first), scored(second), scored(weak)]
    counts = ensemble.select(members, rounds=10)
    assert counts[0] > 0 and counts[1] > 0  # C, alone the best, may start it
    together = ensemble.combined(members, counts / counts.sum())
    assert np.mean(together.correct()) == 1.0 > max(np.mean(m.correct()) for m in members)


def test_the_selection_keeps_its_best_round_never_below_its_best_member_on_validation():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 400).astype(float)
    members = [scored(np.clip(labels * 0.6 + rng.normal(0.2, s, 400), 0, 1), labels) for s in (0.25, 0.3, 0.35, 0.4)]
    for rounds in (1, 3, 10, 25):
        chosen = ensemble.combined(members, (counts := ensemble.select(members, rounds)) / counts.sum())
        assert np.mean(chosen.correct()) >= max(np.mean(m.correct()) for m in members)


def test_a_selection_is_kept_only_where_it_beats_its_best_member_beyond_chance():
    first, second = np.r_[[0.9] * 50, [0.45] * 50], np.r_[[0.45] * 50, [0.9] * 50]
    apart = [scored(first), scored(second), scored(np.r_[[0.6] * 60, [0.05] * 40])]
    counts, p = ensemble.beyond_chance(apart, ensemble.select(apart, rounds=10))
    assert np.count_nonzero(counts) >= 2 and p < 0.05  # 100 of 100 right against 60: kept
    # Two members that differ on 3 of 400 reviews: a combination one review better is chance.
    labels = np.ones(400)
    a = scored(np.r_[[0.9] * 396, [0.4] * 4], labels)
    b = scored(np.r_[[0.9] * 395, [0.45, 0.45, 0.8, 0.8], [0.4]], labels)
    counts, p = ensemble.beyond_chance([a, b], np.array([1, 1]))
    assert np.mean(ensemble.combined([a, b], np.array([0.5, 0.5])).correct()) > np.mean(a.correct())
    assert counts.tolist() == [0, 1] and p > 0.05  # b alone, the better member on validation


def test_members_held_out_on_other_reviews_or_tested_on_other_data_are_refused():
    def kept(source="sha", first_row=0):
        return Predictions(source, scored([0.9] * 6), scored([0.9] * 4, rows=np.arange(first_row, first_row + 4)))

    names = ["run a", "run b"]
    ensemble.check_alike([kept(), kept()], names)  # alike: nothing to say
    with pytest.raises(PredictionsError, match="run b's val reviews are not run a's"):
        ensemble.check_alike([kept(), kept(first_row=1)], names)
    with pytest.raises(PredictionsError, match="run b was tested on other data than run a"):
        ensemble.check_alike([kept(), kept(source="other")], names)


def test_a_parent_brings_its_finished_jobs_but_pruned_trials_which_kept_nothing(tmp_path):
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.create_experiment("e")
    parent = client.create_run(experiment, tags={record.SWEEP: "hparams_search=dense"}).info.run_id
    outcomes = {
        "kept": ("FINISHED", {}),
        "pruned": ("FINISHED", {record.PRUNED_AT_EPOCH: "1"}),
        "failed": ("FAILED", {}),
    }
    ids = {}
    for number, (name, (status, tags)) in enumerate(outcomes.items()):
        ids[name] = client.create_run(experiment, tags=tags, run_name=name).info.run_id
        client.set_terminated(ids[name], status)
        record.count_job(client, parent, str(number), ids[name])
    assert [run.info.run_id for run in ensemble.members_of(client, [parent])] == [ids["kept"]]
    assert record.why_nothing_kept(client.get_run(parent)).startswith("is a sweep's parent run: its jobs keep")
    pruned = client.get_run(ids["pruned"])
    assert record.why_nothing_kept(pruned) == (
        "was pruned by its search after epoch 1: a pruned trial keeps no model or predictions"
    )
