"""hydra/sweeper=optuna: Optuna (>= 4) asks for trials, the configured Hydra launcher runs them.

On a parallel launcher (joblib, Ray, SLURM) `n_jobs` workers each ask for a trial and launch it as
soon as their last one ended; the basic launcher runs them in turn. Each job returns the validation accuracy of
the model it ends with, a imdb_exp.search.Pruned, or None when it failed, and is told to the study
as COMPLETE, PRUNED or FAIL. The study lives in persistent storage (imdb_exp/study_storage.py): running
the same command again continues it, and several commands on one storage share it.

Optuna and MLflow are imported only when a search runs: Hydra lists this plugin at every start
(--help too), and can without them.
"""

import concurrent.futures
import itertools
import logging
import math
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.plugins import Plugins
from hydra.core.utils import JobStatus
from hydra.plugins.sweeper import Sweeper
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


@dataclass
class OptunaSweeperConf:
    _target_: str = "hydra_plugins.imdb_exp_optuna.optuna_sweeper.OptunaSweeper"
    _recursive_: bool = False  # the sampler and pruner stay configs; jobs in other processes rebuild the pruner
    direction: str = "maximize"
    study_name: str | None = None  # null: the search's name and a digest of what it fixes and searches
    storage: str | None = None  # null: a journal file beside the MLflow store; else an Optuna RDB URL or a journal path
    n_trials: int = 6  # trials this command runs; several commands on one study each run their own
    n_jobs: int = 1  # trials running at once on a parallel launcher, a new one as each ends (basic: in turn)
    # constant_liar: trials still running count as bad ones while the next is sampled (parallel workers).
    sampler: Any = field(
        default_factory=lambda: {"_target_": "optuna.samplers.TPESampler", "seed": None, "constant_liar": True}
    )
    # null: no pruning. The median pruner stops a trial whose validation accuracy after an epoch is below
    # the median of the finished trials' after that epoch, once 3 trials have finished (with 2, the first
    # trials' luck decided too much: docs/results.md).
    pruner: Any = field(
        default_factory=lambda: {"_target_": "optuna.pruners.MedianPruner", "n_startup_trials": 3, "n_warmup_steps": 0}
    )
    params: dict[str, str] = field(default_factory=dict)  # key: choice(...) | range(...) | interval(...)


ConfigStore.instance().store(group="hydra/sweeper", name="optuna", node=OptunaSweeperConf, provider="imdb_exp")


