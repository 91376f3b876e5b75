"""A sweep's jobs write their figures, reports and models on a background thread while the next job
trains: what they record must be what a run of its own records, and a sweep stopped while records are
still being written must leave every finished job complete."""

import signal

import pytest

from imdb_exp.tracking import record
from tests.support.commands import run_cli, start_cli, wait_for_epochs
from tests.support.presets import DEBUG
from tests.support.store import recorded_runs

pytestmark = pytest.mark.slow


EVERY_RUNS_FILES = {record.CONFIG, record.MODEL_SUMMARY, *record.FINISHED_RUN_ARTIFACTS}


def artifact_files(client, run_id: str, path: str | None = None) -> set[str]:
    files = set()
    for item in client.list_artifacts(run_id, path):
        files |= artifact_files(client, run_id, item.path) if item.is_dir else {item.path}
    return files


def records_and_log(client, run_id: str) -> tuple[set[str], list[str]]:
    """A run's files, less the log a sweep job adds (logs/TIME-imdb-exp.log); and that log."""
    files = artifact_files(client, run_id)
    logs = sorted(path for path in files if path.startswith("logs/"))
    return files - set(logs), logs


def recorded(client, run) -> dict:
    """What a run recorded, less what differs between any two runs: times, the machine's load, the parent."""
    return {
        "status": run.info.status,
        "metrics": {
            name: value
            for name, value in run.data.metrics.items()
            if not name.endswith("_seconds") and not name.startswith("system/")
        },
        "params": {name: value for name, value in run.data.params.items() if name != "tracking.parent_run_id"},
        "artifacts": records_and_log(client, run.info.run_id)[0],
        "logged_models": len(run.outputs.model_outputs),
        "datasets": sorted(d.dataset.name for d in run.inputs.dataset_inputs),
    }


@pytest.mark.e2e
def test_sweep_jobs_record_exactly_what_runs_of_their_own_record(tmp_path, archive, isolated_home):
    args = [f"data.archive={archive}", *DEBUG, "trainer.epochs=2"]
    result = run_cli("-m", "optimizer=rmsprop,adam", *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    for optimizer in ("rmsprop", "adam"):  # each job's config as a run of its own, recorded before it ends
        assert run_cli(f"optimizer={optimizer}", *args, cwd=tmp_path).returncode == 0
    client, runs = recorded_runs(isolated_home / "mlflow.db")
    jobs = {r.data.params["optimizer.name"]: r for r in runs if record.JOB in r.data.tags}
    alone = {
        r.data.params["optimizer.name"]: r
        for r in runs
        if record.JOB not in r.data.tags and record.SWEEP not in r.data.tags
    }
    assert sorted(jobs) == sorted(alone) == ["adam", "rmsprop"]
    for optimizer, job in jobs.items():
        of_job = recorded(client, job)
        assert of_job == recorded(client, alone[optimizer])
        assert of_job["status"] == "FINISHED" and of_job["artifacts"] == EVERY_RUNS_FILES
        assert of_job["logged_models"] == 1 and "test_accuracy" in of_job["metrics"]
        assert len(records_and_log(client, job.info.run_id)[1]) == 1  # what the job logged, besides


@pytest.mark.e2e
def test_a_sweep_stopped_while_records_are_written_leaves_every_finished_job_complete(tmp_path, archive, isolated_home):
    seeds, epochs = "trainer.seed=0,1,2", "trainer.epochs=40"
    process = start_cli("-m", seeds, f"data.archive={archive}", *DEBUG, epochs, cwd=tmp_path)
    # The first job has trained and handed its records over; the second is training (38 epochs to go:
    # the signal lands there on a busy machine too).
    wait_for_epochs(process, isolated_home / "mlflow.db", 2, run_tag=(record.JOB, "1"))
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=120) == 130, process.stderr.read()[-3000:]
    client, runs = recorded_runs(isolated_home / "mlflow.db")
    statuses = {r.data.tags.get(record.JOB, "parent"): r.info.status for r in runs}
    assert statuses == {"parent": "KILLED", "0": "FINISHED", "1": "KILLED"}
    (first,) = [r for r in runs if r.data.tags.get(record.JOB) == "0"]
    assert records_and_log(client, first.info.run_id)[0] == EVERY_RUNS_FILES
    assert len(first.outputs.model_outputs) == 1 and "test_accuracy" in first.data.metrics
