"""The fault round's generated inputs (issue 36): any text through the tokenizer and the encoders, any
override through the config, archives cut at random offsets, cached and checkpointed files with
random bytes flipped. Each case must end in a result or in one clear error (a UserError or Hydra's
own), never in another exception. Hypothesis draws its cases derandomized and the archive offsets and
flipped bytes come from seeded generators, so that a failure is the same failure on the next run."""

import random
import tarfile

import numpy as np
import pytest
from hydra import compose, initialize_config_module
from hydra.errors import HydraException
from hypothesis import example, given, settings
from hypothesis import strategies as st
from omegaconf.errors import OmegaConfBaseException

from imdb_exp.cli import main as cli
from imdb_exp.config import schema
from imdb_exp.data import corpus, splits
from imdb_exp.data.corpus import INDEX_FROM, OOV, START, DataError, Reviews, load_corpus, tokenize
from imdb_exp.errors import UserError
from imdb_exp.runtime import checked_npz
from tests.support.archives import write_archive

ANY_TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=300)
VOCABULARY = ["the", "film", "great", "awful", "don't", "plot", "é", "日本"]


@settings(max_examples=300, deadline=None, derandomize=True)
@given(ANY_TEXT)
def test_any_text_tokenizes_to_lowercase_words_without_spaces_markup_or_dropped_punctuation(text):
    words = tokenize(text)
    assert all(word and not any(c.isspace() for c in word) for word in words)
    assert all(word == word.lower() for word in words) and not any(c in "".join(words) for c in '!",.?<>')
    assert tokenize(" ".join(words)) == words  # tokenizing is idempotent on its own output


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(st.sampled_from(VOCABULARY + ["unseen", "WORDS"]), max_size=40))
def test_encoding_then_decoding_gives_the_words_back_with_unknown_ones_as_oov(words):
    index = corpus.word_index(VOCABULARY)
    ids = corpus.encode_text(" ".join(words), index)
    assert ids[0] == START and all(i == OOV or i > INDEX_FROM for i in ids[1:])
    decoded = corpus.Corpus(Reviews.from_lists([ids], [1]), Reviews.from_lists([ids], [1]), VOCABULARY).decode(ids)
    expected = [w.lower() if w.lower() in VOCABULARY else "<oov>" for w in words]
    assert decoded.split() == ["<start>", *expected]


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    st.lists(st.lists(st.integers(1, 60), max_size=30), min_size=1, max_size=20),
    st.integers(4, 64),  # ids 0-3 are reserved: data.num_words > 3
    st.integers(1, 40),
)
def test_any_reviews_encode_to_the_multihot_bits_and_padded_tails_they_hold(sequences, num_words, maxlen):
    reviews = Reviews.from_lists(sequences, [0] * len(sequences))
    data = schema.DataConfig(num_words=num_words, maxlen=maxlen)
    bits = np.unpackbits(splits.encode_multihot(reviews, data), axis=1)[:, :num_words]
    padded = splits.encode_padded(reviews, data)
    for row, ids in enumerate(sequences):
        cut = [i if i < num_words else OOV for i in ids]
        assert set(np.flatnonzero(bits[row])) == set(cut)
        tail = cut[-maxlen:]
        assert padded[row].tolist() == [0] * (maxlen - len(tail)) + tail


KEYS = ["trainer.epochs", "trainer.batch_size", "data.val_size", "data.num_words", "model.dropout", "optimizer",
        "optimizer.learning_rate", "model", "data.maxlen", "trainer.patience", "nope.key", "model.units", "debug",
        "hparams_search"]  # fmt: skip
VALUES = st.one_of(
    st.integers(-5, 10**6).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(["null", "true", "[1,2]", "{a: 1}", "dense", "lstm", "'", "${oc.env:NOPE}", "", "=", "x y"]),
    st.text(alphabet=st.characters(codec="ascii", exclude_categories=["Cc"]), max_size=12),
)


