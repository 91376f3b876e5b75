"""hparams_search on Optuna >= 4: a persistent study that resumes, is shared by workers and prunes;
and sweeps over seeds summarised as mean and sd."""

import math
import statistics
from pathlib import Path

import optuna
import pytest
from hydra import compose, initialize_config_module
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn, JobStatus
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf
from optuna.trial import TrialState
from scipy import stats

from hydra_plugins.imdb_exp_optuna.optuna_sweeper import _draw_the_search, _tell
from imdb_exp.analysis import summary
from imdb_exp.run.train import train
from imdb_exp.sweeps import search, study_storage
from imdb_exp.tracking import record
from imdb_exp.training import checkpoints
from tests.conftest import DEBUG, recorded_runs, run_cli, start_cli, wait_for_epochs

SEARCH = [
    "-m",
    "hparams_search=dense",
    "hydra.sweeper.n_trials=2",
    "trainer.epochs=2",
    *DEBUG,
    "tracking.log_model=false",
]


def distribution(text: str):
    (override,) = OverridesParser.create().parse_overrides([text])
    return search.distribution(override.key_or_group, override)


def test_hydra_sweep_syntax_becomes_optuna_distributions():
    d = optuna.distributions
    assert distribution("a=choice(1, 2)") == d.CategoricalDistribution([1, 2])
    assert distribution('a=choice("[16,16]", "[64]")') == d.CategoricalDistribution(["[16,16]", "[64]"])
    assert distribution("a=range(2, 10, 2)") == d.IntDistribution(2, 8, step=2)  # 2, 4, 6, 8 as range() gives
    assert distribution("a=interval(0.0, 0.5)") == d.FloatDistribution(0.0, 0.5)
    assert distribution("a=tag(log, interval(1e-4, 1e-2))") == d.FloatDistribution(1e-4, 1e-2, log=True)
    assert distribution("a=tag(int, interval(1, 8))") == d.IntDistribution(1, 8)


@pytest.mark.parametrize("space", sorted(p.stem for p in (Path(__file__).parents[1] / "conf/hparams_search").iterdir()))
def test_each_shipped_search_space_searches_keys_of_its_model_with_optuna_distributions(space):
    with initialize_config_module("imdb_exp.conf", version_base="1.3"):
        cfg = compose("config", [f"hparams_search={space.removesuffix('.yaml')}"], return_hydra_config=True)
    for key, text in cfg.hydra.sweeper.params.items():
        assert OmegaConf.select(cfg, key, default=None) is not None, f"{space}: {key} is not a key of its model"
        assert isinstance(distribution(f"{key}={text}"), optuna.distributions.BaseDistribution)


def study_in(tmp_path, **kwargs) -> optuna.Study:
    storage = study_storage.open_storage(str(tmp_path / "journal.log"))
    return optuna.create_study(study_name="s", storage=storage, direction="maximize", **kwargs)


def job_return(value, status=JobStatus.COMPLETED) -> JobReturn:
    result = JobReturn()
    result.status, result.return_value = status, value
    return result


def test_each_jobs_end_is_told_to_the_study(tmp_path):
    study = study_in(tmp_path)
    outcomes = [
        job_return(0.8),
        job_return(search.Pruned(epoch=2)),
        job_return(None),
        job_return(RuntimeError("x"), JobStatus.FAILED),
    ]
    for outcome in outcomes:
        _tell(study, study.ask(), outcome)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "PRUNED", "FAIL", "FAIL"]
    assert study.trials[0].value == 0.8


