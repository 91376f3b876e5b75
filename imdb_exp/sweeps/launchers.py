"""Hydra's launcher plugins as the project runs them: two defaults changed, joblib's stopped cleanly,
and where jobs run.

The changes are registered under the plugins' own names, so `hydra/launcher=ray`,
`hydra/launcher=submitit_slurm` and `hydra/launcher=joblib` compose them as the plugins' documentation says:

- joblib: the launcher's class is hydra_plugins/imdb_exp_joblib's, which ends a sweep whose SIGINT is
  held (stopping.py) in one line when joblib fails its pool after it; the settings are joblib's.

- ray: Ray sizes its object store itself. The released launcher (1.2.2) sets a fixed 75 MB when
  the key is absent, which ray.init refuses when it joins a running cluster
  (`+hydra.launcher.ray.init.address=auto`): "When connecting to an existing cluster,
  object_store_memory must not be provided" (Hydra issue 2893, fixed only on Hydra's main branch).
- submitit_slurm: max_num_timeout 3 instead of 0. submitit takes a preemption notice that comes in
  the last fifth of a job's time limit for the limit itself, and with 0 such a job is not
  requeued; the project's jobs continue exactly from their checkpoints, so requeuing is safe.
"""

from hydra.core.config_store import ConfigStore
from hydra.core.plugins import Plugins
from omegaconf import DictConfig

from imdb_exp.errors import ConfigError


def register() -> None:
    """Puts the changed defaults over the plugins' configs (those installed). Hydra's first look for
    plugins runs each plugin module anew, registering its configs again: it goes first."""
    Plugins.instance()
    store = ConfigStore.instance()
    try:
        from hydra_plugins.hydra_ray_launcher._config import RayConf, RayLauncherConf
    except ImportError:
        pass
    else:
        ray = RayLauncherConf(ray=RayConf(init={"address": None, "object_store_memory": None}))
        store.store(group="hydra/launcher", name="ray", node=ray, provider="imdb_exp")
    try:
        from hydra_plugins.hydra_joblib_launcher.config import JobLibLauncherConf
    except ImportError:
        pass
    else:
        stoppable = JobLibLauncherConf(_target_="hydra_plugins.imdb_exp_joblib.joblib_launcher.StoppableJoblibLauncher")
        store.store(group="hydra/launcher", name="joblib", node=stoppable, provider="imdb_exp")
    try:
        from hydra_plugins.hydra_submitit_launcher.config import SlurmQueueConf
    except ImportError:
        pass
    else:
        slurm = SlurmQueueConf(max_num_timeout=3)
        store.store(group="hydra/launcher", name="submitit_slurm", node=slurm, provider="imdb_exp")


def runs_jobs_elsewhere(launcher: DictConfig) -> bool:
    """Whether the launcher may run a job on another machine, which does not see this one's files:
    SLURM, and Ray when it joins a cluster rather than starting one in this process."""
    target = launcher.get("_target_", "")
    if target.endswith(("SlurmLauncher", "RayAWSLauncher")):
        return True
    if target.endswith(".RayLauncher"):
        return launcher.ray.init.get("address") not in (None, "local")
    return False


def is_joblib(launcher: DictConfig) -> bool:
    return launcher.get("_target_", "").endswith("JoblibLauncher")


def runs_jobs_in_workers(launcher: DictConfig) -> bool:
    """Whether joblib runs the jobs in worker processes (with n_jobs=1 it runs them in this one)."""
    return is_joblib(launcher) and launcher.get("n_jobs") != 1


def check_settings(launcher: DictConfig) -> None:
    """Refuses (ConfigError) what a launcher would fail on only once the sweep's run is made: joblib's
    n_jobs=0 (a traceback from inside joblib, and a FAILED parent of no jobs)."""
    if is_joblib(launcher) and launcher.get("n_jobs") == 0:
        raise ConfigError("hydra.launcher.n_jobs=0: joblib runs 1 or more jobs at a time (-1: one per CPU core)")