@settings(max_examples=400, deadline=None, derandomize=True)
@given(st.lists(st.tuples(st.sampled_from(KEYS), VALUES), max_size=3))
@example([("optimizer", "0")]).via("found by this round: a traceback from Hydra's defaults list")
@example([("optimizer", "[1,2]")]).via("found by this round: a TypeError from Hydra's defaults list")
@example([("optimizer", "null")]).via("found by this round: a ValueError from Hydra's defaults list")
@example([("debug", "null")]).via("Hydra refuses null for a group whose default is null too")
def test_any_overrides_compose_into_a_valid_config_or_fail_with_one_clear_error(overrides):
    typed = [f"{key}={value}" for key, value in overrides]
    with initialize_config_module("imdb_exp.conf", version_base="1.3"):
        try:
            cli.check_group_choices(typed)  # what the command checks before Hydra composes
            schema.validate(compose("config", typed))
        except (UserError, HydraException, OmegaConfBaseException) as err:
            assert str(err).strip() and "Traceback" not in str(err)


@pytest.fixture(scope="module")
def small_archive(tmp_path_factory):
    return write_archive(tmp_path_factory.mktemp("faults") / "aclImdb_v1.tar.gz", {"train": 20, "test": 10})


ENCODED_TEXT = st.one_of(
    st.binary(max_size=200),  # any bytes at all: invalid UTF-8, NUL bytes
    st.tuples(ANY_TEXT, st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "latin-1", "cp1252", "shift_jis"])).map(
        lambda case: case[0].encode(case[1], errors="replace")
    ),
)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.lists(ENCODED_TEXT, min_size=1, max_size=4))
def test_review_files_in_any_encoding_load_as_reviews_with_their_labels(tmp_path_factory, members):
    folder = tmp_path_factory.mktemp("encodings")
    odd = {f"aclImdb/train/pos/{1000 + i}_9.txt": content for i, content in enumerate(members)}
    archive = write_archive(folder / "aclImdb_v1.tar.gz", {"train": 5, "test": 5}, extra=odd)
    loaded = load_corpus(str(archive), folder / "cache")
    assert len(loaded.train) == 10 + len(members) and loaded.train.labels.sum() == 5 + len(members)
    assert (loaded.train.ids[loaded.train.offsets[:-1]] == START).all()


def test_an_archive_cut_at_any_of_40_random_offsets_loads_whole_or_fails_in_one_line(tmp_path, small_archive):
    content = small_archive.read_bytes()
    whole = load_corpus(str(small_archive), tmp_path / "whole-cache")
    failures = 0
    for case, offset in enumerate(sorted(random.Random(36).sample(range(len(content)), 40))):
        cut = tmp_path / f"cut-{case}.tar.gz"
        cut.write_bytes(content[:offset])
        try:
            loaded = load_corpus(str(cut), tmp_path / "cache")
        except DataError as err:
            failures += 1
            assert "\n" not in str(err) and str(cut) in str(err)
        else:  # only a cut in the archive's end padding leaves every review
            assert loaded.vocabulary == whole.vocabulary
    assert failures >= 30  # nearly every cut loses reviews, and says so


def test_cached_and_checkpointed_files_with_random_bytes_flipped_are_never_trusted(tmp_path, caplog):
    rng = np.random.default_rng(36)
    arrays = {"ids": rng.integers(0, 1000, 5000).astype(np.int32), "history": rng.random(40)}
    good = tmp_path / "good.npz"
    checked_npz.write(good, arrays, 1)
    content = good.read_bytes()
    trusted_damage = 0
    for case in range(60):
        damaged = bytearray(content)
        for position in rng.choice(len(content), size=int(rng.integers(1, 8)), replace=False):
            damaged[position] ^= int(rng.integers(1, 256))
        path = tmp_path / f"damaged-{case}.npz"
        path.write_bytes(bytes(damaged))
        read = checked_npz.read(path, 1, instead="starting over")
        if read is not None:  # a flip in bytes the arrays do not depend on (zip metadata) is harmless
            trusted_damage += not all(np.array_equal(read[k], arrays[k]) for k in arrays)
    assert trusted_damage == 0


def test_a_corpus_cache_with_flipped_bytes_is_rebuilt_to_the_same_corpus(tmp_path, small_archive):
    cache = tmp_path / "cache"
    first = load_corpus(str(small_archive), cache)
    (cached,) = cache.glob("corpus-*.npz")
    damaged = bytearray(cached.read_bytes())
    for position in random.Random(36).sample(range(len(damaged)), 16):
        damaged[position] ^= 0xFF
    cached.write_bytes(bytes(damaged))
    again = load_corpus(str(small_archive), cache)
    assert again.vocabulary == first.vocabulary and np.array_equal(again.train.ids, first.train.ids)
    with tarfile.open(small_archive):  # the archive itself was never touched
        pass
