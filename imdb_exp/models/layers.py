"""The project's own Keras layers, saved with the models that use them (registered serializable).

UnpackBits feeds the dense model packed multi-hot bytes; NgramBag turns padded word ids into the
distinct words and word pairs of a review; MaskedSum adds up a bag's vectors; NgramSlots finds a
review's distinct n-grams in a table and NbVote weighs them by their Naive-Bayes ratios;
HashedBigrams adds a hashed id per word pair to a review's words (fastText's input).
"""

import keras
import numpy as np
from keras import layers

from imdb_exp.data.corpus import OOV

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


NO_KEY = np.iinfo(np.int32).max  # the key of a table's unused slot; larger than any n-gram's key


class SortedKeyTable(layers.Layer):
    """A layer that looks n-gram keys up in a sorted int32 table: a weight, so the saved model carries
    it. ``keep_most_common`` fills it from what training reviews hold; unused slots hold NO_KEY."""

    FIXED_AFTER_ADAPT = True  # a function of the ids alone once adapted: models.prepare applies it once

    def add_table(self, size: int, name: str) -> None:
        initial = keras.initializers.Constant(NO_KEY)
        self.keys = self.add_weight(shape=(size,), dtype="int32", trainable=False, name=name, initializer=initial)

    def keep_most_common(self, found: np.ndarray, reviews: np.ndarray) -> None:
        """The table: the keys ``found`` in the most ``reviews`` (ties: the smaller key), sorted."""
        size = self.keys.shape[0]
        kept = np.sort(found[np.lexsort((found, -reviews))[:size]])
        table = np.full(size, NO_KEY, np.int32)
        table[: len(kept)] = kept
        self.keys.assign(table)

    def look_up(self, keys, valid):
        """Each key's rank in the table, and whether it is ``valid`` and the table holds it."""
        ops = keras.ops
        rank = ops.reshape(ops.searchsorted(self.keys, ops.reshape(keys, (-1,))), ops.shape(keys))
        rank = ops.minimum(rank, self.keys.shape[0] - 1)
        return rank, ops.logical_and(valid, ops.equal(ops.take(self.keys, rank), keys))


def zero_repeats(rows):
    """Rows sorted ascending, with 0 for each value equal to the one before it."""
    ops = keras.ops
    return ops.where(ops.pad(ops.equal(rows[:, 1:], rows[:, :-1]), ((0, 0), (1, 0))), 0, rows)


@keras.saving.register_keras_serializable(package="imdb_exp")
class NgramBag(SortedKeyTable):
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
        self.add_table(self.bigrams, "bigram_keys")

    def adapt(self, ids: np.ndarray) -> None:
        """Keep the ``bigrams`` pairs that occur in the most reviews of ``ids``."""
        keys, valid = self._pair_keys(ids)
        rows = np.broadcast_to(np.arange(len(ids))[:, None], keys.shape)[valid]
        per_review = np.unique(rows.astype(np.int64) << 32 | keys[valid].astype(np.int64))
        self.keep_most_common(*np.unique((per_review & 0xFFFFFFFF).astype(np.int32), return_counts=True))

    def _pair_keys(self, ids):
        first, second = ids[:, :-1], ids[:, 1:]
        # Pairs with padding, the start marker or an out-of-vocabulary word are not features.
        return first * self.num_words + second, (first > OOV) & (second > OOV)

    def call(self, ids):
        ops = keras.ops
        ids = ops.cast(ids, "int32")
        rank, known = self.look_up(*self._pair_keys(ids))
        pairs = ops.where(known, self.num_words + rank, 0)
        return zero_repeats(ops.sort(ops.concatenate([ids, pairs], axis=1), axis=1))

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


# Odd multipliers of the n-gram hash, one per position in the n-gram; int32 products wrap the same
# way on every backend and in numpy.
HASH_MULTIPLIERS = (1_000_003, 1_686_629_713, 1_431_655_765)


