"""The project's own Keras layers, saved with the models that use them (registered serializable).

UnpackBits feeds the dense model packed multi-hot bytes; NgramBag turns padded word ids into the
distinct words and word pairs of a review; MaskedSum adds up a bag's vectors.
"""

import keras
import numpy as np
from keras import layers

from imdb_exp.corpus import OOV

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
        # One gather from a 256 x 8 table: several times faster than shifting and masking each bit.
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
    """The sum over steps of the vectors the mask keeps: GlobalAveragePooling1D without dividing by the count.

    It sums in float32 under mixed precision too: a bfloat16 sum of a thousand terms keeps 2-3
    significant digits, and the sum is the model's logit.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, vectors, mask=None):
        vectors = keras.ops.cast(vectors, "float32")
        if mask is not None:
            vectors = vectors * keras.ops.expand_dims(keras.ops.cast(mask, "float32"), -1)
        return keras.ops.sum(vectors, axis=1)

    def compute_output_spec(self, inputs, mask=None):
        return keras.KerasTensor((inputs.shape[0], inputs.shape[2]), dtype="float32")

    def compute_mask(self, inputs, mask=None):
        return None
