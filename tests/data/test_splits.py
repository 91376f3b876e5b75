"""A dataset from the corpus: the encodings, the validation split, movie blocks and folds, Keras' imdb.npz."""

import shutil

import keras
import numpy as np
import pytest
from keras.utils import pad_sequences

from imdb_exp.config.schema import DataConfig
from imdb_exp.data import splits
from imdb_exp.data.corpus import OOV, Reviews
from imdb_exp.errors import ConfigError
from imdb_exp.models.layers import UnpackBits
from tests.support.archives import write_archive

SEQUENCES = [[1, 5, 9, 12], [1, 4], [1, 7, 7, 30, 6, 5, 8]]


def test_multihot_sets_one_bit_per_distinct_kept_id_and_the_model_unpacks_them():
    packed = splits.encode_multihot(Reviews.from_lists(SEQUENCES, [1, 0, 1]), DataConfig(num_words=10))
    assert packed.dtype == np.uint8 and packed.shape == (3, 2)  # 10 bits per row, packed
    expected = np.zeros((3, 10), np.float32)
    for row, seq in enumerate(SEQUENCES):
        expected[row, [i if i < 10 else OOV for i in seq]] = 1
    unpacked = keras.ops.convert_to_numpy(UnpackBits(10)(packed))
    assert unpacked.dtype == np.float32
    np.testing.assert_array_equal(unpacked, expected)


def test_padded_matches_keras_pad_sequences():
    cfg = DataConfig(encoding="padded", num_words=10, maxlen=5)
    got = splits.encode_padded(Reviews.from_lists(SEQUENCES, [1, 0, 1]), cfg)
    cut = [[i if i < 10 else OOV for i in seq] for seq in SEQUENCES]
    np.testing.assert_array_equal(got, pad_sequences(cut, maxlen=5))


@pytest.mark.parametrize("val_size, expected", [(0, 0), (0.2, 40), (50, 50)])
def test_validation_split_is_a_seeded_partition_of_the_training_reviews(archive, val_size, expected):
    cfg = DataConfig(archive=str(archive), encoding="padded", val_size=val_size, num_words=100, maxlen=60)
    cfg.split_seed = 3
    first, again = splits.load_dataset(cfg), splits.load_dataset(cfg)
    assert len(first.train) == 200 - expected and (len(first.val) if first.val else 0) == expected
    np.testing.assert_array_equal(first.train.x, again.train.x)
    parts = [first.train.x] + ([first.val.x] if first.val else [])
    whole = splits.encode_padded(first.corpus.train, cfg)
    assert sorted(map(bytes, np.concatenate(parts))) == sorted(map(bytes, whole))
    if expected:
        cfg.split_seed = 4
        other = splits.load_dataset(cfg)
        assert sorted(map(bytes, other.val.x)) != sorted(map(bytes, first.val.x))


def test_a_process_reuses_its_dataset_until_the_config_or_the_archive_changes(archive, tmp_path):
    first = splits.load_dataset(DataConfig(archive=str(archive), num_words=100, val_size=50))
    assert splits.load_dataset(DataConfig(archive=str(archive), num_words=100, val_size=50)) is first  # equal config
    assert splits.load_dataset(DataConfig(archive=str(archive), num_words=120, val_size=50)) is not first

    rewritten = shutil.copy(archive, tmp_path / "rewritten.tar.gz")
    cfg = DataConfig(archive=str(rewritten), num_words=100, val_size=50)
    before = splits.load_dataset(cfg)
    write_archive(rewritten, {"train": 100, "test": 60}, seed=1)  # the same path, other reviews
    after = splits.load_dataset(cfg)
    assert after is not before and after.corpus.archive_sha256 != before.corpus.archive_sha256


def test_validation_as_large_as_training_is_refused(archive):
    with pytest.raises(ConfigError, match="leaves no training reviews"):
        splits.load_dataset(DataConfig(archive=str(archive), val_size=200))


def ragged(sequences: list[list[int]]) -> np.ndarray:
    """An object array of int lists, the layout of Keras' imdb.npz."""
    out = np.empty(len(sequences), dtype=object)
    out[:] = [list(s) for s in sequences]
    return out


def test_keras_source_reads_imdb_npz_from_keras_home(tmp_path, monkeypatch):
    # Keras checks the file against the real download's SHA-256; a synthetic file cannot match it.
    monkeypatch.setattr("keras.src.utils.file_utils.validate_file", lambda *args, **kwargs: True)
    # Keras reads KERAS_HOME once, when it is imported; this is what the variable sets.
    monkeypatch.setattr("keras.src.backend.config._KERAS_DIR", str(tmp_path))
    (tmp_path / "datasets").mkdir()
    # Raw imdb.npz stores word ranks without the start marker; load_data adds 1 and index_from.
    np.savez(
        tmp_path / "datasets" / "imdb.npz",
        x_train=ragged([[1, 2], [3, 40, 1]]),
        y_train=np.array([1, 0]),
        x_test=ragged([[2], [1, 1]]),
        y_test=np.array([0, 1]),
        allow_pickle=True,
    )
    dataset = splits.load_dataset(DataConfig(source="keras", encoding="padded", num_words=20, maxlen=4, val_size=0))
    assert dataset.corpus is None and dataset.val is None
    assert sorted(map(tuple, dataset.train.x.tolist())) == [(0, 1, 4, 5), (1, 6, OOV, 4)]
    assert sorted(dataset.test.y.tolist()) == [0.0, 1.0]


def test_holding_out_movies_takes_whole_blocks_of_consecutive_reviews():
    cfg = DataConfig(val_holdout="movies", split_seed=1)
    order = splits.holdout_order(cfg, 400)
    held_out = np.sort(order[:100])  # val_size 100: two whole blocks of 50 consecutive reviews
    blocks = np.unique(held_out // splits.REVIEWS_PER_BLOCK)
    assert len(blocks) == 2 and np.array_equal(
        held_out, np.concatenate([np.arange(b * 50, (b + 1) * 50) for b in blocks])
    )
    assert sorted(order.tolist()) == list(range(400))  # every review, once
    assert not np.array_equal(
        np.sort(splits.holdout_order(DataConfig(val_holdout="movies", split_seed=2), 400)[:100]), held_out
    )


def test_k_folds_hold_out_each_training_review_once_in_whole_movie_blocks(tmp_path):
    archive = write_archive(tmp_path / "a.tar.gz", {"train": 100, "test": 10})  # 200 training reviews: 4 blocks
    held_out = []
    for fold in range(4):
        dataset = splits.load_dataset(DataConfig(archive=str(archive), num_words=100, val_holdout="movies",
                                               folds=4, fold=fold))  # fmt: skip
        assert len(dataset.val) == 50 and len(dataset.train) == 150
        assert not set(dataset.val.rows) & set(dataset.train.rows)
        assert len(np.unique(dataset.val.rows // splits.REVIEWS_PER_BLOCK)) == 1  # one whole block of 50
        held_out.append(dataset.val.rows)
    assert sorted(np.concatenate(held_out).tolist()) == list(range(200))  # every review held out once
    for folds, fold, message in ((1, 0, "data.folds=1 must be >= 2"), (4, 4, "data.fold=4 must be in 0 .. "),
                                 (None, 1, "data.fold needs data.folds")):  # fmt: skip
        with pytest.raises(ConfigError, match=message):
            DataConfig(folds=folds, fold=fold)
