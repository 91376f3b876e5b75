"""Names a person reads in the MLflow UI: a job named by what sets it apart within its sweep, a sweep by
the keys it varies, a configuration by the settings that change what is trained.

Values are rounded for reading in names (a learning rate of 0.0022232859607302508 is `lr=0.0022`),
never in a configuration's label, which must tell every two configurations apart.
"""

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


def job_name(varies: list[str], overrides: dict[str, str], trial: int | None = None) -> str:
    """A sweep job's name: its trial number in a search, then its values of the keys its sweep varies."""
    parts = [part(key, overrides[key]) for key in varies if key in overrides]
    return " ".join([*([f"trial {trial}"] if trial is not None else []), *parts]) or "job"


def sweep_name(varies: list[str], jobs: int | None, search: bool) -> str:
    """A sweep's parent named by the keys it varies, sorted: ``sweep optimizer x seed, 6 jobs``; at most
    LONGEST_PARENT_NAME characters, the keys that do not fit counted instead."""
    kind, unit = ("search", "trials") if search else ("sweep", "jobs")
    count = f", {jobs} {unit}" if jobs is not None else ""
    keys = sorted({short_key(key) for key in varies})
    for shown in range(len(keys), 0, -1):
        hidden = len(keys) - shown
        name = f"{kind} {' x '.join(keys[:shown])}{f' x {hidden} more' if hidden else ''}{count}"
        if len(name) <= LONGEST_PARENT_NAME:
            return name
    return f"{kind} of {len(keys)} keys{count}" if keys else f"{kind}{count}"


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
