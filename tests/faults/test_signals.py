"""The fault round's signals (issue 36): SIGINT, SIGTERM, SIGHUP and SIGKILL sent to a 2-job sweep at
moments drawn from seeded generators (start-up, data, either job's fit, the sweep's end, whichever the
delay falls in). Afterwards no run is left RUNNING by a signal the process could catch, and the same
command again leaves no run RUNNING, every job FINISHED once, and trains nothing that had finished."""

import os
import random
import signal
import time

import pytest

from imdb_exp.tracking import naming, record
from tests.support.commands import run_cli, start_cli
from tests.support.presets import DEBUG
from tests.support.store import epochs_logged, recorded_runs

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

SIGNALS = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGKILL]
SEEDS = [1, 2]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("signum", SIGNALS, ids=[s.name for s in SIGNALS])
def test_a_sweep_signalled_at_a_random_moment_is_accounted_and_finished_by_the_same_command(
    tmp_path, archive, isolated_home, signum, seed
):
    delay = random.Random(f"{signum.name}-{seed}").uniform(0.5, 20.0)
    command = [
        "-m",
        "trainer.seed=0,1",
        "trainer.epochs=25",
        f"data.archive={archive}",
        *DEBUG,
        "tracking.log_model=false",
    ]
    process = start_cli(*command, cwd=tmp_path)
    time.sleep(delay)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    database = isolated_home / "mlflow.db"
    if signum != signal.SIGKILL and database.exists():
        _, runs = recorded_runs(database)
        running = [run.info.run_name for run in runs if run.info.status == "RUNNING"]
        assert not running, f"{signum.name} after {delay:.1f} s left {running} RUNNING; stderr: {stderr[-2000:]}"

    again = run_cli(*command, cwd=tmp_path)
    assert again.returncode == 0, f"{signum.name} after {delay:.1f} s: {again.stderr[-3000:]}"
    _, runs = recorded_runs(database)
    assert not [run.info.run_name for run in runs if run.info.status == "RUNNING"]
    jobs = [run for run in runs if record.JOB in run.data.tags]
    finished = sorted(run.data.params["trainer.seed"] for run in jobs if run.info.status == "FINISHED")
    assert finished == ["0", "1"], f"{signum.name} after {delay:.1f} s: finished jobs {finished}"
    for parent in (run for run in runs if record.is_sweep(run) and run.info.status != "FINISHED"):
        reached = naming.counted(len(record.counted_jobs(parent)), "job")  # also one a SIGKILL left to the next
        assert parent.info.run_name.startswith(f"sweep seed, {reached} ("), parent.info.run_name


@pytest.mark.parametrize("whom", ["launcher", "group", "group-and-an-idle-worker", "launcher-sigterm"])
def test_a_sweep_on_the_joblib_launcher_stopped_by_sigint_lets_its_running_jobs_end_and_starts_no_other(
    tmp_path, archive, isolated_home, whom
):
    # The signal comes while jobs 0 and 1 train. Sent to the launching process alone (kill -INT PID),
    # they finish and job 2 never starts; to the process group (Ctrl-C at a terminal), they are stopped
    # too and end KILLED. A third worker with no job dies of the Ctrl-C, and joblib then ends the others:
    # still one line and exit status 130, the runs cut off KILLED with the sweep's reason. Before, joblib
    # killed its workers at the first signal, and their runs were FAILED as lost. SIGTERM (a shutdown)
    # is not held: the jobs are ended with the sweep, KILLED with its reason.
    seeds, workers = ("0,1", "3") if whom == "group-and-an-idle-worker" else ("0,1,2", "2")
    command = ["-m", "hydra/launcher=joblib", f"hydra.launcher.n_jobs={workers}", f"trainer.seed={seeds}"]
    command += ["trainer.epochs=40", f"data.archive={archive}", *DEBUG, "tracking.log_model=false"]
    process = start_cli(*command, cwd=tmp_path, own_group=True)
    database = isolated_home / "mlflow.db"
    deadline = time.monotonic() + 120
    while not all(epochs_logged(database, (record.JOB, job)) for job in ("0", "1")) and time.monotonic() < deadline:
        time.sleep(0.2)
    signum = signal.SIGTERM if whom == "launcher-sigterm" else signal.SIGINT
    if whom.startswith("launcher"):
        process.send_signal(signum)
    else:
        os.killpg(process.pid, signum)
    _, stderr = process.communicate(timeout=180)
    assert process.returncode == 128 + signum, stderr[-3000:]
    assert ("SIGINT: no new job starts, the running jobs end first" in stderr) == (signum == signal.SIGINT)
    assert "Traceback" not in stderr
    _, runs = recorded_runs(database)
    (parent,) = [run for run in runs if record.is_sweep(run)]
    jobs = {run.data.tags[record.JOB]: run for run in runs if record.JOB in run.data.tags}
    assert sorted(jobs) == ["0", "1"], "a job started after the signal"
    ended = "FINISHED" if whom == "launcher" else "KILLED"
    assert [jobs[job].info.status for job in ("0", "1")] == [ended, ended], stderr[-3000:]
    reason = f"stopped by {signum.name}"
    if ended == "KILLED":
        assert all(jobs[job].data.tags[record.FAILURE_REASON].startswith(reason) for job in jobs)
    assert (parent.info.status, parent.data.tags[record.FAILURE_REASON]) == ("KILLED", reason)
