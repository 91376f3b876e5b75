"""Tokenized corpus -> model inputs: a vocabulary cut, one encoding, and the train/val/test splits.

The id encodings are plain numpy arrays, which Keras batches natively on every backend. Multi-hot
rows are packed bits (25,000 x 10,000 is 31 MB instead of 1 GB of float32) that the dense model's
first layer unpacks (layers.UnpackBits), so that only the packed bytes travel to the device.
"""

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from imdb_exp.config.schema import DataConfig
from imdb_exp.data.corpus import (
    INDEX_FROM,
    OOV,
    Corpus,
    DataError,
    Reviews,
    default_cache_dir,
    fingerprint,
    load_corpus,
    review_source,
    with_texts,
)
from imdb_exp.errors import ConfigError
from imdb_exp.runtime.process import between_jobs

log = logging.getLogger(__name__)


def cut_vocabulary(ids: np.ndarray, num_words: int) -> np.ndarray:
    return np.where(ids < num_words, ids, OOV).astype(np.int32)


def encode_multihot(reviews: Reviews, data: DataConfig) -> np.ndarray:
    """uint8 rows of ceil(num_words / 8) bytes; bit i (most significant first) says whether id i occurs."""
    ids = cut_vocabulary(reviews.ids, data.num_words)
    rows = np.repeat(np.arange(len(reviews)), np.diff(reviews.offsets))
    # Bits set in place: a bool matrix first would take reviews x num_words bytes (2.5 GB for 25,000
    # reviews of 100,000 words) and time that grows with the vocabulary (docs/benchmarks.md).
    packed = np.zeros((len(reviews), (data.num_words + 7) // 8), np.uint8)
    np.bitwise_or.at(packed, (rows, ids >> 3), (128 >> (ids & 7)).astype(np.uint8))
    return packed


def encode_padded(reviews: Reviews, data: DataConfig) -> np.ndarray:
    """Each review's last ``maxlen`` ids, right-aligned after zeros (keras pad_sequences' default)."""
    ids = cut_vocabulary(reviews.ids, data.num_words)
    lengths = np.diff(reviews.offsets)
    taken = np.minimum(lengths, data.maxlen)
    rows = np.repeat(np.arange(len(reviews)), taken)
    within = np.arange(taken.sum()) - np.repeat(np.cumsum(taken) - taken, taken)  # 0..taken-1 per review
    source = np.repeat(reviews.offsets[1:] - taken, taken) + within
    padded = np.zeros((len(reviews), data.maxlen), np.int32)
    padded[rows, np.repeat(data.maxlen - taken, taken) + within] = ids[source]
    return padded


def encode_raw_text(reviews: Reviews, data: DataConfig) -> np.ndarray:
    """The raw text (an object array of str): the model's own tokenizer reads it (the pretrained family)."""
    return reviews.texts


ENCODERS = {"multihot": encode_multihot, "padded": encode_padded, "text": encode_raw_text}


@dataclass
class Split:
    x: np.ndarray  # packed multi-hot bits, padded ids or raw texts, one row per review
    y: np.ndarray  # float32 labels, 1.0 = positive
    rows: np.ndarray | None = None  # each review's index in its source split (training or test reviews)

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class Dataset:
    train: Split
    val: Split | None
    test: Split
    corpus: Corpus | None  # None where the source has no vocabulary (keras)
    unlabeled: np.ndarray | None = None  # inputs of the text data.unlabeled adds, encoded as the splits'

    def mapped(self, inputs: Callable[[np.ndarray], np.ndarray]) -> "Dataset":
        """The same reviews and labels, each split's inputs (and the unlabeled text's) passed through ``inputs``."""

        def mapped(split: Split) -> Split:
            return Split(inputs(split.x), split.y, split.rows)

        return Dataset(
            mapped(self.train),
            mapped(self.val) if self.val else None,
            mapped(self.test),
            self.corpus,
            None if self.unlabeled is None else inputs(self.unlabeled),
        )


def validation_count(val_size: float, n_train: int) -> int:
    count = round(val_size * n_train) if val_size < 1 else int(val_size)
    if count >= n_train:
        raise ConfigError(f"data.val_size={val_size} leaves no training reviews (the training split has {n_train})")
    return count


# The archive holds at most 30 reviews of a movie, under consecutive ids (reviews next to each other share
# names and titles far more than any two do), and the corpus keeps each class in id order: a block of 50
# consecutive reviews holds whole movies, but for those cut at its edges.
REVIEWS_PER_BLOCK = 50


def holdout_order(data: DataConfig, n_train: int) -> np.ndarray:
    """The training rows in the order they are held out for validation (the first val_size of them).

    Drawn with data.split_seed, apart from trainer.seed: runs that differ only in trainer.seed train
    and validate on the same reviews. ``reviews`` draws single reviews; ``movies`` draws whole blocks
    of consecutive ones, so that, as in the test set, validation reviews are mostly of movies that
    training never saw (a random sample shares movies with training, and flatters models that
    remember names).
    """
    rng = np.random.default_rng(data.split_seed)
    if data.val_holdout == "reviews":
        return rng.permutation(n_train)
    blocks = np.arange(n_train) // REVIEWS_PER_BLOCK
    block_rank = rng.permutation(blocks[-1] + 1)
    return np.lexsort((np.arange(n_train), block_rank[blocks]))


def _decided_by(data: DataConfig) -> tuple:
    """Everything a dataset's arrays depend on: the data config, and the archive or folder as it is now."""
    source = review_source(data.archive) if data.archive and data.source == "aclimdb" else None
    return dataclasses.astuple(data), source and (str(source.resolve()), *fingerprint(source)), str(default_cache_dir())


def check_source(data: DataConfig) -> None:
    """DataError where data.archive names nothing the reviews can come from (no such path, a folder
    without them, a file that is no tar archive): found before a run opens. An archive damaged further
    in is found as it is read."""
    if data.archive and data.source == "aclimdb":
        review_source(data.archive)


def load_dataset(data: DataConfig) -> Dataset:
    """The splits of ``cfg``; the same arrays as the last call when nothing that decides them changed
    (process.between_jobs: sweep jobs in one process mostly read the same data, and would otherwise hash the
    archive and encode 50,000 reviews again). Callers never write to them: models.prepare maps the
    inputs into new arrays. One dataset kept bounds the memory."""
    key = _decided_by(data)
    if between_jobs.dataset is None or between_jobs.dataset[0] != key:
        between_jobs.dataset = between_jobs.fixed_part = None  # the old arrays go before the new ones are built
        between_jobs.dataset = key, _load_dataset(data)
    dataset = between_jobs.dataset[1]
    n_val = len(dataset.val) if dataset.val else 0
    log.info("data: %d training, %d validation, %d test reviews", len(dataset.train), n_val, len(dataset.test))
    return dataset


def _load_dataset(data: DataConfig) -> Dataset:
    corpus = load_corpus(data.archive, default_cache_dir()) if data.source == "aclimdb" else None
    if data.encoding == "text":
        corpus = with_texts(corpus, default_cache_dir())
    train, test = (corpus.train, corpus.test) if corpus else load_keras_imdb(data.num_words)
    encode = ENCODERS[data.encoding]
    x_train, x_test = encode(train, data), encode(test, data)
    y_train, y_test = train.labels.astype(np.float32), test.labels.astype(np.float32)
    order = holdout_order(data, len(train))
    if data.folds:  # fold I of K consecutive parts of the held-out order: with movies, whole blocks
        held_out = np.array_split(order, data.folds)[data.fold]
        fit_rows, val_rows = np.setdiff1d(order, held_out), np.sort(held_out)
    else:
        n_val = validation_count(data.val_size, len(train))
        fit_rows, val_rows = np.sort(order[n_val:]), np.sort(order[:n_val])

    def subset(rows: np.ndarray) -> Split:
        return Split(x_train[rows], y_train[rows], rows)

    test_split = Split(x_test, y_test, np.arange(len(y_test)))
    unlabeled = unlabeled_inputs(data, corpus, x_test) if data.unlabeled else None
    return Dataset(subset(fit_rows), subset(val_rows) if len(val_rows) else None, test_split, corpus, unlabeled)


def unlabeled_inputs(data: DataConfig, corpus: Corpus, x_test: np.ndarray) -> np.ndarray:
    """The inputs of the text ``data.unlabeled`` names, in its order: the archive's train/unsup
    reviews (refused where it has none), the test reviews' (their text only: labels stay out)."""
    if "unsup" in data.unlabeled and not len(corpus.unsup):
        raise DataError(
            f"data.unlabeled={data.unlabeled} asks for the archive's unlabeled reviews, but {corpus.archive} "
            "has no aclImdb/train/unsup/*.txt (the original aclImdb_v1.tar.gz has 50,000); drop unsup"
        )
    parts = {"unsup": lambda: ENCODERS[data.encoding](corpus.unsup, data), "test": lambda: x_test}
    return np.concatenate([parts[source]() for source in data.unlabeled])


def load_keras_imdb(num_words: int) -> tuple[Reviews, Reviews]:
    """keras.datasets.imdb's own arrays (downloaded by Keras into KERAS_HOME on first use)."""
    from keras.datasets import imdb

    try:
        (x_train, y_train), (x_test, y_test) = imdb.load_data(num_words=num_words, index_from=INDEX_FROM)
    except Exception as err:  # Keras raises plain Exceptions for failed downloads
        raise DataError(f"data.source=keras could not load imdb.npz ({err})") from None
    return Reviews.from_lists(list(x_train), y_train), Reviews.from_lists(list(x_test), y_test)
