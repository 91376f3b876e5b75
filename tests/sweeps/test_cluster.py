"""The README's cluster commands, run as written on a real cluster on this machine
(tests/support/cluster.py): PostgreSQL, an MLflow server on it with proxied artifacts, a Ray cluster
of two nodes with an IMDB_EXP_HOME each (two disks), and a one-host SLURM with accounting.

Needs Debian's postgresql (and slurm-wlm, slurmdbd, munge, mariadb-server, and root, for SLURM);
skipped where they are missing, except under .ci/run, which installs them and sets
IMDB_EXP_REQUIRE_CLUSTER=1 so that a missing service fails. SLURM's tests need root (slurmd starts
jobs as their users) and are skipped without it, as on GitHub's runners. All of them run on one pytest worker
(xdist_group): one cluster at a time on two cores.
"""

import os
import re
import shutil
import signal
import sqlite3
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from imdb_exp.tracking import record
from tests.support.archives import write_archive
from tests.support.cluster import PG_BIN, LocalCluster
from tests.support.commands import run_cli, start_cli, wait_for_epochs
from tests.support.presets import DEBUG
from tests.support.store import epochs_logged, recorded_runs, steps

HAS_POSTGRES = (PG_BIN / "postgres").exists()
HAS_SLURM = all(shutil.which(tool) for tool in ("slurmctld", "slurmd", "slurmdbd", "munged", "mariadbd"))
REQUIRED = bool(os.environ.get("IMDB_EXP_REQUIRE_CLUSTER"))
if not HAS_POSTGRES and not REQUIRED:
    pytest.skip("Debian's postgresql is not installed", allow_module_level=True)
needs_slurm = pytest.mark.skipif(
    os.geteuid() != 0 or (not REQUIRED and not HAS_SLURM), reason="SLURM's daemons, and root for slurmd, are needed"
)

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.xdist_group("cluster"), pytest.mark.e2e]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with LocalCluster(tmp_path_factory.mktemp("cluster")) as services:
        services.postgres()
        yield services


@pytest.fixture(scope="module")
def server(cluster) -> str:
    return cluster.mlflow_server()


def experiment_runs(client: MlflowClient, name: str) -> list:
    experiment = client.get_experiment_by_name(name)
    return client.search_runs([experiment.experiment_id], order_by=["start_time ASC"])


def jobs_of(runs: list, parent) -> list:
    return [run for run in runs if run.data.tags.get(record.PARENT) == parent.info.run_id]


def artifact_texts(client: MlflowClient, run_id: str, folder: Path, path: str = "") -> dict[str, str]:
    """Every text artifact of the run (figures and model weights left out), by path."""
    texts = {}
    for item in client.list_artifacts(run_id, path):
        if item.is_dir:
            texts |= artifact_texts(client, run_id, folder, item.path)
        elif item.path.endswith((".yaml", ".md", ".txt", ".tsv", ".log", ".csv", ".json", "MLmodel")):
            local = client.download_artifacts(run_id, item.path, str(folder))
            texts[item.path] = Path(local).read_text(errors="replace")
    return texts


def test_the_readme_ray_command_on_a_two_node_cluster_nests_four_jobs_with_models_stored_by_the_server(
    cluster, server, tmp_path, archive
):
    homes = [tmp_path / "node-0-home", tmp_path / "node-1-home"]
    with LocalCluster(tmp_path / "ray") as ray:
        ray_env = ray.ray(homes)
        started = time.monotonic()
        result = run_cli(
            "-m",
            "hydra/launcher=ray",
            "+hydra.launcher.ray.init.address=auto",
            f"tracking.uri={server}",
            "optimizer=rmsprop,adam",
            "model.hidden_units=[16],[32]",
            "trainer.epochs=2",
            "tracking.experiment=ray-cluster",
            f"data.archive={archive}",
            *DEBUG,
            cwd=tmp_path,
            env=ray_env | {"RAY_USAGE_STATS_ENABLED": "0"},
        )
        seconds = time.monotonic() - started
    assert result.returncode == 0, result.stderr[-3000:]
    print(f"4-job sweep on the two-node Ray cluster: {seconds:.1f} s")
    client = MlflowClient(server)
    runs = experiment_runs(client, "ray-cluster")
    (parent,) = [run for run in runs if record.SWEEP in run.data.tags]
    jobs = jobs_of(runs, parent)
    assert parent.info.status == "FINISHED" and [job.info.status for job in jobs] == ["FINISHED"] * 4
    swept = [
        [o for o in job.data.tags[record.OVERRIDES].split() if o.startswith(("optimizer=", "model."))] for job in jobs
    ]
    assert sorted(swept) == sorted(
        [f"optimizer={o}", f"model.hidden_units=[{u}]"] for o in ("rmsprop", "adam") for u in (16, 32)
    )
    for job in jobs:
        (model,) = client.search_logged_models(
            [parent.info.experiment_id], filter_string=f"source_run_id = '{job.info.run_id}'"
        )
        assert model.artifact_location.startswith("mlflow-artifacts:")  # through the server, not a local path
        (job_log,) = client.list_artifacts(job.info.run_id, record.JOB_LOGS)
        assert f"run {job.info.run_name}:" in artifact_texts(client, job.info.run_id, tmp_path / "logs")[job_log.path]
    assert list((cluster.folder / "artifacts").rglob("model.keras"))  # what the server keeps
    # Jobs ran on both nodes, each reading the archive into its own disk's cache.
    assert all(list((home / "cache").iterdir()) for home in homes)


