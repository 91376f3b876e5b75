"""Document vectors (models/doc_vectors.py): what is learned without labels, the inference every review's
vector comes from, and the two views of nbsvm_docvec kept to one review."""

import keras
import numpy as np
import pytest

from imdb_exp.config import schema
from imdb_exp.config.families import DocvecConfig
from imdb_exp.config.schema import DataConfig
from imdb_exp.data import splits
from imdb_exp.models import builders
from imdb_exp.models.doc_vectors import NOISE_NGRAMS, DocVectors

FEATURES, DIM = 50, 8


def inference_layer(seed: int = 0, steps: int = 30) -> DocVectors:
    """A DocVectors layer with random n-gram vectors in place of learned ones."""
    layer = DocVectors(FEATURES, DIM, epochs=1, steps=steps, l2=1.0)
    layer.build((None, 12))
    rng = np.random.default_rng(seed)
    vectors = rng.normal(0, 0.5, (FEATURES + 1, DIM)).astype(np.float32)
    vectors[0] = 0
    layer.ngram_vectors.assign(vectors)
    layer.noise_vectors.assign(vectors[rng.integers(1, FEATURES + 1, NOISE_NGRAMS)])
    return layer


def random_slots(rows: int, seed: int = 1) -> np.ndarray:
    """Rows of distinct slots, sorted, 0 for none: NgramSlots' output."""
    rng = np.random.default_rng(seed)
    slots = np.zeros((rows, 12), np.int32)
    for row in slots:
        taken = np.sort(rng.choice(np.arange(1, FEATURES + 1), rng.integers(1, 12), replace=False))
        row[-len(taken) :] = taken
    return slots


def gradient(layer: DocVectors, slots: np.ndarray, d: np.ndarray) -> np.ndarray:
    """The objective's gradient at ``d``, in numpy: what the layer's steps drive to zero."""
    u = keras.ops.convert_to_numpy(layer.ngram_vectors)[slots]
    noise = keras.ops.convert_to_numpy(layer.noise_vectors)
    weight = layer.negatives * (slots > 0).sum(1, keepdims=True) / NOISE_NGRAMS
    own = np.einsum("bs,bsd->bd", 1 / (1 + np.exp(np.einsum("bsd,bd->bs", u, d))), u)
    return own - weight * (1 / (1 + np.exp(-d @ noise.T))) @ noise - layer.l2 * d


def test_a_reviews_vector_nears_its_objectives_maximum_whatever_the_batch_around_it():
    layer, slots = inference_layer(), random_slots(40)
    vectors = keras.ops.convert_to_numpy(layer(slots))
    start = np.linalg.norm(gradient(layer, slots, np.zeros_like(vectors)), axis=1)
    end = np.linalg.norm(gradient(layer, slots, vectors), axis=1)
    assert np.all(end < 0.02 * start), f"gradient left: {np.max(end / start):.2e} of the start's"
    order = np.random.default_rng(2).permutation(40)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(slots[order])), vectors[order], atol=1e-5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(slots[7:8])), vectors[7:8], atol=1e-5)
    # Fewer steps stop short of the maximum: the check above can tell.
    short = keras.ops.convert_to_numpy(inference_layer(steps=2)(slots))
    assert np.max(np.linalg.norm(gradient(layer, slots, short), axis=1) / start) > 0.1


def test_inferring_rows_compacted_gives_what_the_layer_gives_on_the_padded_rows():
    layer, slots = inference_layer(), random_slots(600)  # batches of 256: the last one partial
    slots = np.concatenate([slots, np.zeros((600, 100), np.int32)], axis=1)  # room to spare, as at maxlen
    slots[3] = 0  # a review without a known n-gram
    padded = keras.ops.convert_to_numpy(layer(slots))
    np.testing.assert_allclose(layer.infer(slots), padded, atol=1e-5)
    both = DocVectors(FEATURES, DIM, epochs=1, with_slots=True)
    both.build((None, 112))
    both.set_weights(layer.get_weights())
    np.testing.assert_allclose(both.infer(slots), keras.ops.convert_to_numpy(both(slots)), atol=1e-5)
    assert not np.allclose(padded[3], padded[4])  # the check compares vectors that differ


def test_under_mixed_precision_the_model_infers_its_vectors_in_float32_as_its_call_does():
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = builders.build(
            DocvecConfig(features=FEATURES, max_n=1, dim=DIM), DataConfig(encoding="padded", maxlen=12)
        )
    finally:
        keras.config.set_dtype_policy("float32")
    (layer,) = [layer for layer in model.layers if isinstance(layer, DocVectors)]
    layer.set_weights(inference_layer().get_weights())
    slots = random_slots(70)
    np.testing.assert_allclose(layer.infer(slots), keras.ops.convert_to_numpy(layer(slots)), atol=1e-5)


