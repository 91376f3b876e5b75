"""Bad input and interruptions: one clear line, and the store and cache left sound."""

import io
import logging
import os
import signal
import subprocess
import sys
import tarfile
import time

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from imdb_exp.data import corpus
from imdb_exp.data.corpus import DataError, load_corpus
from imdb_exp.run.train import train
from imdb_exp.runtime import process
from imdb_exp.runtime.interrupts import Interrupted, Interrupts, held_off
from imdb_exp.runtime.interrupts import reason as interrupt_reason
from imdb_exp.sweeps import multirun
from imdb_exp.tracking import record
from imdb_exp.training.guards import InterruptAtBatchEnd, NonFiniteLoss, StopOnNonFiniteLoss
from scripts.local_cluster import LocalCluster
from tests.conftest import DEBUG, free_port, recorded_runs, run_cli, start_cli, wait_for_epochs, write_archive


def tar_with(path, members: list[tarfile.TarInfo]):
    with tarfile.open(path, "w:gz") as tar:
        for info in members:
            data = b"x" if info.isfile() else None
            if data:
                info.size = 1
            tar.addfile(info, io.BytesIO(data) if data else None)
    return path


def link(name: str, target: str, kind=tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


@pytest.mark.parametrize(
    "member",
    [
        tarfile.TarInfo("aclImdb/../../escaped.txt"),
        tarfile.TarInfo("/tmp/absolute.txt"),
        link("aclImdb/train/pos/0_9.txt", "../../../etc/passwd"),
        link("aclImdb/train/pos/1_9.txt", "/etc/passwd", tarfile.LNKTYPE),
    ],
    ids=["dotdot", "absolute", "symlink", "hardlink"],
)
def test_archive_members_that_escape_are_refused_and_nothing_is_written(tmp_path, member):
    archive = tar_with(tmp_path / "evil.tar.gz", [tarfile.TarInfo("aclImdb/README"), member])
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="escapes the archive"):
        load_corpus(str(archive), cache)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.tar.gz"]


