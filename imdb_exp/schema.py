"""The configuration schema: every key's type, default and allowed range, in one place.

The dataclasses are registered with Hydra's ConfigStore and named first in conf/config.yaml's
defaults, so Hydra rejects unknown keys and wrong types while composing. Ranges are checked in
``__post_init__``, which runs when ``validate`` turns the composed config into these objects,
before any data is read.
"""

from dataclasses import dataclass, field

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf


class UserError(Exception):
    """Something the user can fix; reported as one line, without a traceback."""


class ConfigError(UserError):
    pass


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _choice(key: str, value: str, allowed: tuple[str, ...]) -> None:
    _require(value in allowed, f"{key}={value!r} is not allowed; choose one of: {', '.join(allowed)}")


def _dropout(key: str, value: float) -> None:
    _require(0.0 <= value < 1.0, f"{key}={value} must be in [0, 1)")


@dataclass
class DataConfig:
    encoding: str = "multihot"  # multihot | padded (see data.ENCODERS)
    source: str = "aclimdb"  # aclimdb: the raw archive; keras: keras.datasets.imdb
    archive: str | None = None  # local archive; null downloads the original once into the cache
    num_words: int = 10000  # keep word ids < num_words; the rest become 2 (out of vocabulary)
    maxlen: int = 500  # padded encoding: keep the last maxlen ids, pad in front
    val_size: float = 10000  # a count (>= 1) or a fraction (< 1) of the training reviews; 0 = none
    split_seed: int = 0  # which reviews are held out; apart from trainer.seed, which seeds the weights

    def __post_init__(self) -> None:
        _choice("data.encoding", self.encoding, ("multihot", "padded"))
        _choice("data.source", self.source, ("aclimdb", "keras"))
        _require(self.num_words > 3, f"data.num_words={self.num_words} must be > 3 (ids 0-2 are reserved)")
        _require(self.maxlen > 0, f"data.maxlen={self.maxlen} must be > 0")
        _require(
            self.val_size == 0 or 0 < self.val_size < 1 or float(self.val_size).is_integer(),
            f"data.val_size={self.val_size} must be 0, a fraction in (0, 1), or a whole count",
        )
        _require(self.val_size >= 0, f"data.val_size={self.val_size} must be >= 0")


@dataclass
class ModelConfig:
    family: str = "dense"  # the builder in models.FAMILIES
    hidden_units: list[int] = field(default_factory=lambda: [16, 16])  # dense: one Dense layer each
    activation: str = "relu"  # dense: hidden-layer activation
    embedding_dim: int = 32
    conv_filters: int = 32  # cnn_lstm front end
    conv_kernel_size: int = 3
    pool_size: int = 2
    lstm_units: int = 100
    dropout: float = 0.0  # Dropout layers: dense after each hidden layer, lstm before and after; 0 = none
    lstm_dropout: float = 0.0  # the LSTM's own input dropout
    recurrent_dropout: float = 0.0
    bigrams: int = 400000  # ngram: how many word pairs to keep, those in the most training reviews
    loss: str = "binary_crossentropy"

    def __post_init__(self) -> None:
        _require(all(u > 0 for u in self.hidden_units), f"model.hidden_units={self.hidden_units} must be > 0")
        _choice("model.activation", self.activation, ("relu", "tanh", "sigmoid", "gelu", "elu", "selu"))
        _choice("model.loss", self.loss, ("binary_crossentropy", "mse"))
        for key in ("embedding_dim", "conv_filters", "conv_kernel_size", "pool_size", "lstm_units", "bigrams"):
            _require(getattr(self, key) > 0, f"model.{key}={getattr(self, key)} must be > 0")
        for key in ("dropout", "lstm_dropout", "recurrent_dropout"):
            _dropout(f"model.{key}", getattr(self, key))


@dataclass
class OptimizerConfig:
    name: str = "rmsprop"
    learning_rate: float = 1e-3
    clipnorm: float | None = None  # rescale each weight's gradient to at most this norm; null = no clipping

    def __post_init__(self) -> None:
        _choice("optimizer.name", self.name, ("rmsprop", "adam", "sgd", "adamw"))
        _require(self.learning_rate > 0, f"optimizer.learning_rate={self.learning_rate} must be > 0")
        _require(self.clipnorm is None or self.clipnorm > 0, f"optimizer.clipnorm={self.clipnorm} must be > 0 or null")


@dataclass
class TrainerConfig:
    epochs: int = 4
    batch_size: int = 512
    seed: int = 0
    backend: str = "tensorflow"
    mixed_precision: bool = False  # bfloat16 compute, float32 weights and output
    # Stop after this many epochs without a lower validation loss and keep the best epoch's weights; null = off.
    patience: int | None = None

    def __post_init__(self) -> None:
        _require(self.epochs > 0, f"trainer.epochs={self.epochs} must be > 0")
        _require(self.patience is None or self.patience > 0, f"trainer.patience={self.patience} must be > 0 or null")
        _require(self.batch_size > 0, f"trainer.batch_size={self.batch_size} must be > 0")
        _choice("trainer.backend", self.backend, ("tensorflow", "jax", "torch"))


@dataclass
class TrackingConfig:
    uri: str | None = None  # null: MLFLOW_TRACKING_URI if set, else the SQLite store in IMDB_EXP_HOME
    experiment: str = "imdb-exp"
    log_model: bool = True  # the servable model: raw text in, probability out
    register_model: str | None = None  # also register the logged model under this name
    misclassified_reviews: int = 20  # how many wrong test calls to write out as text
    parent_run_id: str | None = None  # nest the run under this MLflow run; a sweep sets it for its jobs

    def __post_init__(self) -> None:
        _require(bool(self.experiment.strip()), "tracking.experiment must not be empty")
        _require(self.misclassified_reviews >= 0, "tracking.misclassified_reviews must be >= 0")
        _require(self.log_model or not self.register_model, "tracking.register_model needs tracking.log_model=true")


@dataclass
class TrialConfig:
    """Set by the Optuna sweeper on each trial it launches; all null outside a search."""

    study: str | None = None
    storage: str | None = None  # an Optuna RDB URL, or the path of a journal file
    number: int | None = None  # the trial's number in its study


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    trial: TrialConfig = field(default_factory=TrialConfig)
    resume: str | None = None  # an MLflow run id: continue that run from its last checkpoint
    retrain: bool = False  # sweep jobs train even when the same config already FINISHED in the store

    def __post_init__(self) -> None:
        _require(
            self.trainer.patience is None or self.data.val_size != 0,
            f"trainer.patience={self.trainer.patience} watches the validation loss, but data.val_size=0 "
            "holds no reviews out; set data.val_size or drop trainer.patience",
        )


# Keys that say how a run was launched, not what it is: left out of a run's identity (its config
# hash) and of its `overrides` tag.
LAUNCH_ONLY = ("resume", "retrain", "trial", "tracking.parent_run_id")


def is_launch_only(key: str) -> bool:
    key = key.lstrip("+~")
    return any(key == name or key.startswith(f"{name}.") for name in LAUNCH_ONLY)


def register() -> None:
    ConfigStore.instance().store(name="config_schema", node=Config)


def validate(cfg: DictConfig) -> Config:
    """The composed config as checked objects; raises ConfigError naming the first bad value."""
    return OmegaConf.to_object(cfg)