@keras.saving.register_keras_serializable(package="imdb_exp")
class NgramSlots(SortedKeyTable):
    """Padded word ids -> the table slots of the distinct word n-grams (n = 1 to ``max_n``) of each
    review, sorted; 0 for n-grams not in the table, repeats, padding.

    ``adapt(ids)`` keeps the ``features`` n-grams found in the most training reviews (ties: the
    smaller key); n-gram i of the sorted key table has slot i + 1. An n-gram is identified by a
    31-bit hash of its word ids (int32 arithmetic, so that every backend computes it alike without
    64-bit integers); two n-grams rarely share one.
    """

    def __init__(self, features: int, max_n: int = 3, **kwargs):
        super().__init__(**kwargs)
        self.features, self.max_n = features, max_n

    def build(self, input_shape):
        self.add_table(self.features, "ngram_keys")

    def ngram_keys(self, ids):
        """The hash of the n-gram ending at each position, for n = 1..max_n: (batch, steps * max_n);
        NO_KEY where the n-gram would hold padding, the start marker or an out-of-vocabulary word."""
        ops = keras.ops
        ids = ops.cast(ids, "int32")
        word = ids > OOV
        keys, valid = [], None
        hashed = ops.zeros_like(ids)
        for n in range(1, self.max_n + 1):
            shifted = ops.pad(ids[:, : ids.shape[1] - (n - 1)], ((0, 0), (n - 1, 0)))  # the word n-1 back
            known = ops.pad(word[:, : ids.shape[1] - (n - 1)], ((0, 0), (n - 1, 0)))
            hashed = hashed + shifted * HASH_MULTIPLIERS[n - 1]
            valid = known if valid is None else ops.logical_and(valid, known)
            # + n: an n-gram and the (n-1)-gram it ends with hash apart; NO_KEY itself is reserved.
            key = ops.minimum(ops.bitwise_and(hashed + n, NO_KEY), NO_KEY - 1)
            keys.append(ops.where(valid, key, NO_KEY))
        return ops.concatenate(keys, axis=1)

    def adapt(self, ids: np.ndarray) -> None:
        """Keep the n-grams in the most reviews of ``ids`` (ties: the smaller key)."""
        keys = np.concatenate([self._distinct_keys(part) for part in np.array_split(ids, max(1, len(ids) // 1000))])
        self.keep_most_common(*np.unique(keys[keys != NO_KEY], return_counts=True))

    def _distinct_keys(self, ids: np.ndarray) -> np.ndarray:
        """Each review's n-gram keys, sorted, with repeats replaced by NO_KEY."""
        keys = np.sort(keras.ops.convert_to_numpy(self.ngram_keys(ids)), axis=1)
        keys[:, 1:][keys[:, 1:] == keys[:, :-1]] = NO_KEY
        return keys

    def call(self, ids):
        keys = self.ngram_keys(ids)
        rank, known = self.look_up(keys, keys != NO_KEY)
        return zero_repeats(keras.ops.sort(keras.ops.where(known, rank + 1, 0), axis=1))

    def compute_output_spec(self, ids):
        return keras.KerasTensor((ids.shape[0], ids.shape[1] * self.max_n), dtype="int32")

    def get_config(self) -> dict:
        return super().get_config() | {"features": self.features, "max_n": self.max_n}


@keras.saving.register_keras_serializable(package="imdb_exp")
class NbVote(layers.Layer):
    """Naive-Bayes-weighted n-grams (NBSVM, Wang & Manning 2012): a review's logit from the table
    slots of its distinct n-grams (NgramSlots).

    ``adapt(slots, labels)`` gives each slot its log-count ratio r = log((p / |p|1) / (q / |q|1)),
    where p and q are 1 + the number of positive and negative training reviews that contain it. r
    is fixed (a weight that is not trained, saved with the model); each slot also has a learned
    weight w, and the logit is bias + sum over the review's slots of r * (w + ``interpolation``).
    With w = 0 that is the Naive-Bayes vote itself; the L2 penalty on w (``l2``) holds the model
    near it, which is what Wang & Manning's interpolation between NB and the SVM does.
    """

    def __init__(self, features: int, interpolation: float = 0.0, l2: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.features, self.interpolation, self.l2 = features, interpolation, l2

    def build(self, input_shape):
        # Slot 0 (no n-gram) keeps ratio and weight 0.
        self.ratios = self.add_weight(
            shape=(self.features + 1,), trainable=False, name="nb_ratios", initializer="zeros"
        )
        self.weights_ = self.add_weight(
            shape=(self.features + 1,), name="ngram_weights", initializer="zeros",
            regularizer=keras.regularizers.L2(self.l2) if self.l2 else None,
        )  # fmt: skip
        self.bias = self.add_weight(shape=(1,), name="bias", initializer="zeros")

    def adapt(self, slots: np.ndarray, labels: np.ndarray) -> None:
        """The ratios from the training reviews' slots (each review's distinct ones) and labels."""
        positive = labels > 0.5
        p = np.bincount(slots[positive].ravel(), minlength=self.features + 1)[1:] + 1.0
        q = np.bincount(slots[~positive].ravel(), minlength=self.features + 1)[1:] + 1.0
        used = p + q > 2  # every kept n-gram is in some training review; unused slots keep 0
        ratios = np.zeros(self.features + 1, np.float32)
        ratios[1:][used] = np.log((p[used] / p[used].sum()) / (q[used] / q[used].sum()))
        self.ratios.assign(ratios)

    def call(self, slots):
        ops = keras.ops
        votes = ops.take(self.ratios, slots) * (ops.take(self.weights_, slots) + self.interpolation)
        return ops.sum(ops.cast(votes, "float32"), axis=1, keepdims=True) + self.bias

    def compute_output_spec(self, slots):
        return keras.KerasTensor((slots.shape[0], 1), dtype="float32")

    def get_config(self) -> dict:
        return super().get_config() | {"features": self.features, "interpolation": self.interpolation, "l2": self.l2}


@keras.saving.register_keras_serializable(package="imdb_exp")
class HashedBigrams(layers.Layer):
    """Padded word ids -> the same ids followed by one id per pair of adjacent words: fastText's
    input (Joulin et al., 2016). A pair's id is ``num_words`` + its hash (int32, as NgramSlots') modulo
    ``buckets``: pairs share embeddings by hash instead of a table learned from the training reviews,
    so the layer has nothing to adapt. Pairs with padding become 0, which the embedding masks."""

    def __init__(self, num_words: int, buckets: int, **kwargs):
        super().__init__(**kwargs)
        self.num_words, self.buckets = num_words, buckets

    def call(self, ids):
        ops = keras.ops
        ids = ops.cast(ids, "int32")
        first, second = ids[:, :-1], ids[:, 1:]
        hashed = ops.bitwise_and(first * HASH_MULTIPLIERS[0] + second * HASH_MULTIPLIERS[1], NO_KEY)
        pairs = ops.where(ops.logical_and(first > 0, second > 0), self.num_words + ops.mod(hashed, self.buckets), 0)
        return ops.concatenate([ids, pairs], axis=1)

    def compute_output_spec(self, ids):
        return keras.KerasTensor((ids.shape[0], 2 * ids.shape[1] - 1), dtype="int32")

    def get_config(self) -> dict:
        return super().get_config() | {"num_words": self.num_words, "buckets": self.buckets}