def test_a_tar_without_the_aclimdb_layout_is_named(tmp_path):
    archive = tar_with(tmp_path / "other.tar.gz", [tarfile.TarInfo("photos/cat.jpg")])
    with pytest.raises(DataError, match=r"has no aclImdb/train/\{pos,neg\}/\*.txt reviews"):
        load_corpus(str(archive), tmp_path / "cache")
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").iterdir())


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_truncated_or_altered_cache_is_rebuilt(archive, tmp_path, damage, caplog):
    expected = load_corpus(str(archive), tmp_path)
    (cache,) = tmp_path.glob("corpus-*.npz")
    data = cache.read_bytes()
    cache.write_bytes(data[: len(data) // 3] if damage == "truncate" else data[:-40] + bytes(40))
    with caplog.at_level(logging.WARNING):
        rebuilt = load_corpus(str(archive), tmp_path)
    assert "is not valid" in caplog.text
    np.testing.assert_array_equal(rebuilt.test.ids, expected.test.ids)
    assert corpus._read_cache(cache) is not None


def test_two_processes_building_one_cache_both_succeed_and_leave_one_valid_file(archive, tmp_path):
    script = (
        "import sys; from pathlib import Path; from imdb_exp.data.corpus import load_corpus; "
        "print(len(load_corpus(sys.argv[1], Path(sys.argv[2])).vocabulary))"
    )
    builders = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(archive), str(tmp_path / "cache")], stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [b.communicate(timeout=120)[0] for b in builders]
    assert [b.returncode for b in builders] == [0, 0] and outputs[0] == outputs[1]
    files = list((tmp_path / "cache").iterdir())
    assert len(files) == 1 and files[0].suffix == ".npz" and corpus._read_cache(files[0]) is not None


def test_invalid_utf8_and_empty_reviews_are_read_and_counted(tmp_path, caplog):
    extra = {"aclImdb/train/pos/900_9.txt": b"great \xff\xfe film", "aclImdb/train/neg/901_1.txt": b""}
    archive = write_archive(tmp_path / "a.tar.gz", {"train": 3, "test": 2}, extra=extra)
    with caplog.at_level(logging.WARNING):
        built = corpus.build_corpus(archive)
    assert len(built.train) == 8
    assert "1 reviews had bytes that are not UTF-8 (replaced), 1 reviews were empty" in caplog.text
    assert "great" in built.vocabulary and "film" in built.vocabulary


def test_non_finite_loss_stops_training():
    guard = StopOnNonFiniteLoss()
    guard.on_epoch_begin(2)
    guard.on_train_batch_end(0, {"loss": 0.5})
    with pytest.raises(NonFiniteLoss, match="loss became nan in epoch 3, batch 8"):
        guard.on_train_batch_end(7, {"loss": float("nan")})


def test_the_guards_leave_keras_free_to_check_batches_off_the_main_thread(monkeypatch):
    # On JAX and PyTorch, Keras runs async-safe batch-end callbacks on a worker thread; a guard's
    # exception must still reach the training loop, at the next batch end or the epoch's end.
    import keras
    from keras.src import backend

    monkeypatch.setattr(backend, "IS_THREAD_SAFE", True)
    guards = keras.callbacks.CallbackList([StopOnNonFiniteLoss(), InterruptAtBatchEnd(Interrupts())])
    assert guards._async_train and guards._async_test and guards._async_predict
    guards.on_train_begin()
    guards.on_epoch_begin(0)
    guards.on_train_batch_end(0, {"loss": float("nan")})
    with pytest.raises(NonFiniteLoss, match="loss became nan in epoch 1, batch 1"):
        guards.on_epoch_end(0, {})


@pytest.mark.slow
def test_a_diverging_run_is_failed_with_the_reason_as_a_tag(compose_cfg, archive, isolated_home):
    cfg = compose_cfg(f"data.archive={archive}", *DEBUG, "optimizer.name=sgd", "optimizer.learning_rate=1e30")
    with pytest.raises(NonFiniteLoss):
        train(cfg, {})
    _, (run,) = recorded_runs(isolated_home / "mlflow.db")
    assert run.info.status == "FAILED"
    assert run.data.tags[record.FAILURE_REASON].startswith("NonFiniteLoss: training loss became")


def test_a_tracking_server_that_does_not_answer_fails_fast_before_data(tmp_path):
    started = time.monotonic()
    result = run_cli(f"tracking.uri=http://127.0.0.1:{free_port()}", "data.archive=/nonexistent.tar.gz", cwd=tmp_path)
    assert result.returncode == 2
    assert "imdb-exp: error: the MLflow server http://127.0.0.1:" in result.stderr
    assert "does not answer" in result.stderr and "Traceback" not in result.stderr
    assert time.monotonic() - started < 60


def test_a_signal_outside_keras_interrupts_at_once_and_the_handlers_are_restored_after():
    before = signal.getsignal(signal.SIGTERM)
    with Interrupts().handled(), pytest.raises(Interrupted) as raised:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
    assert raised.value.signal == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is before


def test_inside_keras_a_signal_waits_for_the_end_of_its_batch():
    import keras

    batches_ended = []

    class SignalInThirdBatch(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if batch == 2:
                os.kill(os.getpid(), signal.SIGTERM)  # SIGINT may be ignored here, as under nohup

        def on_train_batch_end(self, batch, logs=None):
            batches_ended.append(batch)

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile("rmsprop", "binary_crossentropy")
    x, y = np.ones((64, 4), "float32"), np.ones(64, "float32")
    with Interrupts().handled() as interrupts, pytest.raises(Interrupted) as raised, interrupts.deferred():
        callbacks = [SignalInThirdBatch(), InterruptAtBatchEnd(interrupts)]
        model.fit(x, y, batch_size=8, epochs=3, callbacks=callbacks, verbose=0)
    assert raised.value.signal == signal.SIGTERM
    assert batches_ended == [0, 1, 2]


def test_a_signal_in_a_held_off_step_waits_for_its_end_then_interrupts():
    steps_done = []
    with Interrupts().handled(), pytest.raises(Interrupted) as raised:
        with held_off():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.2)
            steps_done.append("the step's end")
        steps_done.append("after it")
    assert steps_done == ["the step's end"] and raised.value.signal == signal.SIGTERM


def test_a_signal_while_a_sweep_ends_waits_for_its_table_and_its_run_then_stops_the_command(tmp_path):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("imdb-exp", artifact_location=(tmp_path / "artifacts").as_uri())
    ending = multirun.SweepParentRun()
    ending.client, ending.run_id = client, client.create_run(experiment).info.run_id
    job = client.create_run(experiment, tags={record.PARENT: ending.run_id}).info.run_id
    record.count_job(client, ending.run_id, "0", job)

    def last_records() -> None:  # the last job's, still being written when the signal comes
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.5)
        client.set_terminated(job, "FINISHED")

    process.between_jobs.writer.hand_over(last_records)
    with Interrupts().handled(), pytest.raises(Interrupted):
        ending.end()
    assert client.get_run(job).info.status == "FINISHED"  # waited for, not taken for a lost job
    assert client.get_run(ending.run_id).info.status == "FINISHED"
    assert [a.path for a in client.list_artifacts(ending.run_id, record.SWEEP)] == [
        record.SWEEP_COMPARISON,
        record.SWEEP_RESULTS_CSV,
        record.SWEEP_RESULTS_MD,
    ]


