"""One small builder per model family, registered under the family's name (its config node, with
the encoding it reads, is in schema.py); compiling a model for its optimizer and loss."""

import math
import warnings
from collections.abc import Callable

import keras
from keras import layers

from imdb_exp.data import Dataset
from imdb_exp.layers import MaskedSum, NbVote, NgramBag, NgramSlots, UnpackBits
from imdb_exp.schema import (
    CnnLstmConfig,
    ConfigError,
    DataConfig,
    DenseConfig,
    LstmConfig,
    ModelConfig,
    NbsvmConfig,
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


@builds("nbsvm")
def nbsvm(cfg: NbsvmConfig, data: DataConfig) -> keras.Model:
    """A linear model on NB-weighted word n-grams (layers.NgramSlots, layers.NbVote), trained from scratch."""
    return keras.Sequential(
        [
            keras.Input(shape=(data.maxlen,), dtype="int32"),
            NgramSlots(cfg.features, cfg.max_n),
            NbVote(cfg.features, cfg.interpolation, cfg.l2),
            layers.Activation("sigmoid", dtype="float32"),
        ],
        name="nbsvm",
    )


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


# Batch of the one pass of the fixed layers over a split: large, since nothing trains in it.
FIXED_BATCH = 512


def prepare(model: keras.Model, dataset: Dataset) -> tuple[keras.Model, Dataset]:
    """The part of ``model`` that trains, and the dataset it trains on.

    Layers that learn a table from the training reviews (``adapt``) see them before fit, and only
    them: never the validation or test reviews. The leading layers that are a fixed function of the
    ids once adapted (FIXED_AFTER_ADAPT: word ids to n-gram slots) map every split once, here,
    instead of at every step of every epoch; the rest of the model trains on what they return. Its
    layers are ``model``'s own, so ``model`` stays the whole model that serves raw text.
    """
    fixed = 0
    while fixed < len(model.layers) and getattr(model.layers[fixed], "FIXED_AFTER_ADAPT", False):
        layer = model.layers[fixed]
        layer.adapt(dataset.train.x)
        one_layer = _reading(dataset.train.x, [layer])
        dataset = dataset.mapped(lambda x, apply=one_layer: apply.predict(x, batch_size=FIXED_BATCH, verbose=0))
        fixed += 1
    rest = _reading(dataset.train.x, model.layers[fixed:], name=model.name) if fixed else model
    for layer in rest.layers:
        if hasattr(layer, "adapt"):
            layer.adapt(dataset.train.x, dataset.train.y)
    return rest, dataset


def _reading(x, stack: list[layers.Layer], name: str | None = None) -> keras.Model:
    """A model of ``stack`` (layers already built, shared) whose input is rows like those of ``x``."""
    return keras.Sequential([keras.Input(x.shape[1:], dtype=str(x.dtype)), *stack], name=name)


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
