"""The configuration schema: every key's type, default and allowed range, each written once (the model
families' own keys: families.py).

The dataclasses are registered with Hydra's ConfigStore and named first in conf/config.yaml's
defaults, so Hydra rejects unknown keys and wrong types while composing. Ranges are checked in
``__post_init__``, which runs when ``validate`` turns the composed config into these objects,
before any data is read.
"""

import re
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from imdb_exp.config.checks import choice, require
from imdb_exp.errors import ConfigError

UNLABELED_SOURCES = ("unsup", "test")  # data.unlabeled's choices; "test" makes a run transductive


@dataclass
class DataConfig:
    encoding: str = "multihot"  # multihot | padded | text (see data/splits.ENCODERS)
    source: str = "aclimdb"  # aclimdb: the raw archive; keras: keras.datasets.imdb
    archive: str | None = None  # local archive; null downloads the original once into the cache
    num_words: int = 10000  # keep word ids < num_words; the rest become 2 (out of vocabulary)
    maxlen: int = 500  # padded encoding: keep the last maxlen ids, pad in front
    val_size: Any = 10000  # a count (>= 1) or a fraction (< 1) of the training reviews; 0 = none (Any: as written)
    split_seed: int = 0  # which reviews are held out; apart from trainer.seed, which seeds the weights
    val_holdout: str = "reviews"  # reviews: a random sample; movies: whole blocks of consecutive review ids
    folds: int | None = None  # K: the training reviews cut into K folds in the held-out order; val_size unused
    fold: int = 0  # with folds: the fold held out for validation, 0 to K - 1
    # Text without labels that a model's unsupervised part also learns from: unsup (the archive's
    # train/unsup) and test (the test reviews' text, never their labels: the run is then transductive).
    unlabeled: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        choice("data.encoding", self.encoding, ("multihot", "padded", "text"))
        require(
            self.encoding != "text" or self.source == "aclimdb",
            "data.encoding=text needs data.source=aclimdb: keras.datasets.imdb holds word ids, not the reviews' text",
        )
        choice("data.source", self.source, ("aclimdb", "keras"))
        choice("data.val_holdout", self.val_holdout, ("reviews", "movies"))
        require(self.num_words > 3, f"data.num_words={self.num_words} must be > 3 (ids 0-2 are reserved)")
        require(self.maxlen > 0, f"data.maxlen={self.maxlen} must be > 0")
        require(
            isinstance(self.val_size, int | float) and not isinstance(self.val_size, bool),
            f"data.val_size={self.val_size!r} must be a number",
        )
        # 1.0 or 2.0 is more likely a fraction mistyped than one or two reviews meant.
        require(
            isinstance(self.val_size, int) or self.val_size < 1,
            f"data.val_size={self.val_size} must be 0, a fraction in (0, 1), or a count written as a whole number "
            "(e.g. 5000)",
        )
        require(self.val_size >= 0, f"data.val_size={self.val_size} must be >= 0")
        for source in self.unlabeled:
            choice("data.unlabeled", source, UNLABELED_SOURCES)
        require(
            len(set(self.unlabeled)) == len(self.unlabeled), f"data.unlabeled={self.unlabeled} names a source twice"
        )
        require(
            not self.unlabeled or self.source == "aclimdb",
            "data.unlabeled needs data.source=aclimdb: keras.datasets.imdb has no unlabeled reviews",
        )
        require(self.folds is None or self.folds >= 2, f"data.folds={self.folds} must be >= 2 or null")
        require(
            0 <= self.fold < (self.folds or 1),
            f"data.fold={self.fold} must be in 0 .. data.folds - 1" if self.folds else "data.fold needs data.folds",
        )


@dataclass
class OptimizerConfig:
    name: str = "rmsprop"
    learning_rate: float = 1e-3
    clipnorm: float | None = None  # rescale each weight's gradient to at most this norm; null = no clipping

    def __post_init__(self) -> None:
        choice("optimizer.name", self.name, ("rmsprop", "adam", "sgd", "adamw"))
        require(self.learning_rate > 0, f"optimizer.learning_rate={self.learning_rate} must be > 0")
        require(self.clipnorm is None or self.clipnorm > 0, f"optimizer.clipnorm={self.clipnorm} must be > 0 or null")


@dataclass
class TrainerConfig:
    epochs: int = 4
    batch_size: int = 512
    seed: int = 0
    # tensorflow | jax | torch; by default KERAS_BACKEND's, as Keras itself chooses. A GPU is used where found.
    backend: str = "${oc.env:KERAS_BACKEND,tensorflow}"
    mixed_precision: bool = False  # bfloat16 compute, float32 weights and output
    # Stop after this many epochs without a lower validation loss and keep the best epoch's weights; null = off.
    patience: int | None = None
    checkpoint: bool = True  # write a checkpoint at every epoch end, which resume=RUN_ID continues from
    steps_per_epoch: int | None = None  # train on at most this many batches an epoch; null = all of them
    shuffle: bool = True  # false: every epoch takes the reviews in the first epoch's order (the same batches)
    # A parallel launcher's worker processes each take one of the visible GPUs (runtime/devices.py).
    one_device_per_job: bool = True

    def __post_init__(self) -> None:
        require(self.epochs > 0, f"trainer.epochs={self.epochs} must be > 0")
        for key in ("patience", "steps_per_epoch"):
            require(getattr(self, key) is None or getattr(self, key) > 0, f"trainer.{key} must be > 0 or null")
        require(self.batch_size > 0, f"trainer.batch_size={self.batch_size} must be > 0")
        choice("trainer.backend", self.backend, ("tensorflow", "jax", "torch"))


