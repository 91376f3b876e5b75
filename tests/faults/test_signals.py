"""The fault round's signals (issue 36): SIGINT, SIGTERM, SIGHUP and SIGKILL sent to a 2-job sweep at
moments drawn from seeded generators (start-up, data, either job's fit, the sweep's end, whichever the
delay falls in). Afterwards no run is left RUNNING by a signal the process could catch, and the same
command again leaves no run RUNNING, every job FINISHED once, and trains nothing that had finished."""

import random
import signal
import time

import pytest

from imdb_exp.tracking import naming, record
from tests.support.commands import run_cli, start_cli
from tests.support.presets import DEBUG
from tests.support.store import recorded_runs

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
