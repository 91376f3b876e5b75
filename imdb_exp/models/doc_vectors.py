"""Document vectors over n-grams (PV-DBOW, Le and Mikolov 2014, on n-grams as Mesnil et al. 2015 and
Thongtan and Phienthrakul 2019 do): learned without labels, inferred for every review alike.

Learning (``DocVectors.adapt``, gensim's Doc2Vec): each document's vector is trained to tell its own
n-grams (table slots from NgramSlots) from noise n-grams; what is kept is each n-gram's output vector
u. The training reviews take part, and the text of data.unlabeled, never a label.

Inference (``DocVectors.call``): a review's vector is the d that maximises

    sum over its n-grams s of log sigmoid(u_s . d)
    + c * sum over the noise n-grams m of log sigmoid(-u_m . d) - l2 / 2 * |d|^2,

c = negatives * (its number of n-grams) / (number of noise n-grams): the expected noise term of
negative sampling, over a fixed sample of noise n-grams drawn at learning. The objective is concave,
so its maximum is one and the same whatever the batch, order or process. It is approached by a fixed
number of Nesterov gradient steps of length 1 / (a bound on its curvature) from d = 0 (30 leave the
gradient at 2% or less of its start), in Keras ops, so that the saved model infers vectors for raw
text on every backend. Training, validation, test and new reviews all get their vectors this way: a
classifier never meets vectors of two kinds (learned for some reviews, inferred for others), and no
vector depends on where its review stood in a file.
"""

import logging
import math
import time

import keras
import numpy as np
from keras import layers

from imdb_exp.models.layers import NbVote

log = logging.getLogger(__name__)
# gensim logs each epoch and each step of its set-up at INFO: the one line after learning says enough.
logging.getLogger("gensim").setLevel(logging.WARNING)

NOISE_NGRAMS = 2000  # the fixed sample standing for the noise distribution in inference
# Reviews per batch of ``DocVectors.infer``: each holds its (n-grams x dim) vectors, at most 3,000 x 100
# floats (1.2 MB) at data.maxlen=1000 with trigrams and 100 dimensions. Compacted, a review has a few
# hundred n-grams, and a step's product with the 2,000 noise vectors costs more than its own: 256
# rows make that product 1.35x faster than 64 did (5,000 real reviews, 2 cores).
INFERENCE_BATCH = 256
WIDTH_STEP = 64  # a batch's width is its longest row's n-grams rounded up to this: few distinct shapes


def learn_ngram_vectors(documents: list[np.ndarray], features: int, dim: int, epochs: int, negatives: int,
                        seed: int, threads: int) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Each slot's output vector ((features + 1) x dim, row 0 and unseen slots zero) and its count."""
    from gensim.models.doc2vec import Doc2Vec, TaggedDocument  # a second to import: only this family does

    # A shuffled order: in the corpus's order (each class in turn) the learning rate's decay over an
    # epoch would make a document's place, and so its label, part of what is learned.
    order = np.random.default_rng(seed).permutation(len(documents))
    tagged = [TaggedDocument([str(s) for s in documents[i]], [int(i)]) for i in order]
    started = time.perf_counter()
    learner = Doc2Vec(
        vector_size=dim, dm=0, hs=0, negative=negatives, min_count=1, sample=0, epochs=epochs, workers=threads,
        seed=seed,
    )  # fmt: skip
    learner.build_vocab(tagged)
    learner.train(tagged, total_examples=len(tagged), epochs=epochs)
    slots = np.array(learner.wv.index_to_key, np.int64)
    vectors, counts = np.zeros((features + 1, dim), np.float32), np.zeros(features + 1, np.int64)
    vectors[slots] = learner.syn1neg
    counts[slots] = learner.wv.expandos["count"]  # each key's count, in index_to_key's order
    log.info(
        "document vectors: %d n-grams of %d documents learned in %.0f s (%d epochs, %d dimensions)",
        len(slots), len(documents), time.perf_counter() - started, epochs, dim,
    )  # fmt: skip
    return vectors, counts


