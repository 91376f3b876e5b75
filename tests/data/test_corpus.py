"""The corpus: tokenizing, Keras' imdb ids, the cache, the download, and archives or caches that are bad."""

import hashlib
import io
import logging
import os
import subprocess
import sys
import tarfile

import numpy as np
import pytest

from imdb_exp.config.schema import DataConfig
from imdb_exp.data import corpus, splits
from imdb_exp.data.corpus import OOV, START, DataError, build_corpus, fetch_archive, load_corpus, tokenize
from tests.support.archives import write_archive


def test_tokenize_drops_markup_and_punctuation_but_keeps_apostrophes():
    assert tokenize("Don't miss it!<br /><br />A GREAT film, really.") == [
        "don't",
        "miss",
        "it",
        "a",
        "great",
        "film",
        "really",
    ]


def test_ids_follow_keras_imdb_encoding(tmp_path):
    reviews = {
        "aclImdb/train/pos/0_9.txt": b"good good good film",
        "aclImdb/train/neg/0_2.txt": b"bad film good",
        "aclImdb/test/pos/0_8.txt": b"good unseen",
        "aclImdb/test/neg/0_1.txt": b"bad",
    }
    built = build_corpus(write_archive(tmp_path / "a.tar.gz", {}, extra=reviews))
    # train counts: good 4, film 2, bad 1 -> ranks 1, 2, 3 -> ids 4, 5, 6; a test-only word is OOV.
    assert built.vocabulary == ["good", "film", "bad"]
    train = [
        built.train.ids[a:b].tolist() for a, b in zip(built.train.offsets[:-1], built.train.offsets[1:], strict=True)
    ]
    assert train == [[START, 6, 5, 4], [START, 4, 4, 4, 5]]  # sorted by label: negative first
    assert built.train.labels.tolist() == [0, 1]
    test = [built.test.ids[a:b].tolist() for a, b in zip(built.test.offsets[:-1], built.test.offsets[1:], strict=True)]
    assert test == [[START, 6], [START, 4, OOV]]


def test_decoding_round_trips_the_tokens(archive):
    built = build_corpus(archive)
    first = built.train.ids[built.train.offsets[0] : built.train.offsets[1]]
    text = corpus._read_reviews(archive)["train"][0][1]
    assert built.decode(first) == "<start> " + " ".join(tokenize(text))


def test_second_load_comes_from_the_cache(archive, tmp_path, monkeypatch):
    first = load_corpus(str(archive), tmp_path)
    monkeypatch.setattr(corpus, "build_corpus", lambda _: pytest.fail("cache was not used"))
    second = load_corpus(str(archive), tmp_path)
    assert second.vocabulary == first.vocabulary
    np.testing.assert_array_equal(second.train.ids, first.train.ids)
    np.testing.assert_array_equal(second.test.offsets, first.test.offsets)


