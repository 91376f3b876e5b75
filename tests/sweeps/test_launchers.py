"""Launchers for many machines compose with the project's config (no cluster is needed for that);
test_cluster.py runs them on one."""

import pytest
from hydra import compose, initialize_config_module

from imdb_exp.tracking import record
from tests.support.commands import run_cli
from tests.support.launcher_config import launcher
from tests.support.presets import DEBUG
from tests.support.store import recorded_runs


def test_the_ray_launcher_joins_a_running_cluster_without_sizing_its_object_store():
    # The released launcher sets 75 MB when the key is absent, which ray.init refuses for address=auto.
    ray = launcher("hydra/launcher=ray", "+hydra.launcher.ray.init.address=auto")
    assert ray.ray.init == {"address": "auto", "object_store_memory": None}
    assert launcher("hydra/launcher=ray", "+hydra.launcher.ray.init.num_cpus=2").ray.init.num_cpus == 2


def test_the_slurm_launcher_requeues_a_job_preempted_late_in_its_time_limit():
    assert launcher("hydra/launcher=submitit_slurm").max_num_timeout == 3


def test_slurm_launcher_composes_with_the_documented_settings():
    overrides = [
        "hydra/launcher=submitit_slurm",
        "hydra.launcher.partition=gpu",
        "hydra.launcher.gpus_per_node=1",
        "hydra.launcher.timeout_min=120",
        "model=cnn_lstm",
    ]
    with initialize_config_module("imdb_exp.conf", version_base="1.3"):
        cfg = compose("config", overrides=overrides, return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert (launcher.partition, launcher.gpus_per_node, launcher.timeout_min) == ("gpu", 1, 120)
    assert cfg.model.family == "cnn_lstm"


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.xdist_group("cluster")  # never beside the cluster tests' Ray nodes
def test_a_sweep_through_the_ray_launcher_accounts_for_every_job_under_its_parent(tmp_path, archive, isolated_home):
    # The jobs find their parent run in their config, which Ray ships to its workers (a remote
    # cluster's workers do not share the launching process's environment). The second job cannot train:
    # it holds out more reviews than the archive has, found once they are read.
    ray_settings = ["+hydra.launcher.ray.init.num_cpus=2", "+hydra.launcher.ray.init.include_dashboard=false"]
    result = run_cli(
        "-m",
        "hydra/launcher=ray",
        *ray_settings,
        f"data.archive={archive}",
        *DEBUG,
        "data.val_size=0.25,100000",
        "tracking.log_model=false",
        cwd=tmp_path,
        env={"RAY_USAGE_STATS_ENABLED": "0"},
    )
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Ray Launcher is launching 2 jobs" in result.stdout + result.stderr
    _, (parent,) = recorded_runs(isolated_home / "mlflow.db", "tags.sweep != ''")
    _, jobs = recorded_runs(isolated_home / "mlflow.db", f"tags.{record.PARENT} = '{parent.info.run_id}'")
    assert sorted(next(o for o in j.data.tags[record.OVERRIDES].split() if "val_size" in o) for j in jobs) == [
        "data.val_size=0.25",
        "data.val_size=100000",
    ]
    assert sorted(j.info.status for j in jobs) == ["FAILED", "FINISHED"] and parent.info.status == "FAILED"
