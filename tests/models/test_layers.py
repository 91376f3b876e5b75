"""The models' own layers: multi-hot unpacking, n-gram bags and slots, Naive Bayes votes, hashed bigrams."""

import keras
import numpy as np
import pytest

from imdb_exp.data.corpus import OOV
from imdb_exp.models.layers import HashedBigrams, NbVote, NgramBag, NgramSlots


def test_ngram_bag_keeps_the_pairs_in_most_reviews_and_gives_each_review_its_distinct_features(tmp_path):
    padded = np.array([[0, 0, 1, 5, 6, 5, 6], [0, 1, 5, 6, 7, 8, OOV]], np.int32)
    model = keras.Sequential([keras.Input((7,), dtype="int32"), NgramBag(num_words=10, bigrams=2)])
    model.layers[0].adapt(padded)
    # (5, 6) is in both reviews; (6, 5), (6, 7) and (7, 8) in one each, the smallest key wins the tie;
    # pairs with padding, the start marker or OOV are never kept.
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model.layers[0].keys), [56, 65])
    model.save(tmp_path / "bag.keras")  # the table travels with the saved model
    for bag in (model, keras.saving.load_model(tmp_path / "bag.keras")):
        features = keras.ops.convert_to_numpy(bag(padded))
        assert features.shape == (2, 13)
        assert [sorted(row[row > 0]) for row in features] == [[1, 5, 6, 10, 11], [1, OOV, 5, 6, 7, 8, 10]]


def test_nb_ratios_count_the_reviews_of_each_class_that_contain_an_ngram():
    # Word 5 is in both positive reviews, word 6 in the negative one; 5-5 is a bigram of one review.
    padded = np.array([[0, 1, 5, 5], [1, 5, 7, 8], [1, 6, 7, 8]], np.int32)
    labels = np.array([1, 1, 0], np.float32)
    ngrams = NgramSlots(features=50, max_n=2)
    ngrams.build(padded.shape)
    ngrams.adapt(padded)
    slots = keras.ops.convert_to_numpy(ngrams(padded))
    vote = NbVote(features=50)
    vote.build(slots.shape)
    vote.adapt(slots, labels)
    keys = keras.ops.convert_to_numpy(ngrams.keys)
    ratios = keras.ops.convert_to_numpy(vote.ratios)

    def ratio(review: int, position: int, n: int) -> float:
        """The ratio of the n-gram ending at ``position`` of ``review``."""
        key = keras.ops.convert_to_numpy(ngrams.ngram_keys(padded[review : review + 1]))[0, (n - 1) * 4 + position]
        return float(ratios[1 + int(np.flatnonzero(keys == key)[0])])

    kept = int((keys != keys.max()).sum())  # 5, 6, 7, 8; 5-5, 5-7, 7-8, 6-7 (pairs with the start marker are none)
    assert kept == 8
    # Each review's slots are distinct: 5-5 and the second 5 of review 0 are one n-gram each.
    assert all(len(np.unique(row[row > 0])) == (row > 0).sum() for row in slots)
    # p = 1 + positive reviews with it, q = 1 + negative ones, each over its sum across the kept n-grams.
    p = np.array([3, 1, 2, 2, 2, 2, 2, 1], float)  # 5, 6, 7, 8, 5-5, 5-7, 7-8, 6-7
    q = np.array([1, 2, 2, 2, 1, 1, 2, 2], float)
    expected = np.log((p / p.sum()) / (q / q.sum()))
    assert ratio(0, 2, 1) == pytest.approx(expected[0])  # word 5
    assert ratio(2, 1, 1) == pytest.approx(expected[1])  # word 6
    assert ratio(1, 3, 2) == pytest.approx(expected[6])  # 7-8: in one review of each class
    assert ratio(0, 3, 2) == pytest.approx(expected[4])  # 5-5
    assert np.count_nonzero(ratios) == 8 and ratios[0] == 0  # unused slots vote nothing


def test_hashed_bigrams_give_each_word_pair_one_bucket_after_the_words_and_none_to_padding():
    layer = HashedBigrams(num_words=50, buckets=7)
    ids = np.array([[0, 0, 1, 10, 20, 10, 20], [1, 10, 20, 30, 10, 20, 49]], np.int32)
    out = keras.ops.convert_to_numpy(layer(ids))
    assert out.shape == (2, 13)
    np.testing.assert_array_equal(out[:, :7], ids)  # the words themselves come first
    pairs = out[:, 7:]
    assert (pairs[0, :2] == 0).all()  # pairs that hold padding
    assert ((pairs[0, 2:] >= 50) & (pairs[0, 2:] < 57)).all() and ((pairs[1] >= 50) & (pairs[1] < 57)).all()
    assert pairs[0, 3] == pairs[0, 5] == pairs[1, 1] == pairs[1, 4]  # (10, 20) wherever it occurs
    assert len(set(pairs[1].tolist())) > 1  # the pairs do not all fall into one bucket
    assert HashedBigrams.from_config(layer.get_config()).buckets == 7