def test_two_searches_started_at_once_share_one_study_on_postgresql_and_never_show_its_password(
    cluster, server, tmp_path, archive
):
    storage = cluster.database("shared_study")
    command = ["-m", "hparams_search=dense", "hydra.sweeper.n_trials=2", f"hydra.sweeper.storage={storage}"]
    command += [f"tracking.uri={server}", "tracking.experiment=shared-search", f"data.archive={archive}", *DEBUG]
    command += ["trainer.epochs=2"]
    folders = [tmp_path / "worker-a", tmp_path / "worker-b"]
    for folder in folders:
        folder.mkdir()
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda folder: run_cli(*command, cwd=folder), folders))
    for result in results:
        assert result.returncode == 0, result.stderr[-3000:]

    client = MlflowClient(server)
    trial_runs = [run for run in experiment_runs(client, "shared-search") if record.TRIAL in run.data.tags]
    assert sorted(int(run.data.tags[record.TRIAL]) for run in trial_runs) == [0, 1, 2, 3]
    (study_name,) = {run.data.tags[record.STUDY] for run in trial_runs}
    study = optuna.load_study(study_name=study_name, storage=storage)
    assert sorted(trial.number for trial in study.trials) == [0, 1, 2, 3]
    assert {trial.state.name for trial in study.trials} <= {"COMPLETE", "PRUNED"}

    password = cluster.password
    assert password in storage  # the URL the searches were given holds it ...
    for result in results:  # ... and nothing they printed or recorded does
        assert password not in result.stdout + result.stderr
    configs = []
    for run in experiment_runs(client, "shared-search"):
        assert not [value for value in run.data.params.values() if password in value]
        assert not [value for value in run.data.tags.values() if password in value]
        texts = artifact_texts(client, run.info.run_id, tmp_path / run.info.run_id)
        assert not [path for path, text in texts.items() if password in text]
        configs.append(texts.get(record.CONFIG, ""))
    assert any("postgresql://***@" in config for config in configs)  # where the trial's study was, redacted


def test_a_study_database_that_refuses_the_credentials_or_has_no_such_database_is_reported_at_once(cluster):
    from sqlalchemy.exc import OperationalError

    from imdb_exp.sweeps import study_storage

    url = cluster.database("refusals")
    for wrong, said in [
        (url.replace(cluster.password, "wrong"), "password authentication failed"),
        (url.rsplit("/", 1)[0] + "/no_such_database", "does not exist"),
    ]:
        started = time.monotonic()
        with pytest.raises(OperationalError, match=said):
            study_storage.open_storage(wrong)
        assert time.monotonic() - started < 10  # not the patience a restart gets (120 s)


def loss_steps(client: MlflowClient, run_id: str) -> int:
    return len(client.get_metric_history(run_id, "loss"))


