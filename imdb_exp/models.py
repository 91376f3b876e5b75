"""One small builder per model family, chosen by ``model.family`` from FAMILIES.

A family also names the data encoding its input layer expects, so a config that pairs a model
with the wrong encoding is refused before any data is read.
"""

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import keras
from keras import layers

from imdb_exp.schema import ConfigError, DataConfig, ModelConfig, OptimizerConfig


@dataclass(frozen=True)
class Family:
    build: Callable[[ModelConfig, DataConfig], keras.Model]
    encoding: str  # the data.encoding it reads


def _probability() -> layers.Layer:
    # float32 also under mixed precision: a bfloat16 probability has only 2-3 significant digits.
    return layers.Dense(1, activation="sigmoid", dtype="float32")


@keras.saving.register_keras_serializable(package="imdb_exp")
class UnpackBits(layers.Layer):
    """Packed multi-hot bytes (data.encode_multihot) -> 0/1 rows of width ``num_words``.

    Unpacking inside the model keeps the data 8x smaller in memory and on its way to the device,
    and lets Keras batch a plain uint8 array natively.
    """

    def __init__(self, num_words: int, **kwargs):
        super().__init__(**kwargs)
        self.num_words = num_words

    def call(self, packed):
        ops = keras.ops
        shifts = ops.arange(7, -1, -1, dtype="int32")  # most significant bit first, as np.packbits
        bits = ops.bitwise_and(ops.right_shift(ops.expand_dims(ops.cast(packed, "int32"), -1), shifts), 1)
        return ops.cast(ops.reshape(bits, (-1, packed.shape[-1] * 8))[:, : self.num_words], self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_words)

    def get_config(self) -> dict:
        return super().get_config() | {"num_words": self.num_words}


def dense(cfg: ModelConfig, data: DataConfig) -> keras.Model:
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
            _probability(),
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


def warn_if_slow(cfg: ModelConfig, backend: str) -> None:
    """Python shows a warning once per process, so a sweep warns once."""
    if backend == "torch" and cfg.recurrent_dropout:
        warnings.warn(
            "model.recurrent_dropout on trainer.backend=torch has no cuDNN kernel and runs each time step "
            "on its own, over 10x slower (plain Keras on an H100: over 250 s per epoch); prefer trainer.backend=jax",
            stacklevel=2,
        )


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
