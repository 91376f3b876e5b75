"""Resuming a run: the recorded config, what cannot continue exactly, and a run killed or with a damaged checkpoint."""

import signal
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from imdb_exp.config import identity
from imdb_exp.errors import ConfigError
from imdb_exp.run import resume
from imdb_exp.run.train import train
from imdb_exp.tracking import record
from imdb_exp.training import checkpoints
from tests.support.commands import run_cli, start_cli, wait_for_epochs
from tests.support.presets import DEBUG
from tests.support.store import recorded_runs, steps


def test_a_config_recorded_with_callbacks_module_paths_resumes_with_their_names(compose_cfg, recorded_run):
    run_id = recorded_run("KILLED")
    client = MlflowClient(f"sqlite:///{Path(checkpoints.directory()).parent / 'mlflow.db'}")
    legacy = OmegaConf.to_container(compose_cfg("trainer.epochs=6", "callbacks=[default,tensorboard]"))
    legacy["callbacks"] = {name: {"_target_": target} for name, target in identity.HASHED_AS.items()}
    client.log_text(run_id, OmegaConf.to_yaml(legacy), record.CONFIG)
    cfg = resume.recorded_config(compose_cfg(f"resume={run_id}"), [f"resume={run_id}"])
    assert OmegaConf.to_container(cfg.callbacks) == {"stop_on_non_finite_loss": {}, "tensorboard": {}}
    assert identity.config_hash(cfg) == identity.config_hash(
        compose_cfg("trainer.epochs=6", "callbacks=[default,tensorboard]")
    )


@pytest.fixture
def recorded_run(compose_cfg, isolated_home):
    """A run in the default store, as a started run leaves it, with the given status and trained epochs."""
    client = MlflowClient(f"sqlite:///{isolated_home / 'mlflow.db'}")
    # Its artifacts beside the store, as the project's own runs keep them (not in ./mlruns of the checkout).
    experiment = client.create_experiment("imdb-exp", artifact_location=(isolated_home / "artifacts").as_uri())

    def _record(status: str, epochs_logged: int = 0) -> str:
        run = client.create_run(experiment)
        client.log_text(run.info.run_id, OmegaConf.to_yaml(compose_cfg("trainer.epochs=6")), record.CONFIG)
        for step in range(1, epochs_logged + 1):
            client.log_metric(run.info.run_id, "loss", 0.5, step=step)
        if status != "RUNNING":
            client.set_terminated(run.info.run_id, status)
        return run.info.run_id

    return _record


@pytest.mark.parametrize(
    "status, epochs_logged, overrides, message",
    [
        ("FINISHED", 6, [], "it FINISHED; there is nothing to continue"),
        ("KILLED", 2, [], "it trained some epochs but its checkpoint is not in"),
        ("KILLED", 0, ["model=lstm"], "only trainer.epochs (to train longer) and tracking.uri may be given"),
        ("FAILED", 0, ["trainer.epochs=4"], "trainer.epochs may grow from 6, not shrink to 4"),
    ],
)
def test_resume_refuses_what_cannot_continue_exactly(
    compose_cfg, recorded_run, status, epochs_logged, overrides, message
):
    run_id = recorded_run(status, epochs_logged)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        resume.recorded_config(compose_cfg(f"resume={run_id}", *overrides), [f"resume={run_id}", *overrides])


@pytest.mark.e2e
def test_resume_takes_the_recorded_config_and_more_epochs(compose_cfg, recorded_run, tmp_path):
    run_id = recorded_run("RUNNING")  # stale: no process holds its lock
    cfg = resume.recorded_config(
        compose_cfg(f"resume={run_id}", "trainer.epochs=9"), [f"resume={run_id}", "trainer.epochs=9"]
    )
    assert cfg.trainer.epochs == 9 and cfg.model.family == "dense"
    let_go = checkpoints.hold(run_id)
    with pytest.raises(ConfigError, match="another live process is training it"):
        resume.recorded_config(compose_cfg(f"resume={run_id}"), [f"resume={run_id}"])
    let_go()
    result = run_cli("resume=0123456789abcdef", "debug=tiny", cwd=tmp_path)  # the id said first, not the override
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("imdb-exp: error: resume=0123456789abcdef: there is no")