def test_a_run_killed_on_one_machine_continues_on_another_through_the_server_and_ends_as_if_uninterrupted(
    server, tmp_path, monkeypatch
):
    # Epochs long enough to stop the run between its third and last (a few thousand reviews).
    archive = write_archive(tmp_path / "bigger.tar.gz", {"train": 1500, "test": 200})
    args = [f"data.archive={archive}", "data.val_size=0.25", "trainer.epochs=8", "trainer.batch_size=128"]
    args += [f"tracking.uri={server}", "tracking.experiment=two-machines", "tracking.log_model=false"]
    client = MlflowClient(server)
    monkeypatch.setenv("IMDB_EXP_HOME", str(tmp_path / "first-machine"))
    process = start_cli(*args, cwd=tmp_path)
    deadline = time.monotonic() + 180
    while not (runs := experiment_runs_or_none(client, "two-machines")) or loss_steps(client, runs[0].info.run_id) < 3:
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()[1][-3000:]
        time.sleep(0.05)
    process.kill()
    process.wait(timeout=30)
    (killed,) = runs
    assert killed.info.status == "RUNNING" and loss_steps(client, killed.info.run_id) < 8

    monkeypatch.setenv("IMDB_EXP_HOME", str(tmp_path / "second-machine"))  # never saw the run
    resumed = run_cli(f"resume={killed.info.run_id}", f"tracking.uri={server}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    (done,) = re.findall(rf"continuing run {killed.info.run_id} after epoch (\d+)", resumed.stdout + resumed.stderr)
    assert int(done) >= 3
    monkeypatch.setenv("IMDB_EXP_HOME", str(tmp_path / "third-machine"))
    assert run_cli(*args, cwd=tmp_path).returncode == 0  # the same run, uninterrupted
    continued, straight = experiment_runs(client, "two-machines")
    assert continued.info.run_id == killed.info.run_id and continued.info.status == "FINISHED"
    for metric in ("val_loss", "val_accuracy"):
        assert steps(client, continued.info.run_id, metric) == list(range(1, 9))  # each step once
    assert continued.data.metrics["test_accuracy"] == pytest.approx(straight.data.metrics["test_accuracy"], abs=1e-6)
    assert continued.data.metrics["test_loss"] == pytest.approx(straight.data.metrics["test_loss"], abs=1e-6)
    # Finished: its checkpoint left the server, where its tag no longer names one.
    assert record.CHECKPOINT not in continued.data.tags
    assert not client.list_artifacts(continued.info.run_id, record.CHECKPOINT_FOLDER)


def experiment_runs_or_none(client: MlflowClient, name: str) -> list:
    return experiment_runs(client, name) if client.get_experiment_by_name(name) else []


def test_a_sweep_that_loses_a_ray_node_mid_fit_accounts_for_both_configs_and_leaves_no_run_running(
    cluster, server, tmp_path, archive
):
    homes = [tmp_path / "node-0-home", tmp_path / "node-1-home"]
    with LocalCluster(tmp_path / "ray") as ray:
        ray_env = ray.ray(homes)
        args = ["-m", "hydra/launcher=ray", "+hydra.launcher.ray.init.address=auto", f"tracking.uri={server}"]
        args += ["optimizer=rmsprop,adam", "tracking.experiment=lost-node", f"data.archive={archive}", *DEBUG]
        args += [f"trainer.epochs={LONG}", "tracking.log_model=false"]
        sweep = start_cli(*args, cwd=tmp_path, env=ray_env | {"RAY_USAGE_STATS_ENABLED": "0"})
        client = MlflowClient(server)
        deadline = time.monotonic() + 240
        while not any(loss_steps(client, r.info.run_id) >= 2 for r in experiment_runs_or_none(client, "lost-node")):
            assert sweep.poll() is None and time.monotonic() < deadline, sweep.communicate()[1][-3000:]
            time.sleep(0.2)
        os.killpg(ray.ray_nodes[1].pid, signal.SIGKILL)  # the second machine is gone, all it ran with it
        _, stderr = sweep.communicate(timeout=600)
    runs = experiment_runs(client, "lost-node")
    (parent,) = [run for run in runs if record.SWEEP in run.data.tags]
    jobs = [run for run in runs if record.SWEEP not in run.data.tags]
    assert parent.info.status in ("FINISHED", "FAILED")
    assert not [job for job in jobs if job.info.status == "RUNNING"]
    finished = [job.data.tags[record.OPTIMIZER] for job in jobs if job.info.status == "FINISHED"]
    assert len(finished) == len(set(finished))  # at most one FINISHED run per config
    assert (sweep.returncode == 0) == (sorted(finished) == ["adam", "rmsprop"]), stderr[-3000:]
    print(f"lost node: exit {sweep.returncode}, FINISHED {sorted(finished)}, runs {[j.info.status for j in jobs]}")


def test_a_search_on_postgresql_completes_its_trials_across_a_database_restart(
    cluster, tmp_path, archive, isolated_home
):
    storage = cluster.database("restarted_study")
    args = ["-m", "hparams_search=dense", "hydra.sweeper.n_trials=4", f"hydra.sweeper.storage={storage}"]
    args += [f"data.archive={archive}", *DEBUG, "trainer.epochs=30", "tracking.log_model=false"]
    process = start_cli(*args, cwd=tmp_path)
    wait_for_epochs(process, isolated_home / "mlflow.db", 2, timeout=180)
    cluster.restart_postgres(downtime=5)
    _, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr[-3000:]
    (name,) = optuna.get_all_study_names(storage)
    states = [trial.state.name for trial in optuna.load_study(study_name=name, storage=storage).trials]
    assert len(states) == 4 and set(states) <= {"COMPLETE", "PRUNED"}, states


# -- SLURM ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    with LocalCluster(tmp_path_factory.mktemp("slurm")) as services:
        yield services.slurm()


@pytest.fixture
def slurm_env(slurm, monkeypatch) -> dict[str, str]:
    """SLURM's commands, the launcher's among them, find the local cluster (sbatch passes it on to jobs)."""
    for key, value in slurm.items():
        monkeypatch.setenv(key, value)
    return slurm


SLURM_SWEEP = ["-m", "hydra/launcher=submitit_slurm", "tracking.log_model=false", *DEBUG]
LONG = 250  # epochs of the tiny preset: a job that trains for tens of seconds, long enough to interrupt


def slurm_jobs() -> list[str]:
    listed = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True, check=True)
    return listed.stdout.split()


