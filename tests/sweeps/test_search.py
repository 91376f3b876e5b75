"""hparams_search on Optuna >= 4: the search space, and a persistent study that resumes, is shared by
workers and prunes."""

from pathlib import Path

import optuna
import pytest
from hydra import compose, initialize_config_module
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from imdb_exp.config.schema import TrialConfig
from imdb_exp.errors import ConfigError
from imdb_exp.sweeps import search, study_storage
from imdb_exp.sweeps.occupancy import idle_share
from imdb_exp.tracking import record
from tests.support.commands import run_cli, start_cli
from tests.support.presets import DEBUG
from tests.support.store import recorded_runs
from tests.support.studies import SEARCH


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


@pytest.mark.parametrize("space", sorted(p.stem for p in (Path(__file__).parents[2] / "conf/hparams_search").iterdir()))
def test_each_shipped_search_space_searches_keys_of_its_model_with_optuna_distributions(space):
    with initialize_config_module("imdb_exp.conf", version_base="1.3"):
        cfg = compose("config", [f"hparams_search={space.removesuffix('.yaml')}"], return_hydra_config=True)
    for key, text in cfg.hydra.sweeper.params.items():
        assert OmegaConf.select(cfg, key, default=None) is not None, f"{space}: {key} is not a key of its model"
        assert isinstance(distribution(f"{key}={text}"), optuna.distributions.BaseDistribution)


def trials_of(runs) -> list[tuple[str, int]]:
    return sorted((r.data.tags[record.STUDY], int(r.data.tags[record.TRIAL])) for r in runs)


@pytest.mark.slow
@pytest.mark.e2e
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
    for parent in parents:  # the command as typed, to be run again: the sweeper's settings too
        assert parent.data.tags[record.SWEEP].endswith(f"data.archive={archive} hydra.sweeper.n_trials=2")
    for parent in parents:  # the study so far, drawn on each launch's parent
        assert record.SEARCH_HISTORY in {a.path for a in client.list_artifacts(parent.info.run_id, "search")}
    (results,) = tmp_path.glob("multirun/*/*/optimization_results.yaml")
    assert f"name: {study}" in results.read_text()


