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

from imdb_exp.config.identity import is_launch_only, override_key
from imdb_exp.config.schema import TrialConfig
from imdb_exp.errors import ConfigError, first_line
from imdb_exp.runtime.redaction import redact
from imdb_exp.sweeps.plan import every_value_once
from imdb_exp.sweeps.study_storage import default_storage, open_storage, patiently

SETUP_ATTR = "imdb_exp.setup"  # what the study's first search fixed and searched (StudyOf.setup)
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


@dataclass(frozen=True)
class StudyOf:
    """The study a search command runs on: its name, its storage, and what the search holds fixed and
    searches (kept in the study, so that a later search under the same name is told what differs)."""

    name: str
    storage: str
    setup: dict


def study_of(config, fixed: list[str], space: dict) -> StudyOf:
    """The study of a search: hydra.sweeper.study_name, else one named by the search and a digest of
    what it fixes and searches; in hydra.sweeper.storage, else the journal file beside the store."""
    what_it_is = sorted(o for o in fixed if not is_launch_only(o))
    search = config.hydra.runtime.choices.get("hparams_search") or "search"
    name = config.hydra.sweeper.study_name or study_name(search, what_it_is, {k: str(d) for k, d in space.items()})
    storage = config.hydra.sweeper.storage or default_storage(config.tracking.uri)
    return StudyOf(name, storage, {"fixed": what_it_is, "space": {k: as_typed(d) for k, d in sorted(space.items())}})


def as_typed(d) -> str:
    """An Optuna distribution in the sweep syntax that makes it: ``tag(log, interval(0.0001, 0.01))``."""
    if hasattr(d, "choices"):
        return f"choice({', '.join(map(str, d.choices))})"
    kind = f"interval({d.low}, {d.high})"
    tags = [tag for tag, on in (("log", d.log), ("int", isinstance(d.low, int))) if on]
    return f"tag({', '.join(tags)}, {kind})" if tags else kind


def check_continued(study: StudyOf, direction: str, space: dict) -> None:
    """A study that exists is continued: refused (ConfigError) if it ranks trials the other way, or
    searched a key over other choices (Optuna cannot continue it); a warning where its first search
    held other settings fixed or searched another space."""
    try:
        storage = open_storage(study.storage)
    except Exception as err:  # a database that does not answer, after its patience: said before anything opens
        raise ConfigError(f"the study's storage {redact(study.storage)} cannot be opened: {first_line(err)}") from None
    try:
        study_id = storage.get_study_id_from_name(study.name)
    except KeyError:
        return  # a new study
    kept = storage.get_study_directions(study_id)[0].name.lower()
    if kept != direction:
        raise ConfigError(
            f"study {study.name} ({redact(study.storage)}) is to {kept} its trials' value; "
            f"hydra.sweeper.direction={direction} cannot continue it: give another hydra.sweeper.study_name"
        )
    import optuna

    earlier = {}  # each key's distribution in the study's trials
    for trial in storage.get_all_trials(study_id, deepcopy=False):
        earlier |= {key: d for key, d in trial.distributions.items() if key in space and key not in earlier}
    for key, d in earlier.items():
        try:
            optuna.distributions.check_distribution_compatibility(d, space[key])
        except ValueError as err:
            raise ConfigError(
                f"study {study.name} searched {key}={as_typed(d)}, which {key}={as_typed(space[key])} cannot continue "
                f"({str(err).rstrip('.')}): give another hydra.sweeper.study_name"
            ) from None
    first = storage.get_study_user_attrs(study_id).get(SETUP_ATTR)
    if first and first != study.setup:
        log.warning(
            "study %s holds trials of a search with other settings (%s): they steer its sampler and stand in its "
            "best; another hydra.sweeper.study_name starts a study of its own",
            study.name,
            ", ".join(_differences(first, study.setup)),
        )


def _differences(first: dict, now: dict) -> list[str]:
    """What a search changed from the study's first: ``trainer.epochs=60 -> trainer.epochs=1``,
    ``model.dropout searched: interval(0.0, 0.5) -> no``."""
    searched = first["space"].keys() | now["space"].keys()  # told as searched, not as a setting
    fixed = [{override_key(o): o for o in setup["fixed"] if override_key(o) not in searched} for setup in (first, now)]
    settings = _changed(*fixed, lambda key, was, is_: f"{was or key + ' (default)'} -> {is_ or key + ' (default)'}")
    space = _changed(
        first["space"], now["space"], lambda key, was, is_: f"{key} searched: {was or 'no'} -> {is_ or 'no'}"
    )
    return settings + space


def _changed(before: dict, after: dict, said) -> list[str]:
    return [
        said(key, before.get(key), after.get(key))
        for key in sorted(before | after)
        if before.get(key) != after.get(key)
    ]


def study_name(search: str, fixed_overrides: list[str], space: dict[str, str]) -> str:
    """The same search command names the same study: the search, then a digest of what it holds fixed
    and what it searches (trials of other fixed settings would mislead the sampler)."""
    digest = hashlib.sha256(repr((sorted(fixed_overrides), sorted(space.items()))).encode()).hexdigest()[:8]
    return f"{search}-{digest}"