def wait_for_no_slurm_jobs(timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while slurm_jobs():
        assert time.monotonic() < deadline, f"SLURM jobs still queued: {slurm_jobs()}"
        time.sleep(1)


def run_state(database: Path, run_id: str) -> tuple[str, str | None]:
    """A run's status and failure_reason, read without MLflow while jobs write the store."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        (status,) = db.execute("SELECT status FROM runs WHERE run_uuid = ?", (run_id,)).fetchone()
        reason = db.execute(
            "SELECT value FROM tags WHERE run_uuid = ? AND key = 'failure_reason'", (run_id,)
        ).fetchone()
    return status, reason[0] if reason else None


def slurm_sweep_training(args: list[str], folder: Path, home: Path, run_tag=None):
    """The sweep started, once the job (of that tag) has logged two epochs; the process and its store."""
    process = start_cli(*args, cwd=folder)
    wait_for_epochs(process, home / "mlflow.db", 2, run_tag=run_tag, timeout=180)
    return process, home / "mlflow.db"


@needs_slurm
def test_a_slurm_sweep_with_a_cancelled_job_fails_within_a_minute_and_a_relaunch_continues_that_job(
    slurm_env, tmp_path, archive, isolated_home
):
    args = [*SLURM_SWEEP, "optimizer=rmsprop,adam", f"data.archive={archive}", f"trainer.epochs={LONG}"]
    process, database = slurm_sweep_training(args, tmp_path, isolated_home, run_tag=("optimizer", "rmsprop"))
    (first,) = [job for job in slurm_jobs() if job.endswith("_0")]  # job 0 of the array: rmsprop
    subprocess.run(["scancel", first], check=True)
    cancelled = time.monotonic()
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 1, stderr[-3000:]
    assert time.monotonic() - cancelled < 60
    client, runs = recorded_runs(database)
    (parent,) = [run for run in runs if record.SWEEP in run.data.tags]
    (cut,) = [run for run in runs if run.data.tags.get(record.OPTIMIZER) == "rmsprop"]
    assert parent.info.status == "FAILED"
    assert cut.info.status in ("KILLED", "FAILED") and cut.data.tags[record.FAILURE_REASON]

    wait_for_no_slurm_jobs()  # the other job finishes on its own
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    client, runs = recorded_runs(database)
    (continued,) = [run for run in runs if run.data.tags.get(record.OPTIMIZER) == "rmsprop"]
    assert continued.info.run_id == cut.info.run_id and continued.info.status == "FINISHED"
    assert steps(client, continued.info.run_id, "loss") == list(range(1, LONG + 1))  # each epoch once
    relaunched = [run for run in runs if record.SWEEP in run.data.tags][-1]
    assert relaunched.info.status == "FINISHED"


@needs_slurm
def test_a_slurm_job_preempted_with_usr2_is_killed_with_its_reason_then_continues_as_the_same_run(
    slurm_env, tmp_path, archive, isolated_home
):
    args = [*SLURM_SWEEP, "optimizer=adam", f"data.archive={archive}", f"trainer.epochs={LONG}"]
    process, database = slurm_sweep_training(args, tmp_path, isolated_home)
    (job,) = slurm_jobs()
    _, (run,) = recorded_runs(database, f"tags.{record.JOB} = '0'")
    subprocess.run(["scancel", "--signal=USR2", job], check=True)
    states = set()
    while process.poll() is None:  # until the requeued job has finished the run
        states.add(run_state(database, run.info.run_id))
        time.sleep(0.2)
    _, stderr = process.communicate()
    assert process.returncode == 0, stderr[-3000:]
    killed = [reason for status, reason in states if status == "KILLED"]
    assert killed and "SIGUSR2" in killed[0], states  # while it waited to be requeued
    client, runs = recorded_runs(database, f"tags.{record.JOB} = '0'")
    assert [r.info.run_id for r in runs] == [run.info.run_id] and runs[0].info.status == "FINISHED"
    assert steps(client, run.info.run_id, "loss") == list(range(1, LONG + 1))
    assert epochs_logged(database) == LONG