def test_learning_reads_the_unlabeled_documents_and_is_repeatable():
    train, unlabeled = random_slots(30, seed=3), random_slots(30, seed=4)
    train[train > 25] = 0  # n-grams 26-50 only in the unlabeled documents

    def learned(*documents) -> np.ndarray:
        layer = DocVectors(FEATURES, DIM, epochs=3, seed=5)
        layer.build((None, 12))
        layer.adapt(*documents)
        return keras.ops.convert_to_numpy(layer.ngram_vectors)

    alone, with_unlabeled = learned(train), learned(train, unlabeled)
    assert not np.any(alone[26:]) and np.all(np.any(with_unlabeled[26:][np.isin(np.arange(26, 51), unlabeled)], 1))
    np.testing.assert_array_equal(learned(train, unlabeled), with_unlabeled)  # one thread: the same vectors


@pytest.fixture(scope="module")
def two_views(tmp_path_factory, archive):
    """nbsvm_docvec's settings on the synthetic archive, and its dataset."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("IMDB_EXP_HOME", str(tmp_path_factory.mktemp("views-home")))
        from hydra import compose, initialize_config_module

        with initialize_config_module("imdb_exp.conf", version_base="1.3"):
            cfg = compose("config", ["model=nbsvm_docvec", f"data.archive={archive}", "data.num_words=200",
                                     "data.maxlen=40", "data.val_size=0.25", "data.val_holdout=reviews",
                                     "model.features=3000", "model.dim=16", "model.learn_epochs=20"])  # fmt: skip
        settings = schema.validate(cfg)
        return settings, splits.load_dataset(settings.data)


def prepared(settings, dataset: splits.Dataset) -> splits.Dataset:
    keras.utils.set_random_seed(0)
    model = builders.build(settings.model, settings.data)
    return builders.prepare(model, dataset)[1]


def val_accuracy_of_vectors(train_x, train_y, val_x, val_y) -> float:
    """A logistic regression on the rows' document vectors (their last DIM columns), fitted for real."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(keras.optimizers.Adam(0.01), "binary_crossentropy", metrics=["accuracy"])
    model.fit(train_x[:, -16:], train_y, epochs=60, batch_size=32, verbose=0)
    return float(model.evaluate(val_x[:, -16:], val_y, verbose=0)[1])


@pytest.mark.slow
def test_the_two_views_of_each_review_stay_joined_by_its_id_when_the_reviews_come_shuffled(two_views):
    settings, dataset = two_views
    order = np.random.default_rng(6).permutation(len(dataset.train))
    train = dataset.train
    shuffled = splits.Dataset(splits.Split(train.x[order], train.y[order], train.rows[order]), dataset.val,
                              dataset.test, dataset.corpus)  # fmt: skip
    base, other = prepared(settings, dataset), prepared(settings, shuffled)

    def by_id(split: splits.Split) -> np.ndarray:
        return split.x[np.argsort(split.rows)]

    # Each review's n-gram view is the same whichever order the reviews came in ...
    np.testing.assert_array_equal(by_id(base.train)[:, :-16], by_id(other.train)[:, :-16])
    # ... and its vector, learned from another order of documents, serves a classifier as well.
    joined = val_accuracy_of_vectors(base.train.x, base.train.y, base.val.x, base.val.y)
    reshuffled = val_accuracy_of_vectors(other.train.x, other.train.y, other.val.x, other.val.y)
    assert joined > 0.8 and abs(joined - reshuffled) < 0.08, (joined, reshuffled)
    # Vectors joined to the labels by position after a shuffle, the mistake this guards against: chance.
    misjoined = val_accuracy_of_vectors(other.train.x, base.train.y, base.val.x, base.val.y)
    assert misjoined < 0.7, misjoined


def test_the_unlabeled_text_reaches_the_vectors_learning_as_slots_and_goes_no_further(monkeypatch):
    """Mapped through NgramSlots for the document vectors to learn from, and then dropped: its own
    vectors would be inferred for nothing (a third of a transductive run's inference)."""
    rng = np.random.default_rng(0)
    x = rng.integers(3, 60, (30, 12)).astype(np.int32)
    split = splits.Split(x, (rng.random(30) > 0.5).astype(np.float32), np.arange(30))
    unlabeled = rng.integers(3, 60, (20, 12)).astype(np.int32)
    dataset = splits.Dataset(split, None, split, None, unlabeled)
    seen = []
    monkeypatch.setattr(DocVectors, "adapt", lambda self, slots, more=None: seen.append((slots.shape, more.shape)))
    model = builders.build(DocvecConfig(features=100, max_n=2, dim=4), DataConfig(encoding="padded", maxlen=12))
    _, mapped = builders.prepare(model, dataset)
    assert seen == [((30, 24), (20, 24))]  # each review's 12 words -> 24 uni- and bigram slots
    assert mapped.unlabeled is None and mapped.train.x.shape == (30, 4)