@pytest.mark.slow
@pytest.mark.e2e
def test_a_search_of_two_workers_on_the_basic_launcher_runs_its_trials_in_turn(tmp_path, archive, isolated_home):
    # The basic launcher runs jobs in this process, whose signal handling only its main thread may set.
    result = run_cli(*SEARCH, f"data.archive={archive}", "hydra.sweeper.n_jobs=2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    _, runs = recorded_runs(isolated_home / "mlflow.db", f"tags.{record.STUDY} != ''")
    assert sorted(int(run.data.tags[record.TRIAL]) for run in runs) == [0, 1]
    assert {run.info.status for run in runs} == {"FINISHED"}
    assert "the trials run one after another (hydra/launcher=joblib hydra.launcher.n_jobs=2" in result.stdout


@pytest.mark.slow
@pytest.mark.e2e
def test_a_search_whose_every_trial_fails_ends_failed_with_its_table(tmp_path, archive, isolated_home):
    # Rates no check refuses, at which the loss is no longer finite.
    result = run_cli(*SEARCH, f"data.archive={archive}", "optimizer.learning_rate=interval(1e29, 1e30)", cwd=tmp_path)
    assert result.returncode == 1
    assert "2 of 2 sweep jobs failed" in result.stderr
    client, runs = recorded_runs(isolated_home / "mlflow.db")
    (parent,) = [r for r in runs if record.SWEEP in r.data.tags]
    assert parent.info.status == "FAILED" and record.BEST_RUN_ID not in parent.data.tags
    assert [r.info.status for r in runs if r is not parent] == ["FAILED", "FAILED"]
    assert record.SWEEP_RESULTS_CSV in {a.path for a in client.list_artifacts(parent.info.run_id, record.SWEEP)}


@pytest.mark.slow
@pytest.mark.e2e
def test_parallel_trials_start_as_workers_free_up_not_when_their_batch_ends(tmp_path, archive, isolated_home):
    # Trials of very different lengths, one epoch or forty, as the seeded sampler draws them.
    lengths = ["trainer.epochs=choice(1,40)", "hydra.sweeper.pruner=null", "hydra.sweeper.sampler.seed=0"]
    parallel = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "hydra.sweeper.n_jobs=2"]
    search = ["-m", "hparams_search=dense", "hydra.sweeper.n_trials=6", *lengths, *parallel, *DEBUG]
    result = run_cli(*search, f"data.archive={archive}", "tracking.log_model=false", cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    _, trials = recorded_runs(isolated_home / "mlflow.db", f"tags.{record.JOB} != ''")
    assert sorted(int(t.data.tags[record.JOB]) for t in trials) == list(range(6))
    assert {t.info.status for t in trials} == {"FINISHED"}
    assert {t.data.params["trainer.epochs"] for t in trials} == {"1", "40"}
    idle, share = idle_share([(t.info.start_time / 1000, t.info.end_time / 1000) for t in trials], workers=2)
    # Measured 0.06 here; launched in batches of two, the same trials left the workers idle 0.22 of the time.
    assert share < 0.15, f"the workers stood idle {idle:.1f} s ({share:.0%}) while trials waited"


def test_a_trial_that_ended_in_its_study_is_reported_nothing_when_its_run_is_continued(tmp_path):
    # A stopped trial ends FAIL in its study; its run, continued with resume=RUN_ID, reported to it
    # after its first epoch and failed with Optuna's UpdateFinishedTrialError.
    journal = str(tmp_path / "optuna-journal.log")
    study = optuna.create_study(study_name="dense-0", storage=study_storage.open_storage(journal))
    stopped, running = study.ask(), study.ask()
    study.tell(stopped, state=optuna.trial.TrialState.FAIL)
    history = {search.REPORTED: [0.61]}
    for trial in (stopped, running):
        search.TrialReporter(TrialConfig(study="dense-0", storage=journal, number=trial.number)).report(
            1, history, last=False
        )
    assert [trial.intermediate_values for trial in study.get_trials()] == [{}, {1: 0.61}]


def test_the_pruner_stops_a_hopeless_trial_before_its_last_epoch_never_after_it(tmp_path):
    # After the last epoch the fit is done: pruning then saved no time and threw its results away.
    journal = str(tmp_path / "optuna-journal.log")
    pruner = {"_target_": "optuna.pruners.MedianPruner", "n_startup_trials": 1, "n_warmup_steps": 0}
    study = optuna.create_study(study_name="dense-0", storage=study_storage.open_storage(journal), direction="maximize")
    study.set_user_attr(search.PRUNER_ATTR, pruner)
    good = study.ask()
    good.report(0.9, step=1)
    study.tell(good, 0.9)
    hopeless = {search.REPORTED: [0.5]}
    for last in (False, True):
        reporter = search.TrialReporter(TrialConfig(study="dense-0", storage=journal, number=study.ask().number))
        if last:
            reporter.report(1, hopeless, last=True)
        else:
            with pytest.raises(search.TrialPruned):
                reporter.report(1, hopeless, last=False)
    assert [trial.intermediate_values for trial in study.get_trials()[1:]] == [{1: 0.5}, {1: 0.5}]


def test_a_search_is_checked_at_each_choice_and_at_both_ends_of_each_range():
    params = {"model.dropout": "interval(0.0, 0.5)", "trainer.batch_size": "choice(128, 512)"}
    command = ["trainer.epochs=2", "optimizer.learning_rate=tag(log, interval(1e-4, 1e-2))", "model.dropout=0.1"]
    fixed, space = search.fixed_and_space(params, command)
    assert fixed == ["trainer.epochs=2", "model.dropout=0.1"]  # a value given on the command line is not searched
    assert search.each_end(fixed, space) == [
        [*fixed, "trainer.batch_size=128", "optimizer.learning_rate=0.0001"],
        [*fixed, "trainer.batch_size=512", "optimizer.learning_rate=0.0001"],
        [*fixed, "trainer.batch_size=128", "optimizer.learning_rate=0.01"],
    ]


def test_a_study_is_continued_only_in_its_direction_and_told_what_its_first_search_held_otherwise(tmp_path, caplog):
    journal = str(tmp_path / "optuna-journal.log")
    first = {"fixed": ["trainer.epochs=60"], "space": {"model.dropout": "interval(0.0, 0.5)"}}
    study = optuna.create_study(study_name="s", storage=study_storage.open_storage(journal), direction="maximize")
    study.set_user_attr(search.SETUP_ATTR, first)
    caplog.clear()
    search.check_continued(search.StudyOf("s", journal, first), "maximize", {})
    assert not caplog.records
    with pytest.raises(
        ConfigError, match="study s .* is to maximize its trials' value; hydra.sweeper.direction=minimize"
    ):
        search.check_continued(search.StudyOf("s", journal, first), "minimize", {})
    now = {"fixed": ["model.dropout=0.2", "trainer.epochs=1"], "space": {"optimizer.learning_rate": "interval(0.1, 1)"}}
    search.check_continued(search.StudyOf("s", journal, now), "maximize", {})
    (said,) = [record.getMessage() for record in caplog.records if record.name == search.log.name]
    assert "study s holds trials of a search with other settings (trainer.epochs=60 -> trainer.epochs=1, " in said
    assert "model.dropout searched: interval(0.0, 0.5) -> no, optimizer.learning_rate searched: no -> interval(" in said
    search.check_continued(
        search.StudyOf("new", journal, now), "minimize", {}
    )  # no such study yet: nothing to continue


def test_a_study_whose_trials_chose_among_other_values_is_not_continued(tmp_path):
    # Optuna refuses a categorical with other choices in the middle of the search ("does not support
    # dynamic value space"), leaving its trial RUNNING: refused before anything opens.
    journal = str(tmp_path / "optuna-journal.log")
    study = optuna.create_study(study_name="s", storage=study_storage.open_storage(journal), direction="maximize")
    study.ask({"trainer.batch_size": distribution("trainer.batch_size=choice(128, 256)")})
    setup = {"fixed": [], "space": {}}
    wider = {"trainer.batch_size": distribution("trainer.batch_size=choice(64, 128)")}
    with pytest.raises(ConfigError, match=r"study s searched trainer.batch_size=choice\(128, 256\), which "):
        search.check_continued(search.StudyOf("s", journal, setup), "maximize", wider)
    same = {"trainer.batch_size": distribution("trainer.batch_size=choice(128, 256)")}
    search.check_continued(search.StudyOf("s", journal, setup), "maximize", same)
