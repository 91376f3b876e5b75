"""The MLflow run a job writes to: its recorded config, its epochs' metrics, and a server that stops answering."""

import os
import signal
import statistics
import threading
import time
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from imdb_exp.config.schema import TrackingConfig
from imdb_exp.runtime import process
from imdb_exp.runtime.interrupts import Interrupted, Interrupts
from imdb_exp.tracking import active_run, record, store
from imdb_exp.training.checkpoints import Progress
from tests.support.cluster import LocalCluster
from tests.support.commands import run_cli, start_cli
from tests.support.presets import DEBUG
from tests.support.store import recorded_runs, runs


def test_a_password_in_the_tracking_uri_reaches_neither_params_nor_the_recorded_config(compose_cfg, isolated_home):
    cfg = compose_cfg("tracking.uri=http://bob:secret@mlflow.example:5000")
    uri = f"sqlite:///{isolated_home / 'mlflow.db'}"
    store.activate(uri)
    experiment = store.experiment_id(store.client(uri), "imdb-exp")  # artifacts beside the store, not ./mlruns
    with mlflow.start_run(experiment_id=experiment) as run:
        active_run.log_config(cfg, run)
    client, (recorded,) = runs(isolated_home)
    params = recorded.data.params
    assert params and all(key.split(".")[0] in active_run.PARAMS for key in params)  # no tracking.* among them
    assert not [value for value in params.values() if "secret" in value]
    config_yaml = Path(client.download_artifacts(recorded.info.run_id, record.CONFIG, str(isolated_home))).read_text()
    assert "***@mlflow.example" in config_yaml and "secret" not in config_yaml
    assert "secret" not in store.where_to_see(cfg.tracking.uri, "1", recorded.info.run_id)


def test_a_run_whose_step_a_signal_cut_fails_in_its_clean_up_ends_killed(isolated_home):
    """CI saw a sweep job end FAILED on SIGINT and the sweep go on to its next job; a step the signal cuts
    can fail in its clean-up (Keras's save: OSError), which must not hide the signal."""
    uri = f"sqlite:///{isolated_home}/mlflow.db"
    cfg = TrackingConfig(uri=uri, system_metrics=False)
    with Interrupts().handled(), pytest.raises(Interrupted), active_run.tracked_run(cfg, "cut", {}):
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        finally:
            raise OSError(9, "Bad file descriptor")
    _, (run,) = recorded_runs(isolated_home / "mlflow.db")
    assert run.info.status == "KILLED" and run.data.tags[record.FAILURE_REASON] == "stopped by SIGINT"


def test_a_continued_run_that_fails_is_named_for_this_outcome_only(isolated_home):
    cfg = TrackingConfig(uri=f"sqlite:///{isolated_home}/mlflow.db", system_metrics=False)
    with Interrupts().handled(), pytest.raises(Interrupted), active_run.tracked_run(cfg, "trial 1", {}) as stopped:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)
    with pytest.raises(RuntimeError), active_run.tracked_run(cfg, "trial 1", {}, stopped.run.info.run_id):
        raise RuntimeError("the continued run failed")
    _, (run,) = recorded_runs(isolated_home / "mlflow.db")
    assert run.info.status == "FAILED" and run.info.run_name == "trial 1 (failed)"  # not "(stopped) (failed)"


def test_a_run_ended_on_one_thread_never_cuts_an_epochs_write_of_another_run_on_another(isolated_home):
    """A sweep's records thread ends job k while job k+1 writes its epochs: MLflow's end shuts the
    store's queue of background writes down, and a write that had found it up then failed the job
    ("cannot schedule new futures after shutdown"; without the lock, within a few ends here)."""
    process.configure()
    mlflow.set_tracking_uri(f"sqlite:///{isolated_home}/mlflow.db")
    history, failures, done = {"loss": [0.5]}, [], threading.Event()

    def next_job_writing_epochs():
        with mlflow.start_run(run_name="next job"):
            while not done.is_set():
                try:
                    active_run.log_epoch(history)
                except Exception as err:
                    failures.append(repr(err))
                time.sleep(0.005)

    writer = threading.Thread(target=next_job_writing_epochs)
    writer.start()
    try:
        for _ in range(40):
            mlflow.start_run(run_name="previous job")
            active_run.end_run("FINISHED")
    finally:
        done.set()
        writer.join()
    assert failures == []


@pytest.mark.slow
def test_a_run_ends_without_waiting_for_the_thread_that_writes_its_epochs(isolated_home):
    """MLflow writes each epoch's metrics on its own thread (tracking.log_epoch); the run's end drains it.
    Without buffering, that thread sleeps up to a second in a queue read the end cannot interrupt
    (0.5-0.7 s an end); the median of three ends tells that apart from a busy machine's pauses."""
    process.configure()
    cfg = TrackingConfig(uri=f"sqlite:///{isolated_home}/mlflow.db", system_metrics=False)
    progress = Progress(epochs_done=1, history={"loss": [0.5], "val_loss": [0.6]})
    ends = []
    for _ in range(3):
        with active_run.tracked_run(cfg, "epochs", {}) as open_run:
            active_run.log_epoch(progress.history)
            time.sleep(0.3)  # the thread idles, as between two epochs; the end writes what it holds
            ending = time.perf_counter()
        ends.append(time.perf_counter() - ending)
        client, _ = recorded_runs(isolated_home / "mlflow.db")
        assert [m.value for m in client.get_metric_history(open_run.run.info.run_id, "val_loss")] == [0.6]
    assert statistics.median(ends) < 0.4, f"the runs took {ends} s to end"


@pytest.mark.slow
@pytest.mark.e2e
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