def distinct_slots(rows: np.ndarray) -> list[np.ndarray]:
    """Each row's n-gram slots (NgramSlots' output: distinct, 0 for none), zeros dropped."""
    return [row[row > 0] for row in rows]


@keras.saving.register_keras_serializable(package="imdb_exp")
class DocVectors(layers.Layer):
    """NgramSlots' slots -> each review's document vector (``dim``); with ``with_slots``, the slots
    (as float32, exact below 2^24) followed by the vector, for a model that reads both views of a
    review from one row (NbVoteBesideVector). See the module's docstring for what is learned and how
    a vector is inferred."""

    FIXED_AFTER_ADAPT = True  # models.prepare infers every split's vectors once (infer), not at every step
    LEARNS_FROM_UNLABELED = True  # its adapt also reads the text of data.unlabeled

    def __init__(self, features: int, dim: int, epochs: int, negatives: int = 5, steps: int = 30,
                 l2: float = 1.0, seed: int = 0, threads: int = 1, with_slots: bool = False, **kwargs):  # fmt: skip
        super().__init__(**kwargs)
        self.features, self.dim, self.epochs, self.negatives = features, dim, epochs, negatives
        self.steps, self.l2, self.seed, self.threads, self.with_slots = steps, l2, seed, threads, with_slots

    def build(self, input_shape):
        zeros = "zeros"
        self.ngram_vectors = self.add_weight(
            shape=(self.features + 1, self.dim), trainable=False, name="ngram_vectors", initializer=zeros
        )
        self.noise_vectors = self.add_weight(
            shape=(NOISE_NGRAMS, self.dim), trainable=False, name="noise_vectors", initializer=zeros
        )

    def adapt(self, slots: np.ndarray, unlabeled: np.ndarray | None = None) -> None:
        """Learns the n-grams' vectors from the training reviews' ``slots`` and the ``unlabeled`` text's."""
        documents = distinct_slots(slots) + (distinct_slots(unlabeled) if unlabeled is not None else [])
        vectors, counts = learn_ngram_vectors(
            documents, self.features, self.dim, self.epochs, self.negatives, self.seed, self.threads
        )
        # Noise n-grams are drawn as negative sampling draws them: by count to the power 0.75.
        weights = counts.astype(np.float64) ** 0.75
        noise = np.random.default_rng(self.seed).choice(len(counts), NOISE_NGRAMS, p=weights / weights.sum())
        self.ngram_vectors.assign(vectors)
        self.noise_vectors.assign(vectors[noise])

    def call(self, slots):
        vectors = self._vectors(slots)
        return (
            keras.ops.concatenate([keras.ops.cast(slots, "float32"), vectors], axis=1) if self.with_slots else vectors
        )

    def infer(self, slots: np.ndarray) -> np.ndarray:
        """What ``call`` returns for every row of ``slots``, in a fraction of its time: a row's zeros add
        nothing to its objective, so the rows go in batches of similar length, each batch's n-grams
        moved to the front and cut to its longest row's (a review has a few hundred n-gram slots of the
        3,000 its row has room for, and reading their vectors 30 times is what inference spends)."""
        present = slots > 0
        order = np.argsort(present.sum(axis=1), kind="stable")
        vectors = np.empty((len(slots), self.dim), np.float32)
        for start in range(0, len(slots), INFERENCE_BATCH):
            rows = order[start : start + INFERENCE_BATCH]
            front = np.take_along_axis(slots[rows], np.argsort(~present[rows], axis=1, kind="stable"), axis=1)
            width = -(-max(int(present[rows].sum(axis=1).max()), 1) // WIDTH_STEP) * WIDTH_STEP
            vectors[rows] = keras.ops.convert_to_numpy(self._vectors(front[:, :width]))
        return np.concatenate([slots.astype(np.float32), vectors], axis=1) if self.with_slots else vectors

    def _vectors(self, slots):
        ops = keras.ops
        slots = ops.cast(slots, "int32")
        u = ops.take(self.ngram_vectors, slots, axis=0)  # (batch, slots, dim); slot 0's row is zeros
        noise = self.noise_vectors
        present = ops.sum(ops.cast(slots > 0, "float32"), axis=1, keepdims=True)
        noise_weight = self.negatives * present / NOISE_NGRAMS
        # sigmoid' <= 1/4: a bound on the objective's curvature, so each step of 1 / bound ascends.
        bound = 0.25 * ops.sum(u * u, axis=(1, 2))[:, None] + 0.25 * noise_weight * ops.sum(noise * noise) + self.l2
        d = previous = ops.zeros((ops.shape(slots)[0], self.dim))
        for momentum in nesterov_momenta(self.steps):
            ahead = d + momentum * (d - previous)
            toward_own = ops.einsum("bs,bsd->bd", ops.sigmoid(-ops.einsum("bsd,bd->bs", u, ahead)), u)
            from_noise = ops.matmul(ops.sigmoid(ops.matmul(ahead, ops.transpose(noise))), noise)
            gradient = toward_own - noise_weight * from_noise - self.l2 * ahead
            previous, d = d, ahead + gradient / bound
        return d

    def compute_output_spec(self, slots):
        width = slots.shape[1] + self.dim if self.with_slots else self.dim
        return keras.KerasTensor((slots.shape[0], width), dtype="float32")

    def get_config(self) -> dict:
        return super().get_config() | {
            "features": self.features, "dim": self.dim, "epochs": self.epochs, "negatives": self.negatives,
            "steps": self.steps, "l2": self.l2, "seed": self.seed, "threads": self.threads,
            "with_slots": self.with_slots,
        }  # fmt: skip


def nesterov_momenta(steps: int) -> list[float]:
    """The momentum before each of ``steps`` accelerated gradient steps: (t_k - 1) / t_k+1 of the
    sequence t_0 = 1, t_k+1 = (1 + sqrt(1 + 4 t_k^2)) / 2 (Nesterov 1983; Beck and Teboulle's FISTA)."""
    momenta, t = [0.0], 1.0
    for _ in range(steps - 1):
        t_next = (1 + math.sqrt(1 + 4 * t * t)) / 2
        momenta.append((t - 1) / t_next)
        t = t_next
    return momenta


@keras.saving.register_keras_serializable(package="imdb_exp")
class NbVoteBesideVector(layers.Layer):
    """One logistic regression over two views of a review, read from one row of DocVectors(with_slots):
    its NB-weighted n-grams (NbVote, on the slots) and its document vector (a linear term, the vector
    scaled by ``vector_weight``, which sets how fast and how far that view's weights move against the
    n-grams'). Both views are of the row's own review: there is nothing to join."""

    def __init__(self, features: int, dim: int, interpolation: float = 0.0, l2: float = 0.0,
                 vector_weight: float = 1.0, **kwargs):  # fmt: skip
        super().__init__(**kwargs)
        self.features, self.dim, self.interpolation, self.l2 = features, dim, interpolation, l2
        self.vector_weight = vector_weight
        self.vote = NbVote(features, interpolation, l2)
        self.linear = layers.Dense(1, use_bias=False, dtype="float32")

    def build(self, input_shape):
        slots = input_shape[1] - self.dim
        self.vote.build((input_shape[0], slots))
        self.linear.build((input_shape[0], self.dim))

    def _views(self, rows):
        ops = keras.ops
        return ops.cast(rows[:, : -self.dim], "int32"), ops.cast(rows[:, -self.dim :], "float32")

    def adapt(self, rows: np.ndarray, labels: np.ndarray) -> None:
        self.vote.adapt(rows[:, : -self.dim].astype(np.int32), labels)

    def call(self, rows):
        slots, vector = self._views(rows)
        return self.vote(slots) + self.linear(vector * self.vector_weight)

    def compute_output_spec(self, rows):
        return keras.KerasTensor((rows.shape[0], 1), dtype="float32")

    def get_config(self) -> dict:
        return super().get_config() | {
            "features": self.features, "dim": self.dim, "interpolation": self.interpolation, "l2": self.l2,
            "vector_weight": self.vector_weight,
        }  # fmt: skip
