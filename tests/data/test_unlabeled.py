"""Text without labels (data.unlabeled): the archive's train/unsup reviews and the test reviews' text."""

import tarfile

import numpy as np
import pytest

from imdb_exp.config.schema import DataConfig
from imdb_exp.data import splits
from imdb_exp.data.corpus import OOV, START, DataError, build_corpus, load_corpus
from tests.support.archives import write_archive

LABELED = {
    "aclImdb/train/pos/0_9.txt": b"good good good film",
    "aclImdb/train/neg/0_2.txt": b"bad film",
    "aclImdb/test/pos/0_8.txt": b"good",
    "aclImdb/test/neg/0_1.txt": b"bad",
}


def test_unsup_reviews_are_encoded_with_the_labeled_training_vocabulary_and_rank_no_word(tmp_path):
    unlabeled = {
        "aclImdb/train/unsup/1_0.txt": b"zebra zebra zebra zebra film",
        "aclImdb/train/unsup/0_0.txt": b"good zebra",
        "aclImdb/test/unsup/0_0.txt": b"good",  # no part of the archive's layout: left out
    }
    built = build_corpus(write_archive(tmp_path / "a.tar.gz", {}, extra=LABELED | unlabeled))
    # "zebra" is the most frequent word of all, but only in unlabeled text: ranks come from train/{pos,neg}.
    assert built.vocabulary == ["good", "film", "bad"]
    unsup = built.unsup
    rows = [unsup.ids[a:b].tolist() for a, b in zip(unsup.offsets[:-1], unsup.offsets[1:], strict=True)]
    assert rows == [[START, 4, OOV], [START, OOV, OOV, OOV, OOV, 5]]  # in review id order
    assert list(unsup.labels) == [0, 0]


def test_an_extracted_folder_and_its_archive_give_the_same_unlabeled_reviews(tmp_path):
    archive = write_archive(tmp_path / "a.tar.gz", {"train": 5, "test": 5}, unsup=7)
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path / "x", filter="data")
    from_archive, from_folder = (load_corpus(str(p), tmp_path / "cache") for p in (archive, tmp_path / "x"))
    assert len(from_folder.unsup) == 7
    np.testing.assert_array_equal(from_folder.unsup.ids, from_archive.unsup.ids)


def padded(archive, *unlabeled: str) -> DataConfig:
    return DataConfig(
        encoding="padded", archive=str(archive), num_words=50, maxlen=30, val_size=10, unlabeled=list(unlabeled)
    )


def test_unlabeled_inputs_are_the_unsup_reviews_then_the_test_reviews_text_encoded_as_the_splits(tmp_path):
    archive = write_archive(tmp_path / "a.tar.gz", {"train": 20, "test": 15}, unsup=12)
    dataset = splits.load_dataset(padded(archive, "unsup", "test"))
    assert dataset.unlabeled.shape == (12 + 30, 30)
    np.testing.assert_array_equal(dataset.unlabeled[12:], dataset.test.x)  # the text only: no label goes with it
    alone = splits.load_dataset(padded(archive, "unsup"))
    np.testing.assert_array_equal(alone.unlabeled, dataset.unlabeled[:12])
    assert splits.load_dataset(padded(archive)).unlabeled is None


def test_asking_for_unsup_reviews_of_an_archive_without_them_says_so(archive):
    with pytest.raises(DataError, match=r"has no aclImdb/train/unsup/\*.txt .*; drop unsup"):
        splits.load_dataset(padded(archive, "unsup"))


def test_an_extracted_folder_without_unsup_reviews_is_read_as_before(tmp_path, archive):
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path / "x", filter="data")
    corpus = load_corpus(str(tmp_path / "x"), tmp_path / "cache")
    assert len(corpus.unsup) == 0 and len(corpus.train) == 200
