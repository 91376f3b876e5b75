"""What a sweep launches, read from its command line and config before any job: the keys it varies
(which name its jobs and its parent run) and how many jobs it runs, where that is known."""

import math

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig


def is_search(config: DictConfig) -> bool:
    """Whether the sweeper optimizes the jobs' return value (Optuna) rather than listing combinations."""
    return "direction" in config.hydra.sweeper


def swept(config: DictConfig) -> list:
    """The sweep overrides: the command line's (``optimizer=rmsprop,adam``) and the sweeper's params
    (an experiment's grid, a search space), in that order, each key once; a key the command line
    gives one value is not swept."""
    parser = OverridesParser.create()
    command = parser.parse_overrides(list(config.hydra.overrides.task))
    fixed = {override.key_or_group for override in command if not override.is_sweep_override()}
    params = parser.parse_overrides(
        [f"{key}={value}" for key, value in (config.hydra.sweeper.get("params") or {}).items()]
    )
    found: dict[str, object] = {}
    for override in [*command, *(override for override in params if override.key_or_group not in fixed)]:
        if override.is_sweep_override():
            found.setdefault(override.key_or_group, override)
    return list(found.values())


def varied_keys(config: DictConfig) -> list[str]:
    """The keys the sweep varies, as a job's overrides name them (``optimizer``, ``trainer.seed``)."""
    return [override.key_or_group for override in swept(config)]


def job_count(config: DictConfig) -> int | None:
    """How many jobs the sweep runs: a search's trials; a grid's combinations where every swept key
    lists its values (None where one is a glob, say, which only Hydra expands)."""
    if is_search(config):
        return int(config.hydra.sweeper.n_trials)
    try:
        return math.prod(len(list(override.sweep_iterator())) for override in swept(config))
    except Exception:  # a sweep Hydra expands itself (glob): known once it has run
        return None


def each_value(config: DictConfig) -> list[list[str]]:
    """Overrides of jobs of the grid in which every swept value occurs: the first job, and for each
    other value of a key the first job with that value. Each is a job the sweep runs, so a value that
    fails there fails in the sweep; checked in as many configs as the sweep has values, not jobs. No job
    where a key's values are known only once Hydra expands them (a glob)."""
    parsed = OverridesParser.create().parse_overrides(list(config.hydra.overrides.task))
    fixed = [override.input_line for override in parsed if not override.is_sweep_override()]
    try:
        values = {override.get_key_element(): list(override.sweep_string_iterator()) for override in swept(config)}
    except Exception:  # a sweep Hydra expands itself (glob): its jobs check themselves
        return []
    return [[*fixed, *(f"{key}={value}" for key, value in job.items())] for job in every_value_once(values)]


def every_value_once(values: dict[str, list]) -> list[dict]:
    """Settings in which each key's every value occurs: all keys at their first value, then one other
    value at a time (as many settings as values, not combinations)."""
    first = {key: listed[0] for key, listed in values.items()}
    return [first] + [first | {key: value} for key, listed in values.items() for value in listed[1:]]