def check_settings(sweeper) -> None:
    """Refuses (ConfigError) hydra.sweeper settings no search runs with: a direction, a count of trials
    or workers, a sampler or pruner that cannot be made."""
    from hydra.utils import instantiate

    if sweeper.direction not in ("maximize", "minimize"):
        raise ConfigError(f"hydra.sweeper.direction={sweeper.direction}: choose maximize or minimize")
    for key, counted in (("n_trials", "trial"), ("n_jobs", "trial at a time")):
        if sweeper[key] < 1:
            raise ConfigError(f"hydra.sweeper.{key}={sweeper[key]}: a search runs at least 1 {counted}; give 1 or more")
    for part in ("sampler", "pruner"):
        try:
            instantiate(sweeper[part])
        except Exception as err:  # Hydra's wrapper names the class; its cause says what was wrong
            what = "its _target_ and arguments" + (", or null for none" if part == "pruner" else "")
            raise ConfigError(
                f"hydra.sweeper.{part} cannot be made ({first_line(err.__cause__ or err)}); set {what} (docs/sweeps.md)"
            ) from None


def fixed_and_space(params: dict, arguments: list[str]) -> tuple[list[str], dict]:
    """The command's plain overrides, and the search space: the config's params, then the command's
    own sweep overrides (which win for the same key). Unsound settings are refused (ConfigError)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    searched = [f"{key}={value}" for key, value in params.items()]
    fixed, space = [], {}
    for override in parser.parse_overrides(searched) + parser.parse_overrides(arguments):
        key = override.key_or_group
        if override.is_sweep_override():
            space[key] = distribution(key, override)
            fixed = [o for o in fixed if override_key(o) != key]
        else:
            space.pop(key, None)
            fixed.append(override.input_line)
    return fixed, space


def as_overrides(params: dict) -> list[str]:
    """A trial's values as overrides. A string choice is given back as written in choice(...):
    "[16,16]" composes as a list."""
    return [f"{key}={value if isinstance(value, str) else repr(value)}" for key, value in params.items()]


def each_end(fixed: list[str], space: dict) -> list[list[str]]:
    """Overrides of configs in which every end of the space occurs (each choice, each range's lowest
    and highest value): the first, all at their lowest or first choice, then one other end at a time.
    The settings' checks are ranges, so a space whose ends pass them holds no trial they refuse."""
    ends = {key: list(d.choices) if hasattr(d, "choices") else [d.low, d.high] for key, d in space.items()}
    return [[*fixed, *as_overrides(config)] for config in every_value_once(ends)]


def distribution(key: str, override):
    """An Optuna distribution from Hydra's sweep syntax: choice(...), range(a, b[, step]), and
    interval(a, b) (real numbers; tag(int, ...) for whole ones, tag(log, ...) for a log scale)."""
    import optuna.distributions as d
    from hydra.core.override_parser.types import Glob

    value = override.value()
    if isinstance(value, Glob):  # its options are known only to Hydra's config loader, in the jobs
        raise ConfigError(f"{override.input_line}: a search lists its options, choice(...) rather than glob(...)")
    if unknown := set(getattr(value, "tags", ())) - ({"log", "int"} if override.is_interval_sweep() else set()):
        raise ConfigError(
            f"{override.input_line}: tag {', '.join(sorted(unknown))} means nothing here (an interval takes log, int)"
        )
    if override.is_choice_sweep():
        return d.CategoricalDistribution(list(override.sweep_iterator()))
    if override.is_range_sweep():
        if not all(isinstance(v, int) for v in (value.start, value.stop, value.step)):
            raise ConfigError(f"{key}: a searched range takes whole numbers; use interval(...) for real ones")
        if value.step < 1 or value.stop <= value.start:
            raise ConfigError(
                f"{override.input_line} holds no value to search (range(start, stop, step) stops before stop)"
            )
        last = value.start + (value.stop - 1 - value.start) // value.step * value.step  # range() stops before stop
        return d.IntDistribution(value.start, last, step=value.step)
    if unknown := set(getattr(value, "tags", ())) - {"log", "int"}:
        raise ConfigError(
            f"{override.input_line}: tag {', '.join(sorted(unknown))} means nothing to a search (log, int do)"
        )
    if override.is_interval_sweep():
        log, kind = "log" in value.tags, d.IntDistribution if "int" in value.tags else d.FloatDistribution
        ends = (int(value.start), int(value.end)) if "int" in value.tags else (value.start, value.end)
        try:
            return kind(*ends, log=log)
        except ValueError as err:  # Optuna's own words: "`low <= high` must hold, but got (low=0.01, high=0.0001)."
            raise ConfigError(f"{override.input_line}: {str(err).rstrip('.')}") from None
    raise ConfigError(f"{override.input_line} is not a search space; use choice, range or interval")


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

    def report(self, epoch: int, history: dict[str, list[float]], last: bool) -> None:
        """The epoch's validation accuracy to the trial; pruned if its pruner says so, except after the
        ``last`` epoch: the fit is done then, and pruning would save no time, only lose its results."""
        if REPORTED not in history or self.ended:
            return
        patiently(lambda: self.trial.report(history[REPORTED][epoch - 1], step=epoch))
        if not last and patiently(self.trial.should_prune):
            raise TrialPruned(epoch)
