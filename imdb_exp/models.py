"""One small builder per model family, registered under the family's name (its config node, with
the encoding it reads, is in schema.py); compiling a model for its optimizer and loss."""

import math
import warnings
from collections.abc import Callable

import keras
from keras import layers

from imdb_exp.layers import MaskedSum, NgramBag, UnpackBits
from imdb_exp.schema import (
    CnnLstmConfig,
    ConfigError,
    DataConfig,
    DenseConfig,
    LstmConfig,
    ModelConfig,
    NgramConfig,
    OptimizerConfig,
)

BUILDERS: dict[str, Callable[[ModelConfig, DataConfig], keras.Model]] = {}


def builds(family: str):
    """Function decorator: the builder of model family ``family``."""

    def register(build: Callable[[ModelConfig, DataConfig], keras.Model]):
        BUILDERS[family] = build
        return build

    return register


def build(cfg: ModelConfig, data: DataConfig) -> keras.Model:
    if cfg.family not in BUILDERS:
        raise ConfigError(f"model family {cfg.family!r} has no builder; choose one of: {', '.join(BUILDERS)}")
    return BUILDERS[cfg.family](cfg, data)


def _probability() -> layers.Layer:
    # float32 also under mixed precision: a bfloat16 probability has only 2-3 significant digits.
    return layers.Dense(1, activation="sigmoid", dtype="float32")


@builds("dense")
def dense(cfg: DenseConfig, data: DataConfig) -> keras.Model:
    hidden = []
    for units in cfg.hidden_units:
        hidden.append(layers.Dense(units, activation=cfg.activation))
        hidden += [layers.Dropout(cfg.dropout)] if cfg.dropout else []
    return keras.Sequential(
        [
            keras.Input(shape=(math.ceil(data.num_words / 8),), dtype="uint8"),
            UnpackBits(data.num_words),
            *hidden,
            _probability(),
        ],
        name="dense",
    )


def _recurrent(cfg: LstmConfig, data: DataConfig, front: list[layers.Layer], name: str) -> keras.Model:
    around = [layers.Dropout(cfg.dropout)] if cfg.dropout else []
    return keras.Sequential(
        [
            keras.Input(shape=(data.maxlen,), dtype="int32"),
            layers.Embedding(data.num_words, cfg.embedding_dim),
            *front,
            *around,
            layers.LSTM(cfg.lstm_units, dropout=cfg.lstm_dropout, recurrent_dropout=cfg.recurrent_dropout),
            *around,
            _probability(),
        ],
        name=name,
    )


@builds("lstm")
def lstm(cfg: LstmConfig, data: DataConfig) -> keras.Model:
    return _recurrent(cfg, data, [], "lstm")


@builds("cnn_lstm")
def cnn_lstm(cfg: CnnLstmConfig, data: DataConfig) -> keras.Model:
    front = [
        layers.Conv1D(cfg.conv_filters, cfg.conv_kernel_size, padding="same", activation="relu"),
        layers.MaxPooling1D(cfg.pool_size),
    ]
    return _recurrent(cfg, data, front, "cnn_lstm")


@builds("ngram")
def ngram(cfg: NgramConfig, data: DataConfig) -> keras.Model:
    """A bag of words and word pairs; with embedding_dim=1 a logistic regression on n-gram presence."""
    return keras.Sequential(
        [
            keras.Input(shape=(data.maxlen,), dtype="int32"),
            NgramBag(data.num_words, cfg.bigrams),
            layers.Embedding(data.num_words + cfg.bigrams, cfg.embedding_dim, mask_zero=True),
            MaskedSum(),
            _probability(),
        ],
        name="ngram",
    )


def adapt(model: keras.Model, x_train) -> None:
    """Layers that learn a table from the training inputs (NgramBag) see them before fit."""
    for layer in model.layers:
        if hasattr(layer, "adapt"):
            layer.adapt(x_train)


def warn_if_slow(cfg: ModelConfig, backend: str) -> None:
    """Python shows a warning once per process, so a sweep warns once."""
    if backend == "torch" and getattr(cfg, "recurrent_dropout", 0):
        warnings.warn(
            "model.recurrent_dropout on trainer.backend=torch has no cuDNN kernel and runs each time step "
            "on its own, over 10x slower; prefer trainer.backend=jax",
            stacklevel=2,
        )


def compile_model(model: keras.Model, cfg: ModelConfig, optimizer: OptimizerConfig) -> keras.Model:
    model.compile(
        optimizer=keras.optimizers.get(
            {
                "class_name": optimizer.name,
                "config": {"learning_rate": optimizer.learning_rate, "clipnorm": optimizer.clipnorm},
            }
        ),
        loss=cfg.loss,
        # Named explicitly: with loss=mse the string "accuracy" would not mean binary accuracy.
        metrics=[keras.metrics.BinaryAccuracy(name="accuracy")],
    )
    return model
