"""Launchers for many machines compose with the project's config (no cluster is needed for that)."""

import pytest
from hydra import compose, initialize_config_module

from tests.conftest import FAST, recorded_runs, run_cli


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
def test_a_sweep_through_the_ray_launcher_on_a_local_ray_instance_records_its_runs(tmp_path, archive, isolated_home):
    ray_settings = ["+hydra.launcher.ray.init.num_cpus=2", "+hydra.launcher.ray.init.include_dashboard=false"]
    result = run_cli(
        "-m",
        "hydra/launcher=ray",
        *ray_settings,
        "optimizer=rmsprop,adam",
        f"data.archive={archive}",
        *FAST,
        "tracking.log_model=false",
        cwd=tmp_path,
        env={"RAY_USAGE_STATS_ENABLED": "0"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Ray Launcher is launching 2 jobs" in result.stdout + result.stderr
    _, (parent,) = recorded_runs(isolated_home / "mlflow.db", "tags.sweep != ''")
    _, jobs = recorded_runs(isolated_home / "mlflow.db", f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert sorted(j.data.tags["optimizer"] for j in jobs) == ["adam", "rmsprop"]
    assert {j.info.status for j in jobs} == {"FINISHED"}
