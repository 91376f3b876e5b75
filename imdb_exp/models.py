"""One small builder per model family, chosen by ``model.family`` from FAMILIES.

A family also names the data encoding its input layer expects, so a config that pairs a model
with the wrong encoding is refused before any data is read.
"""

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np
from keras import layers

from imdb_exp.corpus import OOV
from imdb_exp.schema import ConfigError, DataConfig, ModelConfig, OptimizerConfig


@dataclass(frozen=True)
class Family:
    build: Callable[[ModelConfig, DataConfig], keras.Model]
    encoding: str  # the data.encoding it reads
    max_num_words: int | None = None  # the largest data.num_words it can take


def _probability() -> layers.Layer:
    # float32 also under mixed precision: a bfloat16 probability has only 2-3 significant digits.
    return layers.Dense(1, activation="sigmoid", dtype="float32")


# Row b holds the bits of byte b, most significant first, as np.packbits writes them.
BITS_OF_BYTE = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1)


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
        # One gather from a 256 x 8 table: 3.4 ms for a batch of 512 x 10,000 on 2 CPU cores
        # (TensorFlow), where shifting and masking each bit took 13.8 ms.
        bits = ops.take(ops.cast(BITS_OF_BYTE, self.compute_dtype), ops.cast(packed, "int32"), axis=0)
        return ops.reshape(bits, (-1, packed.shape[-1] * 8))[:, : self.num_words]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_words)

    def get_config(self) -> dict:
        return super().get_config() | {"num_words": self.num_words}


NO_PAIR = np.iinfo(np.int32).max  # the key of an unused table slot; larger than any pair's key


@keras.saving.register_keras_serializable(package="imdb_exp")
class NgramBag(layers.Layer):
    """Padded word ids (data=padded) -> the ids of the distinct words and word pairs of each review.

    A word keeps its id; a pair of adjacent words whose key ``first * num_words + second`` is among
    the ``bigrams`` pairs found in most training reviews (``adapt``) gets ``num_words`` + its rank in
    the sorted key table; other pairs, and repeats, become 0. The table is a weight of the layer, so
    the saved model carries it and serves raw text with the ordinary padded encoder.
    """

    def __init__(self, num_words: int, bigrams: int, **kwargs):
        super().__init__(**kwargs)
        self.num_words, self.bigrams = num_words, bigrams

    def build(self, input_shape):
        # Sorted keys of the kept pairs; the unused tail holds NO_PAIR.
        self.keys = self.add_weight(
            shape=(self.bigrams,),
            dtype="int32",
            trainable=False,
            name="bigram_keys",
            initializer=keras.initializers.Constant(NO_PAIR),
        )

    def adapt(self, ids: np.ndarray) -> None:
        """Keep the ``bigrams`` pairs that occur in the most reviews of ``ids`` (ties: the smaller key)."""
        keys, valid = self._pair_keys(ids)
        rows = np.broadcast_to(np.arange(len(ids))[:, None], keys.shape)[valid]
        per_review = np.unique(rows.astype(np.int64) << 32 | keys[valid].astype(np.int64))
        found, reviews = np.unique((per_review & 0xFFFFFFFF).astype(np.int32), return_counts=True)
        kept = np.sort(found[np.lexsort((found, -reviews))[: self.bigrams]])
        table = np.full(self.bigrams, NO_PAIR, np.int32)
        table[: len(kept)] = kept
        self.keys.assign(table)

    def _pair_keys(self, ids):
        first, second = ids[:, :-1], ids[:, 1:]
        # Pairs with padding, the start marker or an out-of-vocabulary word are not features.
        return first * self.num_words + second, (first > OOV) & (second > OOV)

    def call(self, ids):
        ops = keras.ops
        ids = ops.cast(ids, "int32")
        keys, valid = self._pair_keys(ids)
        rank = ops.reshape(ops.searchsorted(self.keys, ops.reshape(keys, (-1,))), ops.shape(keys))
        rank = ops.minimum(rank, self.bigrams - 1)
        known = ops.logical_and(valid, ops.equal(ops.take(self.keys, rank), keys))
        features = ops.sort(ops.concatenate([ids, ops.where(known, self.num_words + rank, 0)], axis=1), axis=1)
        repeat = ops.pad(ops.equal(features[:, 1:], features[:, :-1]), ((0, 0), (1, 0)))
        return ops.where(repeat, 0, features)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 2 * input_shape[1] - 1)

    def get_config(self) -> dict:
        return super().get_config() | {"num_words": self.num_words, "bigrams": self.bigrams}


@keras.saving.register_keras_serializable(package="imdb_exp")
class MaskedSum(layers.Layer):
    """The sum over steps of the vectors the mask keeps: GlobalAveragePooling1D without dividing by the count."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, vectors, mask=None):
        if mask is not None:
            vectors = vectors * keras.ops.expand_dims(keras.ops.cast(mask, vectors.dtype), -1)
        return keras.ops.sum(vectors, axis=1)

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])


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


def ngram(cfg: ModelConfig, data: DataConfig) -> keras.Model:
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


FAMILIES = {
    "dense": Family(dense, "multihot"),
    "lstm": Family(lstm, "padded"),
    "cnn_lstm": Family(cnn_lstm, "padded"),
    # A pair's key, first * num_words + second, must fit in int32 on every backend.
    "ngram": Family(ngram, "padded", max_num_words=math.isqrt(NO_PAIR)),
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
    if family.max_num_words and data.num_words > family.max_num_words:
        raise ConfigError(
            f"model family {model.family!r} takes data.num_words up to {family.max_num_words}, not {data.num_words}"
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
