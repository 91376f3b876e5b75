"""A study's storage: reachable from where trials run, the trials of a search that is gone failed, and
calls a database dropped made again."""

import time

import optuna
import pytest

from imdb_exp.errors import ConfigError
from imdb_exp.sweeps import study_storage
from tests.support.cluster import free_port
from tests.support.commands import run_cli, start_cli, wait_for_epochs
from tests.support.launcher_config import launcher
from tests.support.studies import SEARCH


@pytest.mark.parametrize(
    "overrides, elsewhere",
    [
        (["hydra/launcher=submitit_slurm"], True),
        (["hydra/launcher=ray", "+hydra.launcher.ray.init.address=auto"], True),
        (["hydra/launcher=ray"], False),  # a Ray instance started in this process, on this machine
        (["hydra/launcher=joblib"], False),
        ([], False),
    ],
)
def test_a_study_in_the_default_journal_is_refused_only_where_trials_run_on_other_machines(overrides, elsewhere):
    if elsewhere:
        with pytest.raises(ConfigError, match="postgresql://USER:PASSWORD@HOST"):
            study_storage.refuse_storage_out_of_reach(None, launcher(*overrides))
    else:
        study_storage.refuse_storage_out_of_reach(None, launcher(*overrides))
    study_storage.refuse_storage_out_of_reach("/shared/study.log", launcher(*overrides))  # named on purpose: taken


@pytest.mark.e2e
def test_a_search_on_a_cluster_with_the_default_journal_stops_before_any_run(tmp_path, isolated_home):
    result = run_cli(
        "-m", "hparams_search=dense", "hydra/launcher=ray", "+hydra.launcher.ray.init.address=auto", cwd=tmp_path
    )
    assert result.returncode == 2
    assert "imdb-exp: error: this launcher runs trials on other machines" in result.stderr
    assert "Traceback" not in result.stderr and not (isolated_home / "mlflow.db").exists()


@pytest.mark.slow
@pytest.mark.e2e
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
    from sqlalchemy.exc import OperationalError, PendingRollbackError

    calls = []

    def dropped_twice():
        calls.append(1)
        if len(calls) < 3:  # as Optuna wraps a commit that a database restart cut off
            raise optuna.exceptions.StorageInternalError("commit failed") from OperationalError("x", {}, Exception())
        return "reported"

    assert study_storage.patiently(dropped_twice) == "reported" and len(calls) == 3

    def rollback_failed_once():  # seen in CI: the rollback after the lost connection failed in turn
        calls.append(1)
        if len(calls) < 5:
            try:
                raise OperationalError("x", {}, Exception("server closed the connection unexpectedly"))
            except OperationalError:
                try:
                    raise PendingRollbackError("Can't reconnect until invalid transaction is rolled back")
                except PendingRollbackError as rollback:
                    raise optuna.exceptions.StorageInternalError("commit failed") from rollback
        return "reported"

    assert study_storage.patiently(rollback_failed_once) == "reported" and len(calls) == 5

    def invalid():
        raise optuna.exceptions.StorageInternalError("value too long") from ValueError("too long")

    with pytest.raises(optuna.exceptions.StorageInternalError, match="value too long"):
        study_storage.patiently(invalid)


def test_a_database_that_refuses_connections_is_waited_for_with_a_warning_then_reported(monkeypatch, caplog):
    from sqlalchemy.exc import OperationalError

    monkeypatch.setattr(study_storage, "DATABASE_PATIENCE_SECONDS", 2)
    url = f"postgresql://someone:secret@127.0.0.1:{free_port()}/study"  # nothing listens there
    started = time.monotonic()
    with pytest.raises(OperationalError, match="refused"):
        study_storage.open_storage(url)
    assert time.monotonic() - started >= 2  # a restarting database refuses connections too
    (warning,) = [r.getMessage() for r in caplog.records if "does not answer" in r.getMessage()]
    assert "postgresql://***@127.0.0.1" in warning and "waiting up to 2 s" in warning and "secret" not in warning
