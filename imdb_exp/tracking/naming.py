"""Names a person reads in the MLflow UI: a job named by what sets it apart within its sweep, a sweep by
the keys it varies, a configuration by the settings that change what is trained.

Values are rounded for reading in names (a learning rate of 0.0022232859607302508 is `lr=0.0022`),
never in a configuration's label, which must tell every two configurations apart.
"""

import re

from omegaconf import DictConfig, OmegaConf

from imdb_exp.config.identity import override_key
from imdb_exp.tracking import record

# Keys that a short name would leave unclear, or that read better shorter.
SHORT_KEYS = {
    "optimizer.learning_rate": "lr",
    "optimizer.name": "optimizer",
    "trainer.batch_size": "batch",
    "model.hidden_units": "units",
    "data.num_words": "words",
}
# Config groups whose option is a value a reader knows by itself ("adam", "lstm").
GROUPS = ("model", "optimizer", "data", "experiment", "debug", "callbacks")
LONGEST_PARENT_NAME = 60


def short_key(key: str) -> str:
    key = key.lstrip("+~")
    return SHORT_KEYS.get(key, key.rsplit(".", 1)[-1])


def readable(value: str) -> str:
    """A value as typed, numbers rounded to 2 significant digits (0.35, 0.0022, 1e-05, 512)."""
    try:
        number = float(value)
    except ValueError:
        return value
    return value if number.is_integer() and "." not in value and "e" not in value.lower() else f"{number:.2g}"


def part(key: str, value: str) -> str:
    """``adam`` for a group's option, ``seed=2`` for any other key."""
    return readable(value) if key.lstrip("+~") in GROUPS else f"{short_key(key)}={readable(value)}"


def run_name(tags: dict[str, str], cfg: DictConfig) -> str:
    """A sweep job's name (``adam seed=2``, ``trial 3 lr=0.0022 dropout=0.35``); a run of its own keeps
    its model and optimizer (``dense-rmsprop``): the job's group choices, else its config's (which may be
    one that failed to compose fully)."""
    varies = OmegaConf.select(cfg, "tracking.sweep_varies")
    if varies:
        overrides = dict(o.split("=", 1) for o in tags.get(record.OVERRIDES, "").split() if "=" in o)
        overrides = {override_key(key): value for key, value in overrides.items()}
        return job_name(list(varies), overrides, OmegaConf.select(cfg, "trial.number"))
    model = tags.get(record.MODEL) or OmegaConf.select(cfg, "model.family", default="job")
    return f"{model}-{tags.get(record.OPTIMIZER) or OmegaConf.select(cfg, 'optimizer.name', default='')}"


def metric_key(text: str) -> str:
    """``text`` as an MLflow metric or param name may hold it: ``weight/adam seed:2``."""
    allowed = re.sub(r"[^/\w.\- :]", " ", text.replace("=", ":"))
    return re.sub(r" +", " ", allowed).strip()


def ensemble_name(members: list[str]) -> str:
    """An ensemble named by its chosen members: ``ensemble nbsvm + ngram``; at most LONGEST_PARENT_NAME."""
    name = "ensemble " + " + ".join(members)
    return name if len(name) <= LONGEST_PARENT_NAME else f"ensemble of {len(members)} runs"


def ended_name(name: str, outcome: str) -> str:
    """A run's name once it ended otherwise than FINISHED: ``seed=4 (failed)``; a trial's right after
    its number, which the UI's narrow name column still shows of its long name:
    ``trial 3 (pruned) lr=0.0022 units=[64] dropout=0.35 batch=512``."""
    trial = re.match(r"trial \d+", name)
    if trial is None:
        return f"{name} ({outcome})"
    return f"{trial.group()} ({outcome}){name[trial.end() :]}"


def job_name(varies: list[str], overrides: dict[str, str], trial: int | None = None) -> str:
    """A sweep job's name: its trial number in a search, then its values of the keys its sweep varies."""
    keys = sorted((key for key in varies if key in overrides), key=lambda key: key not in GROUPS)  # options first
    parts = [part(key, overrides[key]) for key in keys]
    return " ".join([*([f"trial {trial}"] if trial is not None else []), *parts]) or "job"


def counted(number: int, noun: str) -> str:
    """``1 job``, ``6 jobs``."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


def sweep_name(varies: list[str], jobs: int | None, search: bool) -> str:
    """A sweep's parent named by the keys it varies, sorted: ``sweep optimizer x seed, 6 jobs``; at most
    LONGEST_PARENT_NAME characters, the keys that do not fit counted instead."""
    kind, unit = ("search", "trial") if search else ("sweep", "job")
    count = f", {counted(jobs, unit)}" if jobs is not None else ""
    keys = sorted({short_key(key) for key in varies})
    for shown in range(len(keys), 0, -1):
        hidden = len(keys) - shown
        name = f"{kind} {' x '.join(keys[:shown])}{f' x {hidden} more' if hidden else ''}{count}"
        if len(name) <= LONGEST_PARENT_NAME:
            return name
    return f"{kind} of {len(keys)} keys{count}" if keys else f"{kind}{count}"


# Settings a configuration's label leaves out: its replicates (the seeds and folds of one configuration),
# where its data lives, whether it checkpoints, and what the label names first.
NOT_IN_LABEL = ("trainer.seed", "data.fold", "data.split_seed", "data.archive", "trainer.checkpoint",
                "optimizer.name", "model.family")  # fmt: skip
LABEL_GROUPS = ("debug", "experiment")  # presets beyond the model that change what is trained


def configuration(values: dict, preset: dict, model: str, groups: dict[str, str]) -> str:
    """The label of what a run trains, from its resolved config ``values`` and its presets' (its model,
    debug and experiment options alone, ``preset``): independent of how it was typed, blind to tracking,
    paths and replicates, short where the run keeps to its presets."""
    current, reference = _flat(values), _flat(preset)
    differences = {
        key: value for key, value in current.items() if key not in NOT_IN_LABEL and reference.get(key, _ABSENT) != value
    }
    return label(model, str(current["optimizer.name"]), groups, differences)


_ABSENT = object()


def _flat(values: dict) -> dict[str, object]:
    """The sections that decide what is trained, as dotted keys."""
    return {
        f"{section}.{key}": value for section in ("data", "model", "optimizer", "trainer")
        for key, value in values[section].items()
    }  # fmt: skip


def label(model: str, optimizer: str, groups: dict[str, str], differences: dict[str, object]) -> str:
    """A configuration's label: its model and optimizer, the options of other groups that change what
    is trained (``debug=tiny``), and its settings that differ from its model's preset, sorted by key;
    every value exact, so that two labels are equal only for equal configurations."""
    shorts = [short_key(key) for key in differences]
    named = {
        (short if shorts.count(short) == 1 else key): value
        for (key, value), short in zip(differences.items(), shorts, strict=True)
    }
    settings = [f"{key}={_exact(value)}" for key, value in sorted(named.items())]
    return " ".join([model, optimizer, *(f"{group}={option}" for group, option in sorted(groups.items())), *settings])


def _exact(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list):
        return "[" + ",".join(_exact(item) for item in value) + "]"
    return str(value)