def test_a_searchs_parent_run_gets_its_history_and_its_parameter_importances(tmp_path, isolated_home, caplog):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("imdb-exp", artifact_location=(tmp_path / "artifacts").as_uri())
    parent = client.create_run(experiment).info.run_id
    study = study_in(tmp_path)
    for lr, units in ((1e-3, 16), (1e-2, 16), (1e-3, 64), (1e-4, 64)):
        trial = study.ask({"lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True),
                           "units": optuna.distributions.CategoricalDistribution([16, 64])})  # fmt: skip
        study.tell(trial, 0.8 + (lr * 10) + (units / 1000))
    _draw_the_search(study, "maximize", parent, f"sqlite:///{tmp_path / 'mlflow.db'}")
    drawn = {a.path for a in client.list_artifacts(parent, "search")}
    assert drawn == {record.SEARCH_HISTORY, record.SEARCH_IMPORTANCES}

    alone = client.create_run(experiment).info.run_id  # a search whose every trial failed
    (tmp_path / "failed").mkdir()
    failed = study_in(tmp_path / "failed")
    failed.tell(failed.ask({"lr": optuna.distributions.FloatDistribution(1e-4, 1e-2)}), state=TrialState.FAIL)
    _draw_the_search(failed, "maximize", alone, f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert {a.path for a in client.list_artifacts(alone, "search")} == {record.SEARCH_HISTORY}
    assert "no parameter importances" in caplog.text


@pytest.mark.slow
def test_a_hopeless_trial_is_pruned_finished_and_tagged_not_failed(tmp_path, compose_cfg, archive, isolated_home):
    study = study_in(tmp_path, pruner=optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0))
    study.set_user_attr(search.PRUNER_ATTR, {"_target_": "optuna.pruners.MedianPruner", "n_startup_trials": 1})
    good = study.ask()
    for epoch in range(1, 6):
        good.report(1.0, step=epoch)
    study.tell(good, 1.0)
    hopeless = study.ask()
    plumbing = [f"trial.study={study.study_name}", f"trial.storage={tmp_path / 'journal.log'}", "trial.number=1"]
    cfg = compose_cfg(f"data.archive={archive}", *DEBUG, "trainer.epochs=5", "optimizer.learning_rate=1e-7", *plumbing)
    assert train(cfg, {}) == search.Pruned(epoch=1)
    _, (run,) = recorded_runs(isolated_home / "mlflow.db")
    assert run.info.status == "FINISHED" and run.data.tags[record.PRUNED_AT_EPOCH] == "1"
    assert (run.data.tags[record.STUDY], run.data.tags[record.TRIAL]) == ("s", "1")
    assert "test_accuracy" not in run.data.metrics and not checkpoints.path(run.info.run_id).exists()
    assert study.trials[1].intermediate_values == {1: pytest.approx(run.data.metrics["val_accuracy"])}
    assert hopeless.number == 1


def trials_of(runs) -> list[tuple[str, int]]:
    return sorted((r.data.tags[record.STUDY], int(r.data.tags[record.TRIAL])) for r in runs)


@pytest.mark.slow
def test_a_search_continues_its_study_and_two_workers_at_once_share_it(tmp_path, archive, isolated_home):
    # The same command twice at once on a new store, each in its own folder (its own multirun/), then once more.
    folders = [tmp_path / "a", tmp_path / "b"]
    for folder in folders:
        folder.mkdir()
    workers = [start_cli(*SEARCH, f"data.archive={archive}", cwd=folder) for folder in folders]
    codes = [worker.wait(timeout=300) for worker in workers]
    stderr = [worker.stderr.read() for worker in workers]
    assert codes == [0, 0] and not any("UserWarning: Callback" in err for err in stderr), stderr
    again = run_cli(*SEARCH, f"data.archive={archive}", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]

    client, runs = recorded_runs(isolated_home / "mlflow.db")
    parents, trials = (
        [r for r in runs if record.SWEEP in r.data.tags],
        [r for r in runs if record.SWEEP not in r.data.tags],
    )
    (study,) = {name for name, _ in trials_of(trials)}
    assert study.startswith("dense-")
    assert [number for _, number in trials_of(trials)] == list(range(6))  # each trial once, each an MLflow run
    storage = study_storage.open_storage(str(isolated_home / "optuna-journal.log"))  # beside the MLflow store
    states = [t.state.name for t in optuna.load_study(study_name=study, storage=storage).trials]
    assert len(states) == 6 and set(states) <= {"COMPLETE", "PRUNED"}
    # Each launch's parent names its best trial by the validation accuracy of the model it kept (a
    # launch whose trials were all pruned kept none).
    for parent in parents:
        mine = [t for t in trials if t.data.tags[record.PARENT] == parent.info.run_id]
        kept = {t.info.run_id: t.data.metrics["final_val_accuracy"] for t in mine if record.pruned_at(t) is None}
        assert parent.data.tags.get(record.BEST_RUN_ID) == (max(kept, key=kept.get) if kept else None)
    assert len(parents) == 3 and {p.info.status for p in parents} == {"FINISHED"}
    for parent in parents:  # the study so far, drawn on each launch's parent
        assert record.SEARCH_HISTORY in {a.path for a in client.list_artifacts(parent.info.run_id, "search")}
    (results,) = tmp_path.glob("multirun/*/*/optimization_results.yaml")
    assert f"name: {study}" in results.read_text()


@pytest.mark.slow
def test_a_search_whose_every_trial_fails_ends_failed_with_its_table(tmp_path, archive, isolated_home):
    result = run_cli(*SEARCH, f"data.archive={archive}", "optimizer.learning_rate=interval(-2, -1)", cwd=tmp_path)
    assert result.returncode == 1
    assert "2 of 2 sweep jobs failed" in result.stderr
    client, runs = recorded_runs(isolated_home / "mlflow.db")
    (parent,) = [r for r in runs if record.SWEEP in r.data.tags]
    assert parent.info.status == "FAILED" and record.BEST_RUN_ID not in parent.data.tags
    assert [r.info.status for r in runs if r is not parent] == ["FAILED", "FAILED"]
    assert record.SWEEP_RESULTS_CSV in {a.path for a in client.list_artifacts(parent.info.run_id, record.SWEEP)}


