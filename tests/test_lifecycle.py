"""A run's lifecycle: early stopping at the best epoch, checkpoints, resume after a kill, and sweeps
that account for every job, end on every exit path and pick up where an earlier launch stopped."""

import csv
import resource
import signal
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from imdb_exp.cli.main import run_job
from imdb_exp.config import identity, schema
from imdb_exp.config.schema import TrainerConfig
from imdb_exp.data.splits import Dataset, Split
from imdb_exp.errors import ConfigError
from imdb_exp.run import resume
from imdb_exp.run.train import train
from imdb_exp.runtime.interrupts import Interrupts
from imdb_exp.tracking import record
from imdb_exp.training import checkpoints, epoch_end, fitting
from tests.conftest import DEBUG, recorded_runs, run_cli, start_cli, steps, wait_for_epochs


def small_model(seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((20,)),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dropout(0.2),
            keras.layers.Dense(1),
        ]
    )
    model.compile(keras.optimizers.Adam(0.01), keras.losses.BinaryCrossentropy(from_logits=True))
    return model


def noisy_dataset() -> Dataset:
    """Labels mostly noise: a wide model learns the training rows by heart and the validation loss turns up."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 20)).astype("float32")
    y = ((x[:, 0] + rng.normal(scale=2.0, size=400)) > 0).astype("float32")
    return Dataset(Split(x[:300], y[:300]), Split(x[300:], y[300:]), Split(x[300:], y[300:]), corpus=None)


def test_early_stopping_ends_patience_epochs_after_the_lowest_validation_loss_with_that_epochs_weights():
    model, dataset = small_model(), noisy_dataset()
    trainer = TrainerConfig(epochs=60, batch_size=32, patience=3)
    stopping = [epoch_end.EarlyStopping(model, trainer.patience)]
    progress = fitting.fit(model, dataset, trainer, checkpoints.Progress(), [], stopping, verbose=0)
    val_loss = progress.history["val_loss"]
    assert progress.epochs_done < 60, "the validation loss never turned up; the test data needs more noise"
    assert progress.best_epoch == int(np.argmin(val_loss)) + 1
    assert progress.epochs_done == progress.best_epoch + 3
    # The model now holds the best epoch's weights: it scores that epoch's validation loss again.
    assert model.evaluate(dataset.val.x, dataset.val.y, verbose=0) == pytest.approx(val_loss[progress.best_epoch - 1])
    final = fitting.final_val_metrics(progress, trainer.patience)
    assert final["final_val_loss"] == val_loss[progress.best_epoch - 1]


def test_a_checkpoint_restores_weights_optimizer_and_dropout_state_so_training_continues_identically(isolated_home):
    dataset = noisy_dataset()
    trainer = TrainerConfig(epochs=6, batch_size=32)
    straight = small_model()
    fitting.fit(straight, dataset, trainer, checkpoints.Progress(), [], [], verbose=0)

    first = small_model()
    three = TrainerConfig(epochs=3, batch_size=32)
    progress = fitting.fit(first, dataset, three, checkpoints.Progress(), [], [], verbose=0)
    checkpoints.save("run-a", first, progress)
    second = small_model(seed=99)  # other initial weights and dropout state: all of it must come from the file
    restored = checkpoints.restore("run-a", second)
    assert restored.to_json() == progress.to_json()
    fitting.fit(second, dataset, trainer, restored, [], [], verbose=0)
    for a, b in zip(straight.get_weights(), second.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_damaged_checkpoint_is_not_used_and_one_for_another_model_is_refused(isolated_home, caplog):
    checkpoints.save("run-b", small_model(), checkpoints.Progress(epochs_done=1))
    data = bytearray(checkpoints.path("run-b").read_bytes())
    data[len(data) // 2] ^= 0xFF
    checkpoints.path("run-b").write_bytes(bytes(data))
    assert checkpoints.restore("run-b", small_model()) is None
    assert "the run cannot continue from it" in caplog.text

    checkpoints.save("run-c", small_model(), checkpoints.Progress(epochs_done=1))
    other = keras.Sequential([keras.Input((20,)), keras.layers.Dense(3), keras.layers.Dense(1)])
    other.compile("adam", "mse")
    with pytest.raises(checkpoints.CheckpointError, match="does not fit this model"):
        checkpoints.restore("run-c", other)


def test_the_lock_tells_a_live_run_from_a_stale_one(isolated_home):
    assert not checkpoints.is_live("run-d")
    with checkpoints.held("run-d"):
        assert checkpoints.is_live("run-d")
        with pytest.raises(checkpoints.CheckpointError, match="another live process"), checkpoints.held("run-d"):
            pass
    assert not checkpoints.is_live("run-d")


@pytest.mark.slow
def test_checkpoints_can_be_switched_off(compose_cfg, archive, isolated_home, monkeypatch):
    monkeypatch.setattr(checkpoints, "save", lambda *args: pytest.fail("a checkpoint was written"))
    train(compose_cfg(f"data.archive={archive}", *DEBUG, "trainer.epochs=2", "trainer.checkpoint=false"), {})
    _, (run,) = recorded_runs(isolated_home / "mlflow.db")
    assert run.info.status == "FINISHED" and run.data.metrics["epochs_trained"] == 2


def test_patience_needs_a_validation_split(compose_cfg):
    with pytest.raises(ConfigError, match="trainer.patience=2 watches the validation loss, but data.val_size=0"):
        schema.validate(compose_cfg("trainer.patience=2", "data.val_size=0"))


def test_the_config_hash_ignores_how_a_run_was_launched_but_not_what_it_is(compose_cfg):
    plain = identity.config_hash(compose_cfg())
    assert identity.config_hash(compose_cfg("tracking.parent_run_id=abc", "retrain=true")) == plain
    assert identity.config_hash(compose_cfg("trainer.epochs=5")) != plain


# config_hash of these configs as the commit before runs were identified by names (9fee773) recorded them.
HASHES_RECORDED_BEFORE = [
    ([], "8bbf0ae874f026ac24f8"),
    (["model=lstm", "optimizer=adam", "trainer.seed=3"], "6589f476966acd068b6c"),
    (["callbacks=[default,tensorboard]", "model=nbsvm"], "4a8e96c20438c48e3e11"),
    *(
        ([f"model={model}"], recorded)
        for model, recorded in {
            "bigru": "53dbe31861c401d4f7bb",
            "cnn": "19f155ed822131c604d5",
            "cnn_lstm": "00b8cd2877ee652a7899",
            "fasttext": "89817cbeaa87dde81c9a",
            "lstm": "08fde0f0b00fc216ec05",
            "lstm_dropout": "57b7e03a7c0a5c7f44ed",
            "nbsvm": "63686de08e128073dea1",
            "ngram": "de98b760b37d21199821",
            "pretrained": "b1fa1f6e97c6d6c5cdd7",
            "transformer": "91f223fc3f0a1e0575df",
        }.items()
    ),
]


@pytest.mark.parametrize("overrides, recorded", HASHES_RECORDED_BEFORE)
def test_a_runs_identity_names_no_module_and_accepts_the_hash_recorded_before(compose_cfg, overrides, recorded):
    cfg = compose_cfg(*overrides)
    assert "_target_" not in OmegaConf.to_yaml(identity.values(cfg))
    assert identity.accepted_hashes(cfg) == [identity.config_hash(cfg), recorded]


def test_a_config_recorded_with_callbacks_module_paths_resumes_with_their_names(compose_cfg, recorded_run):
    run_id = recorded_run("KILLED")
    client = MlflowClient(f"sqlite:///{Path(checkpoints.directory()).parent / 'mlflow.db'}")
    legacy = OmegaConf.to_container(compose_cfg("trainer.epochs=6", "callbacks=[default,tensorboard]"))
    legacy["callbacks"] = {name: {"_target_": target} for name, target in identity.LEGACY_CALLBACK_TARGETS.items()}
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


def test_resume_takes_the_recorded_config_and_more_epochs(compose_cfg, recorded_run, tmp_path):
    run_id = recorded_run("RUNNING")  # stale: no process holds its lock
    cfg = resume.recorded_config(
        compose_cfg(f"resume={run_id}", "trainer.epochs=9"), [f"resume={run_id}", "trainer.epochs=9"]
    )
    assert cfg.trainer.epochs == 9 and cfg.model.family == "dense"
    with checkpoints.held(run_id), pytest.raises(ConfigError, match="another live process is training it"):
        resume.recorded_config(compose_cfg(f"resume={run_id}"), [f"resume={run_id}"])
    result = run_cli("resume=0123456789abcdef", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("imdb-exp: error: resume=0123456789abcdef: there is no")


@pytest.mark.slow
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


def sweep_runs(home: Path) -> tuple[MlflowClient, list, list]:
    client, runs = recorded_runs(home / "mlflow.db")
    return (
        client,
        [r for r in runs if record.SWEEP in r.data.tags],
        [r for r in runs if record.SWEEP not in r.data.tags],
    )


def results_table(client, parent, tmp_path) -> list[list[str]]:
    path = client.download_artifacts(parent.info.run_id, record.SWEEP_RESULTS_CSV, str(tmp_path / parent.info.run_id))
    return list(csv.reader(Path(path).read_text().splitlines()))


@pytest.mark.slow
def test_a_job_that_cannot_start_is_a_failed_run_under_its_parent(tmp_path, archive, isolated_home):
    result = run_cli("-m", "model.dropout=0.2,1.0", "trainer.epochs=1", f"data.archive={archive}", *DEBUG, cwd=tmp_path)
    assert result.returncode == 1
    assert "imdb-exp: error: model.dropout=1.0 must be in [0, 1)" in result.stderr  # the job's own line
    assert "imdb-exp: error: 1 of 2 sweep jobs failed: model.dropout=1.0 (FAILED)" in result.stderr
    client, (parent,), jobs = sweep_runs(isolated_home)
    assert parent.info.status == "FAILED"
    assert [j.data.tags[record.PARENT] for j in jobs] == [parent.info.run_id] * 2
    assert [j.info.status for j in jobs] == ["FINISHED", "FAILED"]
    assert jobs[1].data.tags[record.FAILURE_REASON] == "ConfigError: model.dropout=1.0 must be in [0, 1)"
    header, *rows = results_table(client, parent, tmp_path)
    assert [(row[2], row[3]) for row in rows] == [("model.dropout=0.2", "FINISHED"), ("model.dropout=1.0", "FAILED")]
    assert rows[1][header.index("note")] == "ConfigError: model.dropout=1.0 must be in [0, 1)"


def test_a_sweep_stopped_by_hydras_error_for_a_jobs_config_ends_failed_with_its_table(tmp_path, isolated_home):
    # Hydra composes every job of a batch before launching one, and stops the command at the first bad one.
    result = run_cli("-m", "trainer.seed=0,abc", cwd=tmp_path)
    assert result.returncode == 1 and "could not be converted to Integer" in result.stderr
    client, (parent,), jobs = sweep_runs(isolated_home)
    assert parent.info.status == "FAILED" and jobs == []
    assert parent.data.tags[record.FAILURE_REASON] == (
        "ConfigCompositionException: Error merging override trainer.seed=abc: "
        "Value 'abc' of type 'str' could not be converted to Integer"
    )
    assert results_table(client, parent, tmp_path)[0][:2] == ["job", "run"]


def test_a_search_without_a_validation_split_is_refused(tmp_path, isolated_home):
    result = run_cli("-m", "hparams_search=dense", "data.val_size=0", cwd=tmp_path)
    assert result.returncode == 2
    assert "imdb-exp: error: a search ranks trials by their validation accuracy, and data.val_size=0" in result.stderr
    assert not (isolated_home / "mlflow.db").exists()


@pytest.mark.slow
def test_a_sweep_stopped_by_a_signal_ends_killed_and_a_relaunch_finishes_it_without_training_again(
    tmp_path, archive, isolated_home
):
    args = ["-m", "optimizer=rmsprop,adam", f"data.archive={archive}", *DEBUG, "trainer.epochs=60"]
    args += ["tracking.log_model=false"]
    process = start_cli(*args, cwd=tmp_path)
    wait_for_epochs(process, isolated_home / "mlflow.db", 2, run_tag=("optimizer", "adam"))  # in the second job
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 128 + signal.SIGTERM
    client, (parent,), (rmsprop, adam) = sweep_runs(isolated_home)
    assert (parent.info.status, rmsprop.info.status, adam.info.status) == ("KILLED", "FINISHED", "KILLED")
    assert [row[3] for row in results_table(client, parent, tmp_path)[1:]] == ["FINISHED", "KILLED"]

    again = run_cli(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"imdb-exp: already done: run {rmsprop.info.run_id} FINISHED" in again.stdout
    client, (_, second), jobs = sweep_runs(isolated_home)
    assert [j.info.run_id for j in jobs] == [rmsprop.info.run_id, adam.info.run_id]  # no new job runs
    continued = client.get_run(adam.info.run_id)
    assert continued.info.status == "FINISHED" and continued.data.tags[record.PARENT] == second.info.run_id
    assert steps(client, adam.info.run_id, "val_loss") == list(range(1, 61))
    header, *rows = results_table(client, second, tmp_path)
    assert [(row[1], row[3]) for row in rows] == [("dense-rmsprop", "FINISHED"), ("dense-adam", "FINISHED")]
    assert rows[0][header.index("note")].startswith("already done") and rows[1][header.index("note")] == ""
    assert second.info.status == "FINISHED"


@pytest.mark.slow
def test_a_sweep_job_counts_an_earlier_finished_run_of_its_config_unless_told_to_retrain(
    compose_cfg, archive, isolated_home, capsys
):
    args = [f"data.archive={archive}", *DEBUG, "tracking.log_model=false"]
    earlier = train(compose_cfg(*args), {})
    client, (done,) = recorded_runs(isolated_home / "mlflow.db")
    parent = client.create_run(done.info.experiment_id).info.run_id
    job = {record.JOB: "0"}
    as_job = compose_cfg(*args, f"tracking.parent_run_id='{parent}'")
    assert run_job(as_job, job, Interrupts()) == earlier == done.data.metrics["final_val_accuracy"]
    assert f"already done: run {done.info.run_id} FINISHED" in capsys.readouterr().out
    assert client.get_run(parent).data.tags["job.0"] == done.info.run_id
    assert len(recorded_runs(isolated_home / "mlflow.db")[1]) == 2  # the earlier run and the parent, nothing new

    run_job(compose_cfg(*args, f"tracking.parent_run_id='{parent}'", "retrain=true"), job, Interrupts())
    _, (_, _, retrained) = recorded_runs(isolated_home / "mlflow.db")
    assert retrained.data.tags[record.PARENT] == parent == retrained.data.params["tracking.parent_run_id"]
    assert client.get_run(parent).data.tags["job.0"] == retrained.info.run_id


@pytest.mark.slow
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


@pytest.mark.slow
def test_a_checkpoint_the_disk_cannot_take_fails_the_run_in_one_line_and_leaves_no_partial_file(
    tmp_path, archive, isolated_home
):
    # Writes past 4 MB fail as on a full disk (Python ignores SIGXFSZ, so the write reports EFBIG); a
    # 50,000-word multi-hot model's checkpoint is about 6 MB, the store and the cache far less.
    limit = 4 * 2**20
    command = [str(Path(sys.executable).with_name("imdb-exp")), f"data.archive={archive}", *DEBUG]
    command += ["data.num_words=50000", "tracking.log_model=false"]
    result = subprocess.run(
        command,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)),
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert "imdb-exp: error: cannot write " in result.stderr and "File too large" in result.stderr
    assert "Traceback" not in result.stderr
    _, (run,) = recorded_runs(isolated_home / "mlflow.db")
    assert run.info.status == "FAILED" and run.data.tags[record.FAILURE_REASON].startswith("DiskError: cannot write")
    assert not list(checkpoints.directory().glob("*.npz")) and not list(checkpoints.directory().glob("*.tmp"))
