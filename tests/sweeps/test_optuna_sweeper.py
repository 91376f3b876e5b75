"""The project's Optuna sweeper (hydra_plugins/imdb_exp_optuna): each job's end told to the study, the
search drawn on its parent run."""

import optuna
from hydra.core.utils import JobReturn, JobStatus
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from hydra_plugins.imdb_exp_optuna.optuna_sweeper import _draw_the_search, _tell
from imdb_exp.sweeps import search
from imdb_exp.tracking import record
from tests.support.studies import study_in


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