class OptunaSweeper(Sweeper):
    def __init__(self, direction, study_name, storage, n_trials, n_jobs, sampler, pruner, params) -> None:
        # Checked before the sweep's run opens (imdb_exp.sweeps.multirun, search.check_settings).
        self.direction, self.study_name, self.storage = direction, study_name, storage
        self.n_trials, self.n_jobs = n_trials, n_jobs
        self.sampler, self.pruner = _plain(sampler), _plain(pruner)
        self.params = dict(params or {})

    def setup(self, *, hydra_context, task_function, config: DictConfig) -> None:
        self.config, self.hydra_context = config, hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function
        )

    def sweep(self, arguments: list[str]) -> list:
        with warnings.catch_warnings():
            # Optuna warns that heartbeats are meant for Study.optimize; this sweeper records them itself.
            warnings.filterwarnings("ignore", "Heartbeat of storage is supposed to be used with Study.optimize")
            return self._sweep(arguments)

    def _sweep(self, arguments: list[str]) -> list:
        import optuna

        from imdb_exp.sweeps import multirun, search, study_storage

        fixed, space = search.fixed_and_space(self.params, arguments)
        of = search.study_of(self.config, fixed, space)  # continuing one was checked before the sweep's run opened
        name, storage = of.name, of.storage
        study = optuna.create_study(
            study_name=name,
            storage=study_storage.open_storage(storage),
            sampler=instantiate(self.sampler),
            direction=self.direction,
            load_if_exists=True,
        )
        study.set_user_attr(search.PRUNER_ATTR, self.pruner)
        if search.SETUP_ATTR not in study.user_attrs:  # its first search's
            study.set_user_attr(search.SETUP_ATTR, of.setup)
        study_storage.fail_orphaned_trials(study, storage)
        log.info("Optuna study %s in %s: %d trials so far, %d more", name, storage, len(study.trials), self.n_trials)

        def overrides_of(trial) -> list[str]:
            return fixed + search.as_overrides(trial.params) + _plumbing(name, storage, trial)

        # By name: Hydra's first look for plugins runs their modules anew, so its BasicLauncher class may be
        # another object than the one an import here gives (isinstance said no, and trials ran on threads).
        basic = type(self.launcher).__name__ == "BasicLauncher"
        if self.n_jobs > 1 and basic:
            log.warning(
                "hydra.sweeper.n_jobs=%d on the basic launcher, which runs one job at a time: the trials run "
                "one after another (hydra/launcher=joblib hydra.launcher.n_jobs=%d runs them side by side)",
                self.n_jobs,
                self.n_jobs,
            )
        parallel = self.n_jobs > 1 and not basic
        run_trials = self._as_workers_free if parallel else self._in_batches
        returns = run_trials(study, space, overrides_of, storage)
        self._write_best(study)
        if parent_run_id := multirun.open_parent_run_id():  # the sweep's run, which this process opened
            _draw_the_search(study, self.direction, parent_run_id, self.config.tracking.uri)
        return returns

    def _in_batches(self, study, space, overrides_of, storage: str) -> list:
        """The basic launcher runs one job after another: n_jobs trials asked for at once, then run."""
        returns, launched = [], 0
        while launched < self.n_trials:
            trials = [study.ask(space) for _ in range(min(self.n_jobs, self.n_trials - launched))]
            returns.append(self._launched(study, trials, [overrides_of(t) for t in trials], storage, launched))
            launched += len(trials)
        return returns

    def _as_workers_free(self, study, space, overrides_of, storage: str) -> list:
        """n_jobs workers, each launching a trial whenever its last one ended, so that a long trial holds
        up no other (a batch waits for its slowest). The sampler is told of the trials still running
        (TPE's constant liar), and the job number is the trial's order of asking."""
        asking, numbers, stop, returns = threading.Lock(), itertools.count(), threading.Event(), []
        _set_up(self.launcher)

        def worker() -> None:
            while not stop.is_set():
                with asking:
                    number = next(numbers)
                    if number >= self.n_trials:
                        return
                    trial = study.ask(space)
                try:
                    returns.append(self._launched(study, [trial], [overrides_of(trial)], storage, number))
                except BaseException:
                    stop.set()  # the other workers launch nothing more; their running trials end
                    raise

        with concurrent.futures.ThreadPoolExecutor(self.n_jobs, thread_name_prefix="trial-worker") as pool:
            workers = [pool.submit(worker) for _ in range(self.n_jobs)]
            try:
                for done in workers:
                    done.result()
            except BaseException:  # a signal comes to this thread; the workers stop asking
                stop.set()
                raise
        return returns

    def _launched(self, study, trials: list, batch: list[list[str]], storage: str, first_number: int) -> list:
        """The trials' jobs run by the launcher, each told to the study as it ended; never left RUNNING."""
        import optuna

        from imdb_exp.sweeps import study_storage

        try:
            with study_storage.vouching_for(study, trials, storage):
                results = self.launcher.launch(batch, initial_job_idx=first_number)
        except BaseException:
            for trial in trials:
                study.tell(trial, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
            raise
        for trial, result in zip(trials, results, strict=True):
            _tell(study, trial, result)
        return results

    def _write_best(self, study) -> None:
        try:
            best = study.best_trial
        except ValueError:  # no trial completed
            log.warning("no trial of study %s has completed", study.study_name)
            return
        results = {"name": study.study_name, "best_trial": best.number, "best_params": best.params}
        results["best_value"] = best.value
        log.info("best trial %d: %s = %s", best.number, best.params, best.value)
        out = Path(self.config.hydra.sweep.dir) / "optimization_results.yaml"
        out.parent.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(OmegaConf.create(results), out)


def _set_up(launcher) -> None:
    """Ray's launcher joins its cluster at its first launch: workers launching at once would race to
    ray.init, so it joins here, with no job."""
    if type(launcher).__name__ == "RayLauncher":
        launcher.launch([], initial_job_idx=0)


def _plain(node) -> dict | None:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def _plumbing(study: str, storage: str, trial) -> list[str]:
    """Where the job finds its trial (imdb_exp.schema.TrialConfig)."""
    return [f"trial.study='{study}'", f"trial.storage='{storage}'", f"trial.number={trial.number}"]


def _tell(study, trial, result) -> None:
    import optuna

    from imdb_exp.sweeps import search

    state = optuna.trial.TrialState
    value = result.return_value if result.status == JobStatus.COMPLETED else None
    if isinstance(value, search.Pruned):
        study.tell(trial, state=state.PRUNED)
    elif isinstance(value, int | float) and math.isfinite(value):
        study.tell(trial, float(value))
    else:  # the job failed; its MLflow run says why
        study.tell(trial, state=state.FAIL)


def _draw_the_search(study, direction: str, parent_run_id: str, tracking_uri: str | None) -> None:
    """The optimisation history and the parameter importances, as figures of the sweep's parent run;
    a figure that cannot be made is said."""
    import optuna

    from imdb_exp.analysis import plots
    from imdb_exp.tracking import record, store

    client = store.client(tracking_uri)
    state = optuna.trial.TrialState
    values = [trial.value if trial.state == state.COMPLETE else None for trial in study.trials]
    pruned = {
        trial.number: trial.intermediate_values[trial.last_step]
        for trial in study.trials
        if trial.state == state.PRUNED and trial.last_step is not None
    }
    client.log_figure(parent_run_id, plots.search_history(values, direction, pruned), record.SEARCH_HISTORY)
    finished = sum(value is not None for value in values)
    if finished < 2:  # importances need trials that differ
        log.warning("no parameter importances for study %s: %d finished trial(s)", study.study_name, finished)
        return
    with warnings.catch_warnings():  # that a small search's importances are rough: its figure is drawn from few trials
        warnings.filterwarnings("ignore", "Some regimes for parameter", UserWarning)
        importances = optuna.importance.get_param_importances(study)
    client.log_figure(parent_run_id, plots.param_importances(importances), record.SEARCH_IMPORTANCES)