@pytest.mark.slow
@pytest.mark.e2e
def test_a_run_killed_with_sigkill_resumes_as_the_same_run_and_ends_as_an_uninterrupted_one(
    tmp_path, compose_cfg, archive, isolated_home
):
    args = [f"data.archive={archive}", *DEBUG, "model.dropout=0.3", "trainer.epochs=10", "tracking.log_model=false"]
    process = start_cli(*args, cwd=tmp_path)
    wait_for_epochs(process, isolated_home / "mlflow.db", 3)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    client, (killed,) = recorded_runs(isolated_home / "mlflow.db")
    assert killed.info.status == "RUNNING" and checkpoints.path(killed.info.run_id).is_file()  # nothing could end it

    # Resumed for 3 more epochs than it set out to train; epoch 11 is the same whenever it is reached.
    result = run_cli(f"resume={killed.info.run_id}", "trainer.epochs=13", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "run dense-rmsprop: data.archive=" in result.stdout + result.stderr  # its name and settings kept
    assert "debug=tiny model.dropout=0.3 trainer.epochs=10" in result.stdout + result.stderr  # not "the defaults"
    train(compose_cfg(*args, "trainer.epochs=13"), {})  # the same experiment, uninterrupted
    _, (resumed, straight) = recorded_runs(isolated_home / "mlflow.db")
    assert resumed.info.run_id == killed.info.run_id and resumed.info.status == "FINISHED"
    assert (resumed.data.params["trainer.epochs"], resumed.data.tags["trainer.epochs"]) == ("10", "13")
    for metric in ("loss", "val_loss", "val_accuracy", "epoch_seconds"):
        assert steps(client, resumed.info.run_id, metric) == list(range(1, 14))  # each step once
    history = {
        r.info.run_id: {m.step: m.value for m in client.get_metric_history(r.info.run_id, "val_loss")}
        for r in (resumed, straight)
    }
    assert history[resumed.info.run_id] == history[straight.info.run_id]
    assert resumed.data.metrics["test_loss"] == pytest.approx(straight.data.metrics["test_loss"], abs=1e-6)
    assert resumed.data.metrics["test_accuracy"] == straight.data.metrics["test_accuracy"]
    assert not checkpoints.path(resumed.info.run_id).exists()  # finished: nothing left to continue


@pytest.mark.slow
@pytest.mark.e2e
def test_a_run_whose_checkpoint_is_damaged_starts_over_as_a_new_run_and_no_step_is_logged_twice(
    tmp_path, archive, isolated_home
):
    args = [f"data.archive={archive}", *DEBUG, "trainer.epochs=100", "tracking.log_model=false"]
    process = start_cli(*args, cwd=tmp_path)
    wait_for_epochs(process, isolated_home / "mlflow.db", 3)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    _, (killed,) = recorded_runs(isolated_home / "mlflow.db")
    whole = checkpoints.path(killed.info.run_id).read_bytes()
    checkpoints.path(killed.info.run_id).write_bytes(whole[: len(whole) // 2])  # as a disk fault leaves it

    result = run_cli(f"resume={killed.info.run_id}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "training the same config as a new run" in result.stdout + result.stderr
    client, (old, new) = recorded_runs(isolated_home / "mlflow.db")
    assert old.info.run_id == killed.info.run_id and old.info.status == "FAILED"
    assert "its checkpoint is damaged" in old.data.tags[record.FAILURE_REASON]
    assert new.info.status == "FINISHED" and new.data.tags[record.STARTED_OVER_FROM] == old.info.run_id
    kept = steps(client, old.info.run_id, "loss")
    assert kept == sorted(set(kept)) and steps(client, new.info.run_id, "loss") == list(range(1, 101))
    assert not checkpoints.path(old.info.run_id).exists()  # never tried again


DOCUMENT_VECTORS = [*DEBUG, "model=nbsvm_docvec", "data.val_holdout=reviews", "model.features=3000", "model.dim=16",
                    "trainer.epochs=60", "trainer.patience=null", "tracking.log_model=false"]  # fmt: skip


@pytest.mark.slow
@pytest.mark.e2e
def test_document_vectors_learned_by_one_thread_continue_exactly_and_by_racing_threads_start_over(
    tmp_path, compose_cfg, archive, isolated_home
):
    def killed_after_3_epochs(database: Path, *args: str):
        process = start_cli(*args, cwd=tmp_path)
        wait_for_epochs(process, database, 3)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        return recorded_runs(database)[1][-1]

    # One thread: learned again, the vectors are the first ones, and the run ends as an uninterrupted one.
    one = [f"data.archive={archive}", *DOCUMENT_VECTORS, "model.learn_threads=1"]
    killed = killed_after_3_epochs(isolated_home / "mlflow.db", *one)
    assert len(steps(recorded_runs(isolated_home / "mlflow.db")[0], killed.info.run_id, "loss")) < 60  # cut off
    assert run_cli(f"resume={killed.info.run_id}", cwd=tmp_path).returncode == 0
    train(compose_cfg(*one), {})
    client, (resumed, straight) = recorded_runs(isolated_home / "mlflow.db")
    assert resumed.info.run_id == killed.info.run_id and resumed.info.status == "FINISHED"
    history = {
        r.info.run_id: {m.step: m.value for m in client.get_metric_history(r.info.run_id, "val_loss")}
        for r in (resumed, straight)
    }
    assert steps(client, resumed.info.run_id, "val_loss") == list(range(1, 61))  # each epoch once
    assert history[resumed.info.run_id] == history[straight.info.run_id]

    # Two threads race: the checkpoint's epochs would sit on other vectors, so the config trains anew.
    racing = tmp_path / "racing.db"
    killed = killed_after_3_epochs(racing, *one[:-1], "model.learn_threads=2", f"tracking.uri=sqlite:///{racing}")
    result = run_cli(f"resume={killed.info.run_id}", f"tracking.uri=sqlite:///{racing}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "training the same config as a new run" in result.stdout + result.stderr
    client, (old, new) = recorded_runs(racing)
    assert old.info.run_id == killed.info.run_id and old.info.status == "FAILED"
    assert "learned by 2 threads at once (model.learn_threads)" in old.data.tags[record.FAILURE_REASON]
    assert new.info.status == "FINISHED" and new.data.tags[record.STARTED_OVER_FROM] == old.info.run_id
    assert steps(client, new.info.run_id, "loss") == list(range(1, 61))
    assert not checkpoints.path(old.info.run_id).exists()  # never tried again