@dataclass
class TrackingConfig:
    uri: str | None = None  # null: MLFLOW_TRACKING_URI if set, else the SQLite store in IMDB_EXP_HOME
    experiment: str = "imdb-exp"
    log_model: bool = True  # the servable model: raw text in, probability out
    register_model: str | None = None  # also register the logged model under this name
    model_alias: str = "candidate"  # ... and point this alias at the new version: models:/NAME@candidate
    system_metrics: bool = True  # CPU, memory, disk (and GPU, with pynvml) while the run lasts: system/*
    misclassified_reviews: int = 20  # how many wrong test calls to write out as text
    parent_run_id: str | None = None  # nest the run under this MLflow run; a sweep sets it for its jobs
    sweep_varies: list[str] | None = None  # the keys the job's sweep varies, which name the job; set by the sweep
    server_timeout: int = 60  # seconds a call waits for a tracking server that does not answer, retries included

    def __post_init__(self) -> None:
        require(bool(self.experiment.strip()), "tracking.experiment must not be empty")
        require(self.server_timeout >= 10, "tracking.server_timeout must be >= 10 (seconds)")
        require(self.misclassified_reviews >= 0, "tracking.misclassified_reviews must be >= 0")
        require(self.log_model or not self.register_model, "tracking.register_model needs tracking.log_model=true")
        require(
            bool(re.fullmatch(r"[\w-]+", self.model_alias)) and self.model_alias.lower() != "latest",
            f"tracking.model_alias={self.model_alias!r} must be letters, digits, _ or -, and not 'latest'",
        )


@dataclass
class TrialConfig:
    """Set by the Optuna sweeper on each trial it launches; all null outside a search."""

    study: str | None = None
    storage: str | None = None  # an Optuna RDB URL, or the path of a journal file
    number: int | None = None  # the trial's number in its study


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    # The model group's option fills this with its family's node (a ModelConfig subclass), which types
    # and checks its keys; no one family's node can be the default, as the others are no subclasses of it.
    model: Any = MISSING
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    trial: TrialConfig = field(default_factory=TrialConfig)
    # Keras callbacks by name, each node its options (conf/callbacks/, imdb_exp/callbacks.py).
    callbacks: dict[str, Any] = field(default_factory=dict)
    resume: str | None = None  # an MLflow run id: continue that run from its last checkpoint
    retrain: bool = False  # sweep jobs train even when the same config already FINISHED in the store

    def __post_init__(self) -> None:
        # A model preset brings its encoding, but an explicit data= on the command line wins over it.
        model, data = self.model, self.data
        require(
            model.encoding == data.encoding,
            f"model family {model.family!r} reads data={model.encoding}, but data={data.encoding} was chosen; "
            f"drop the data override or pick data={model.encoding}",
        )
        require(
            model.max_num_words is None or data.num_words <= model.max_num_words,
            f"model family {model.family!r} takes data.num_words up to {model.max_num_words}, not {data.num_words}",
        )
        require(
            not data.unlabeled or model.learns_from_unlabeled,
            f"data.unlabeled={data.unlabeled}: model family {model.family!r} learns nothing from text without "
            "labels; choose model=docvec or model=nbsvm_docvec, or drop data.unlabeled",
        )
        require(self.resume != "", "resume= needs the id of the run to continue: resume=RUN_ID")
        require(
            self.trainer.patience is None or self.data.val_size != 0,
            f"trainer.patience={self.trainer.patience} watches the validation loss, but data.val_size=0 "
            "holds no reviews out; set data.val_size or drop trainer.patience",
        )


def register() -> None:
    """The schema for Hydra: the config's node, and each model family's (which registers as it is defined)."""
    from imdb_exp.config import families  # noqa: F401

    ConfigStore.instance().store(name="config_schema", node=Config)


def validate(cfg: DictConfig) -> Config:
    """The composed config as checked objects; raises ConfigError naming the first bad value."""
    _refuse_unknown_keys(cfg, "")
    try:
        return OmegaConf.to_object(cfg)
    except MissingMandatoryValue as err:
        raise ConfigError(f"{err.full_key} has no default and was not given; set it: {err.full_key}=...") from None


def _refuse_unknown_keys(node: DictConfig, path: str) -> None:
    """Hydra lets `+trainer.epoch=1` add a key to a typed node, and turning the config into objects
    would then drop it without a word: a typo would train with the default. Refused here instead."""
    schema = OmegaConf.get_type(node)
    known = {f.name for f in fields(schema)} if is_dataclass(schema) else None
    for key in node:
        name = f"{path}{key}"
        if known is not None and key not in known:
            raise ConfigError(f"{name} is not a config key; the keys of {path.rstrip('.') or 'the config'} are: "
                              f"{', '.join(sorted(known))}")  # fmt: skip
        value = node._get_node(key)
        if isinstance(value, DictConfig) and not value._is_missing() and not value._is_none():
            _refuse_unknown_keys(value, f"{name}.")