def test_a_seed_summary_gives_95_percent_intervals_and_welchs_test_against_the_best():
    def row(overrides, accuracy):
        return {"overrides": overrides, "status": "FINISHED", "test_accuracy": accuracy, "test_auc": 0.9,
                "final_val_accuracy": accuracy, "fit_seconds": 1.0}  # fmt: skip

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
    assert summary.replicates_vary([r["overrides"] for r in rows])
    assert summary.replicates_vary(["m=a data.fold=0", "m=a data.fold=1"]) and not summary.replicates_vary(
        ["m=a", "m=b"]
    )
    assert summary.configuration("m=a data.fold=1 trainer.seed=2") == "m=a"
    first, second = summary.by_configuration(rows)
    assert (first["configuration"], first["n"], second["configuration"], second["n"]) == ("lr=1", 2, "lr=2", 1)
    assert first["test_accuracy_mean"] == pytest.approx(0.85)
    assert first["test_accuracy_sd"] == pytest.approx(statistics.stdev([0.8, 0.9]))
    assert second["test_accuracy_sd"] is None
    assert first["test_accuracy_diff_vs_best"] == 0 and second["test_accuracy_diff_vs_best"] == pytest.approx(-0.15)
    assert second["test_accuracy_p_vs_best"] is None  # one run: nothing to test
    (folds,) = summary.by_configuration([row("data.fold=0", accuracy=0.8), row("data.fold=1", accuracy=0.9)])
    assert folds["configuration"] == summary.ONLY_REPLICATES and folds["n"] == 2  # named, not an empty cell
    assert summary.curve_bands([[0.5, 0.7, 0.9], [0.7, 0.9]]) == (
        pytest.approx([0.6, 0.8, 0.9]),
        pytest.approx([statistics.stdev([0.5, 0.7])] * 2 + [0.0]),
    )


@pytest.mark.slow
def test_a_trial_left_running_by_a_killed_search_is_failed_when_the_search_starts_again(
    tmp_path, archive, isolated_home
):
    search_args = [*SEARCH, f"data.archive={archive}", "hydra.sweeper.n_trials=1", "hydra.sweeper.study_name=orphans"]
    killed = start_cli(*search_args, "trainer.epochs=1000", cwd=tmp_path)
    wait_for_epochs(killed, isolated_home / "mlflow.db", 2)
    killed.kill()  # SIGKILL: nothing in the search can tell the study how its trial ended
    killed.wait(timeout=30)
    storage = study_storage.open_storage(str(isolated_home / "optuna-journal.log"))
    name = "orphans"
    assert [t.state.name for t in optuna.load_study(study_name=name, storage=storage).trials] == ["RUNNING"]

    again = run_cli(*search_args, "trainer.epochs=2", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    said = f"trial 0 of study {name} was RUNNING, but the search that ran it is gone: marked FAIL"
    assert said in again.stdout + again.stderr
    states = [t.state.name for t in optuna.load_study(study_name=name, storage=storage).trials]
    assert states[0] == "FAIL" and states[1] in ("COMPLETE", "PRUNED") and len(states) == 2


def test_a_live_searchs_trials_are_not_failed_by_another_search(tmp_path):
    spec = str(tmp_path / "journal.log")
    study = optuna.create_study(study_name="s", storage=study_storage.open_storage(spec))
    mine, unowned = study.ask(), study.ask()
    with study_storage.vouching_for(study, [mine], spec):
        study_storage.fail_orphaned_trials(study, spec)
        # The trial this process vouches for lives; one asked an instant ago may not name its owner yet.
        assert [t.state.name for t in study.trials] == ["RUNNING", "RUNNING"]
    assert unowned.number == 1


def test_a_call_the_database_dropped_mid_transaction_is_made_again_and_other_errors_are_not():
    from sqlalchemy.exc import OperationalError

    calls = []

    def dropped_twice():
        calls.append(1)
        if len(calls) < 3:  # as Optuna wraps a commit that a database restart cut off
            raise optuna.exceptions.StorageInternalError("commit failed") from OperationalError("x", {}, Exception())
        return "reported"

    assert study_storage.patiently(dropped_twice) == "reported" and len(calls) == 3

    def invalid():
        raise optuna.exceptions.StorageInternalError("value too long") from ValueError("too long")

    with pytest.raises(optuna.exceptions.StorageInternalError, match="value too long"):
        study_storage.patiently(invalid)