def test_raw_texts_sit_beside_their_reviews_ids_and_come_from_a_cache_of_their_own(archive, tmp_path, monkeypatch):
    loaded = load_corpus(str(archive), tmp_path)
    with_texts = corpus.with_texts(loaded, tmp_path)
    index = corpus.word_index(loaded.vocabulary)
    for split in ("train", "test"):
        reviews = getattr(with_texts, split)
        assert len(reviews.texts) == len(reviews) and "<br />" in reviews.texts[0]  # raw, not tokenized
        for i in (0, len(reviews) // 2, len(reviews) - 1):  # each text is the review whose ids it sits beside
            ids = reviews.ids[reviews.offsets[i] : reviews.offsets[i + 1]]
            assert corpus.encode_text(reviews.texts[i], index) == ids.tolist()
    monkeypatch.setattr(corpus, "_read_reviews", lambda _: pytest.fail("the texts' cache was not used"))
    again = corpus.with_texts(loaded, tmp_path)
    assert again.test.texts.tolist() == with_texts.test.texts.tolist()


def test_damaged_cache_is_rebuilt_not_trusted(archive, tmp_path):
    expected = load_corpus(str(archive), tmp_path)
    (cache,) = tmp_path.glob("corpus-*.npz")
    data = bytearray(cache.read_bytes())
    data[len(data) // 2] ^= 0xFF
    cache.write_bytes(bytes(data))
    rebuilt = load_corpus(str(archive), tmp_path)
    np.testing.assert_array_equal(rebuilt.train.ids, expected.train.ids)
    assert corpus._read_cache(cache) is not None  # the rebuilt file is valid again


def test_missing_archive_and_non_tar_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_corpus(str(tmp_path / "nope.tar.gz"), tmp_path)
    (tmp_path / "x.tar.gz").write_bytes(b"not a tar at all")
    with pytest.raises(DataError, match="not a readable tar"):
        load_corpus(str(tmp_path / "x.tar.gz"), tmp_path)
    assert not list(tmp_path.glob("corpus-*"))
    with pytest.raises(DataError, match=r"x.tar.gz is not a readable tar archive \("):  # before a run opens
        splits.check_source(DataConfig(archive=str(tmp_path / "x.tar.gz")))


def test_download_keeps_the_file_only_when_its_md5_matches(archive, tmp_path, caplog, monkeypatch):
    url = archive.as_uri()
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    with pytest.raises(DataError, match="MD5"):
        fetch_archive(tmp_path, url=url, md5="0" * 32)
    assert list(tmp_path.iterdir()) == []  # no partial download left behind
    with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt):
        patch.setattr("imdb_exp.data.corpus._file_digest", lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
        fetch_archive(tmp_path, url=url, md5=md5)  # Ctrl-C once the bytes are in
    assert list(tmp_path.iterdir()) == []
    caplog.set_level("INFO", logger="imdb_exp.data.corpus")
    fetched = fetch_archive(tmp_path, url=url, md5=md5)  # and the next good download works
    assert fetched.read_bytes() == archive.read_bytes()
    size = f"{archive.stat().st_size / 2**20:.1f} MB"
    assert f"downloaded {size.split()[0]} of {size}" in caplog.text  # progress, up to the whole file
    with pytest.raises(DataError, match="cannot download"):
        fetch_archive(tmp_path / "offline", url=(tmp_path / "missing.tar.gz").as_uri(), md5=md5)


def tar_with(path, members: list[tarfile.TarInfo]):
    with tarfile.open(path, "w:gz") as tar:
        for info in members:
            data = b"x" if info.isfile() else None
            if data:
                info.size = 1
            tar.addfile(info, io.BytesIO(data) if data else None)
    return path


def link(name: str, target: str, kind=tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


@pytest.mark.parametrize(
    "member",
    [
        tarfile.TarInfo("aclImdb/../../escaped.txt"),
        tarfile.TarInfo("/tmp/absolute.txt"),
        link("aclImdb/train/pos/0_9.txt", "../../../etc/passwd"),
        link("aclImdb/train/pos/1_9.txt", "/etc/passwd", tarfile.LNKTYPE),
    ],
    ids=["dotdot", "absolute", "symlink", "hardlink"],
)
def test_archive_members_that_escape_are_refused_and_nothing_is_written(tmp_path, member):
    archive = tar_with(tmp_path / "evil.tar.gz", [tarfile.TarInfo("aclImdb/README"), member])
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="escapes the archive"):
        load_corpus(str(archive), cache)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.tar.gz"]


def test_a_tar_without_the_aclimdb_layout_is_named(tmp_path):
    archive = tar_with(tmp_path / "other.tar.gz", [tarfile.TarInfo("photos/cat.jpg")])
    with pytest.raises(DataError, match=r"has no aclImdb/train/\{pos,neg\}/\*.txt reviews"):
        load_corpus(str(archive), tmp_path / "cache")
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").iterdir())


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_truncated_or_altered_cache_is_rebuilt(archive, tmp_path, damage, caplog):
    expected = load_corpus(str(archive), tmp_path)
    (cache,) = tmp_path.glob("corpus-*.npz")
    data = cache.read_bytes()
    cache.write_bytes(data[: len(data) // 3] if damage == "truncate" else data[:-40] + bytes(40))
    with caplog.at_level(logging.WARNING):
        rebuilt = load_corpus(str(archive), tmp_path)
    assert "is not valid" in caplog.text
    np.testing.assert_array_equal(rebuilt.test.ids, expected.test.ids)
    assert corpus._read_cache(cache) is not None


def test_two_processes_building_one_cache_both_succeed_and_leave_one_valid_file(archive, tmp_path):
    script = (
        "import sys; from pathlib import Path; from imdb_exp.data.corpus import load_corpus; "
        "print(len(load_corpus(sys.argv[1], Path(sys.argv[2])).vocabulary))"
    )
    builders = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(archive), str(tmp_path / "cache")], stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [b.communicate(timeout=120)[0] for b in builders]
    assert [b.returncode for b in builders] == [0, 0] and outputs[0] == outputs[1]
    files = list((tmp_path / "cache").iterdir())
    assert len(files) == 1 and files[0].suffix == ".npz" and corpus._read_cache(files[0]) is not None


def test_invalid_utf8_and_empty_reviews_are_read_and_counted(tmp_path, caplog):
    extra = {"aclImdb/train/pos/900_9.txt": b"great \xff\xfe film", "aclImdb/train/neg/901_1.txt": b""}
    archive = write_archive(tmp_path / "a.tar.gz", {"train": 3, "test": 2}, extra=extra)
    with caplog.at_level(logging.WARNING):
        built = corpus.build_corpus(archive)
    assert len(built.train) == 8
    assert "1 reviews had bytes that are not UTF-8 (replaced), 1 reviews were empty" in caplog.text
    assert "great" in built.vocabulary and "film" in built.vocabulary


def test_the_extracted_folder_reads_as_the_archive_and_an_edited_review_rebuilds_its_cache(tmp_path):
    archive = write_archive(tmp_path / "aclImdb_v1.tar.gz", {"train": 20, "test": 10}, extra={
        "aclImdb/train/unsup/0_0.txt": b"an unlabelled review, left out",
        "aclImdb/README": b"not a review",
    })  # fmt: skip
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path / "extracted", filter="data")
    folder = tmp_path / "extracted" / "aclImdb"
    from_archive = load_corpus(str(archive), tmp_path / "cache")
    for given in (folder, folder.parent):  # the aclImdb folder, or the folder that holds it
        from_folder = load_corpus(str(given), tmp_path / "cache")
        assert from_folder.vocabulary == from_archive.vocabulary
        for split in ("train", "test"):
            a, b = getattr(from_archive, split), getattr(from_folder, split)
            assert np.array_equal(a.ids, b.ids) and np.array_equal(a.labels, b.labels)
        assert from_folder.archive == str(folder.resolve()) and len(from_folder.archive_sha256) == 64

    before = from_folder.archive_sha256
    review = next((folder / "train" / "pos").glob("*.txt"))
    review.write_text("zyzzyva " * 3)
    edited = load_corpus(str(folder), tmp_path / "cache")
    assert edited.archive_sha256 != before and "zyzzyva" in edited.vocabulary  # rebuilt, not the old cache

    stat = review.stat()  # the same size, the modification time put back (as cp -p or rsync -a would)
    review.write_text("quokkas " * 3)
    os.utime(review, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert "quokkas" in load_corpus(str(folder), tmp_path / "cache").vocabulary


def test_a_folder_of_another_shape_is_refused_in_one_line_saying_what_is_accepted(tmp_path):
    (tmp_path / "reviews" / "train").mkdir(parents=True)
    with pytest.raises(DataError, match=r"is a folder without the reviews' train/pos.*give the aclImdb_v1.tar.gz"):
        load_corpus(str(tmp_path / "reviews"), tmp_path / "cache")
    with pytest.raises(DataError, match=r"data.archive=\S+/nowhere does not exist$"):
        load_corpus(str(tmp_path / "nowhere"), tmp_path / "cache")
