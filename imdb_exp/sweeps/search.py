"""Optuna for hparams_search: the study's storage and name, the search space, and a trial's
reports from inside its job.

The study lives in persistent storage (study_storage.py), so a search can be continued and
shared. The sweeper
(hydra_plugins/imdb_exp_optuna) asks the study for trials and launches them as Hydra jobs; each
job finds its trial in its config (`trial.*`), reports its validation accuracy after every epoch
and stops when the study's pruner says it is hopeless. Optuna is an extra (`imdb-exp[optuna]`),
imported only when a search runs.
"""

import hashlib
import logging
from dataclasses import dataclass

from imdb_exp.config.schema import TrialConfig
from imdb_exp.errors import ConfigError
from imdb_exp.sweeps.study_storage import open_storage, patiently

PRUNER_ATTR = "imdb_exp.pruner"  # the study's pruner config: jobs in other processes rebuild it from there
REPORTED = "val_accuracy"  # what a trial reports after every epoch; what a search maximizes is its final value

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pruned:
    """What a pruned trial's job returns to the sweeper, instead of a value."""

    epoch: int


class TrialPruned(Exception):
    def __init__(self, epoch: int):
        super().__init__(f"pruned after epoch {epoch}")
        self.epoch = epoch


def study_name(search: str, fixed_overrides: list[str], space: dict[str, str]) -> str:
    """The same search command names the same study: the search, then a digest of what it holds fixed
    and what it searches (trials of other fixed settings would mislead the sampler)."""
    digest = hashlib.sha256(repr((sorted(fixed_overrides), sorted(space.items()))).encode()).hexdigest()[:8]
    return f"{search}-{digest}"


def distribution(key: str, override):
    """An Optuna distribution from Hydra's sweep syntax: choice(...), range(a, b[, step]), and
    interval(a, b) (real numbers; tag(int, ...) for whole ones, tag(log, ...) for a log scale)."""
    import optuna.distributions as d

    value = override.value()
    if override.is_choice_sweep():
        return d.CategoricalDistribution(list(override.sweep_iterator()))
    if override.is_range_sweep():
        if not all(isinstance(v, int) for v in (value.start, value.stop, value.step)):
            raise ConfigError(f"{key}: a searched range takes whole numbers; use interval(...) for real ones")
        last = value.start + (value.stop - 1 - value.start) // value.step * value.step  # range() stops before stop
        return d.IntDistribution(value.start, last, step=value.step)
    if override.is_interval_sweep():
        log = "log" in value.tags
        if "int" in value.tags:
            return d.IntDistribution(int(value.start), int(value.end), log=log)
        return d.FloatDistribution(value.start, value.end, log=log)
    raise ConfigError(
        f"{key}={override.get_value_element_as_str()} is not a search space; use choice, range or interval"
    )


class TrialReporter:
    """The job's side of its trial: the validation accuracy after every epoch, and the pruner's verdict."""

    def __init__(self, trial: TrialConfig):
        import optuna
        from hydra.utils import instantiate

        storage = open_storage(trial.storage)
        study_id = storage.get_study_id_from_name(trial.study)
        pruner = storage.get_study_user_attrs(study_id).get(PRUNER_ATTR)
        pruner = instantiate(pruner) if pruner else optuna.pruners.NopPruner()
        study = optuna.load_study(study_name=trial.study, storage=storage, pruner=pruner)
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        self.trial = optuna.trial.Trial(study, trial_id)
        # A trial whose run was stopped ended FAIL in its study, and the search went on without it; the
        # run, continued with resume=RUN_ID, trains to its end as a run of its own.
        state = storage.get_trial(trial_id).state
        self.ended = state.is_finished()
        if self.ended:
            log.warning(
                "trial %d of study %s has ended in its study (%s): this run reports nothing to it and is not pruned",
                trial.number,
                trial.study,
                state.name,
            )

    def report(self, epoch: int, history: dict[str, list[float]]) -> None:
        if REPORTED not in history or self.ended:
            return
        patiently(lambda: self.trial.report(history[REPORTED][epoch - 1], step=epoch))
        if patiently(self.trial.should_prune):
            raise TrialPruned(epoch)
