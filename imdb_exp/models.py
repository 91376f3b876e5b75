"""One small builder per model family, chosen by ``model.family`` from FAMILIES.

A family also names the data encoding its input layer expects, so a config that pairs a model
with the wrong encoding is refused before any data is read.
"""

from collections.abc import Callable
from dataclasses import dataclass

import keras
from keras import layers

from imdb_exp.schema import ConfigError, DataConfig, ModelConfig, OptimizerConfig


@dataclass(frozen=True)
class Family:
    build: Callable[[ModelConfig, DataConfig], keras.Model]
    encoding: str  # the data.encoding it reads


def dense(cfg: ModelConfig, data: DataConfig) -> keras.Model:
    hidden = []
    for units in cfg.hidden_units:
        hidden.append(layers.Dense(units, activation=cfg.activation))
        hidden += [layers.Dropout(cfg.dropout)] if cfg.dropout else []
    return keras.Sequential(
        [keras.Input(shape=(data.num_words,)), *hidden, layers.Dense(1, activation="sigmoid")], name="dense"
    )


def _recurrent(cfg: ModelConfig, data: DataConfig, front: list[layers.Layer], name: str) -> keras.Model:
    around = [layers.Dropout(cfg.dropout)] if cfg.dropout else []
    return keras.Sequential(
        [
            keras.Input(shape=(data.maxlen,), dtype="int32"),
            layers.Embedding(data.num_words, cfg.embedding_dim),
            *front,
            *around,
            layers.LSTM(cfg.lstm_units, dropout=cfg.lstm_dropout, recurrent_dropout=cfg.recurrent_dropout),
            *around,
            layers.Dense(1, activation="sigmoid"),
        ],
        name=name,
    )


def lstm(cfg: ModelConfig, data: DataConfig) -> keras.Model:
    return _recurrent(cfg, data, [], "lstm")


def cnn_lstm(cfg: ModelConfig, data: DataConfig) -> keras.Model:
    front = [
        layers.Conv1D(cfg.conv_filters, cfg.conv_kernel_size, padding="same", activation="relu"),
        layers.MaxPooling1D(cfg.pool_size),
    ]
    return _recurrent(cfg, data, front, "cnn_lstm")


FAMILIES = {
    "dense": Family(dense, "multihot"),
    "lstm": Family(lstm, "padded"),
    "cnn_lstm": Family(cnn_lstm, "padded"),
}


def check_pairing(model: ModelConfig, data: DataConfig) -> Family:
    family = FAMILIES.get(model.family)
    if family is None:
        raise ConfigError(f"model.family={model.family!r} is unknown; choose one of: {', '.join(FAMILIES)}")
    if family.encoding != data.encoding:
        raise ConfigError(
            f"model family {model.family!r} reads data={family.encoding}, but data={data.encoding} was chosen; "
            f"drop the data override or pick data={family.encoding}"
        )
    return family


def compile_model(model: keras.Model, cfg: ModelConfig, optimizer: OptimizerConfig) -> keras.Model:
    model.compile(
        optimizer=keras.optimizers.get(
            {"class_name": optimizer.name, "config": {"learning_rate": optimizer.learning_rate}}
        ),
        loss=cfg.loss,
        # Named explicitly: with loss=mse the string "accuracy" would not mean binary accuracy.
        metrics=[keras.metrics.BinaryAccuracy(name="accuracy")],
    )
    return model