def test_a_schedulers_usr2_ends_the_run_first_then_reaches_the_schedulers_handler():
    received = []
    previous = signal.signal(signal.SIGUSR2, lambda signum, frame: received.append(signum))  # as submitit's
    try:
        interrupts = Interrupts()
        with interrupts.handled(), pytest.raises(Interrupted) as raised:
            os.kill(os.getpid(), signal.SIGUSR2)
            time.sleep(5)
        assert raised.value.signal == signal.SIGUSR2 and received == []
        assert "SIGUSR2" in interrupt_reason(raised.value) and "requeue" in interrupt_reason(raised.value)
        interrupts.pass_on(signal.SIGUSR2)
        assert received == [signal.SIGUSR2]
    finally:
        signal.signal(signal.SIGUSR2, previous)


def test_without_a_schedulers_handler_usr2_is_left_alone():
    assert signal.getsignal(signal.SIGUSR2) is signal.SIG_DFL
    with Interrupts().handled():
        assert signal.getsignal(signal.SIGUSR2) is signal.SIG_DFL


def test_a_sigint_ignored_at_start_stays_ignored():
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with Interrupts().handled():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.2)
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.mark.slow
# SIGINT here; SIGTERM to a sweep's job is tested in test_lifecycle (exit 143, the job KILLED).
@pytest.mark.parametrize("signum", [signal.SIGINT], ids=["SIGINT"])
def test_a_signal_during_training_kills_the_run_promptly_and_keeps_its_metrics(
    tmp_path, archive, isolated_home, signum
):
    process = start_cli(
        f"data.archive={archive}", *DEBUG, "trainer.epochs=1000", "tracking.log_model=false", cwd=tmp_path
    )
    database = isolated_home / "mlflow.db"
    wait_for_epochs(process, database, 2)
    sent = time.monotonic()
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    assert time.monotonic() - sent < 30
    assert process.returncode == 128 + signum, stderr[-3000:]
    assert f"imdb-exp: stopped by {signal.Signals(signum).name}; the MLflow run is marked KILLED" in stderr
    client, (run,) = recorded_runs(database)
    assert run.info.status == "KILLED"
    assert len(client.get_metric_history(run.info.run_id, "loss")) >= 2


@pytest.mark.slow
def test_a_server_that_stops_answering_stops_the_run_in_bounded_time_and_resume_sends_every_epoch(
    tmp_path, archive, isolated_home
):
    with LocalCluster(tmp_path / "server") as services:
        url = services.mlflow_server(f"sqlite:///{tmp_path / 'server.db'}")
        args = [f"data.archive={archive}", *DEBUG, "trainer.epochs=60", f"tracking.uri={url}"]
        process = start_cli(*args, "tracking.server_timeout=15", "tracking.log_model=false", cwd=tmp_path)
        client = MlflowClient(url)
        deadline = time.monotonic() + 120
        while (
            not (runs := client.search_runs([e.experiment_id for e in client.search_experiments()]))
            or len(client.get_metric_history(runs[0].info.run_id, "loss")) < 2
        ):
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()[1][-3000:]
            time.sleep(0.1)
        os.killpg(services.mlflow_process.pid, signal.SIGSTOP)  # the server hangs: connections open, no answer
        stopped = time.monotonic()
        _, stderr = process.communicate(timeout=300)
        waited = time.monotonic() - stopped
        os.killpg(services.mlflow_process.pid, signal.SIGCONT)
        assert process.returncode == 2, stderr[-3000:]
        assert "imdb-exp: error: the MLflow server stopped answering" in stderr and "Traceback" not in stderr
        print(f"the job stopped {waited:.1f} s after the server did (tracking.server_timeout=15)")
        assert waited < 4 * 15  # each call that failed gave up within the timeout
        (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
        assert run.info.status == "RUNNING"  # nothing could tell the server otherwise

        resumed = run_cli(f"resume={run.info.run_id}", f"tracking.uri={url}", cwd=tmp_path)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        assert client.get_run(run.info.run_id).info.status == "FINISHED"
        for metric in ("loss", "val_loss"):  # every epoch once: none lost, none twice
            assert sorted(m.step for m in client.get_metric_history(run.info.run_id, metric)) == list(range(1, 61))
