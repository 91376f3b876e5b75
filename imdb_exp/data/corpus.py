"""Raw aclImdb archive -> tokenized corpus in the keras.datasets.imdb encoding, cached on disk.

Encoding: 0 pads, 1 starts a review, 2 stands for a word outside the vocabulary, and the word of
frequency rank r (1 = most frequent, ranks counted on the training split only) is r + 3. The
corpus keeps the whole vocabulary; cutting to ``num_words`` happens later, so one cache serves
every vocabulary size.

The cache (checked_npz: no pickle, a checksum, written atomically) is named by the archive's SHA-256
and the tokenizer version: a damaged or stale file is rebuilt, never trusted.
"""

import collections
import dataclasses
import functools
import hashlib
import itertools
import logging
import os
import re
import tarfile
import tempfile
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from imdb_exp.errors import UserError
from imdb_exp.runtime import checked_npz
from imdb_exp.runtime.paths import home

log = logging.getLogger(__name__)

ARCHIVE_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
ARCHIVE_MD5 = "7c2ac02c03563afcf9b574c7e56c153a"
START, OOV, INDEX_FROM = 1, 2, 3  # the word of rank r (from 1) has id r + INDEX_FROM, as in Keras
TOKENIZER_VERSION = 1  # bump when tokenize() changes: old caches then stop matching
CACHE_FORMAT = 2  # 2: the unlabeled train/unsup reviews too

_REVIEW = re.compile(r"^(?:\./)?aclImdb/(train|test)/(pos|neg|unsup)/(\d+)_(\d+)\.txt$")
_SPLIT_FOLDERS = [(split, polarity) for split in ("train", "test") for polarity in ("pos", "neg")]
# The original archive's 50,000 reviews without a label: optional (a test/unsup is no part of it).
_UNLABELED_FOLDER = ("train", "unsup")
# The punctuation keras' text tokenizer drops; the apostrophe stays, so "don't" is one word.
_PUNCTUATION = str.maketrans({c: " " for c in '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'})


SPLITS = ("train", "test", "unsup")


class DataError(UserError):
    pass


def tokenize(text: str) -> list[str]:
    # "<br />" is the reviews' HTML line break, markup rather than a word.
    return text.replace("<br />", " ").lower().translate(_PUNCTUATION).split()


def word_index(vocabulary: list[str]) -> dict[str, int]:
    return {word: rank + INDEX_FROM for rank, word in enumerate(vocabulary, start=1)}


def encode_text(text: str, index: dict[str, int]) -> list[int]:
    return [START, *(index.get(word, OOV) for word in tokenize(text))]


@dataclass
class Reviews:
    """Reviews as one flat id array; review i is ids[offsets[i]:offsets[i + 1]]."""

    ids: np.ndarray  # int32, each review starting with START
    offsets: np.ndarray  # int64, len(labels) + 1
    labels: np.ndarray  # int8, 1 = positive
    texts: np.ndarray | None = None  # each review's raw text (object array of str), where data.encoding=text

    def __len__(self) -> int:
        return len(self.labels)

    @classmethod
    def from_lists(cls, sequences: list[list[int]], labels, texts: list[str] | None = None) -> "Reviews":
        lengths = np.fromiter((len(s) for s in sequences), np.int64, len(sequences))
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        ids = np.fromiter((i for s in sequences for i in s), np.int32, int(offsets[-1]))
        return cls(ids, offsets, np.asarray(labels, np.int8), None if texts is None else np.array(texts, object))


@dataclass
class Corpus:
    train: Reviews
    test: Reviews
    vocabulary: list[str]  # vocabulary[r - 1] is the word of rank r, whose id is r + INDEX_FROM
    unsup: Reviews = dataclasses.field(default_factory=lambda: Reviews.from_lists([], []))  # labels all 0
    archive: str = ""  # where it was read from, and that file's SHA-256: what a run's datasets name
    archive_sha256: str = ""

    @functools.cached_property  # the sweep jobs of one process share the corpus and log the same text
    def vocabulary_tsv(self) -> str:
        """Every id with its word, one "id<TAB>word" line each under a header line (which the UI's table
        preview takes for column names): enough to decode any logged review."""
        head = ["id\tword", "0\t<pad>", f"{START}\t<start>", f"{OOV}\t<oov>"]
        return "\n".join(head + [f"{rank + INDEX_FROM}\t{w}" for rank, w in enumerate(self.vocabulary, 1)]) + "\n"

    def decode(self, ids) -> str:
        words = {START: "<start>", OOV: "<oov>"}
        return " ".join(
            self.vocabulary[i - INDEX_FROM - 1] if i > INDEX_FROM else words.get(i, "<pad>")
            for i in map(int, ids)
            if i != 0
        )


def default_cache_dir() -> Path:
    return home() / "cache"


def load_corpus(archive: str | None, cache_dir: Path) -> Corpus:
    """The tokenized corpus of ``archive`` (downloaded once when None), from cache when valid."""
    path = review_source(archive) if archive else fetch_archive(cache_dir)
    digest = _folder_digest(path, cache_dir) if path.is_dir() else _file_digest(path, "sha256")
    cache = cache_dir / f"corpus-{digest[:16]}-tok{TOKENIZER_VERSION}.npz"
    corpus = _read_cache(cache)
    if corpus is None:
        corpus = build_corpus(path)
        _write_cache(cache, corpus)
    corpus.archive, corpus.archive_sha256 = str(path.resolve()), digest
    return corpus


def review_source(archive: str) -> Path:
    """``data.archive`` as the archive file, or the extracted aclImdb folder (given as itself or as the
    folder holding it); anything else is refused in one line saying what is accepted."""
    path = Path(archive).expanduser()
    if path.is_file():
        try:
            with tarfile.open(path, "r:*") as tar:
                tar.next()  # a file that is no tar archive at all is refused here, before a run opens
        except (tarfile.TarError, EOFError, OSError) as err:
            raise _unreadable(path, err) from None
        return path
    if not path.exists():
        raise DataError(f"data.archive={archive} does not exist")
    for folder in (path, path / "aclImdb"):
        if all((folder / split / polarity).is_dir() for split, polarity in _SPLIT_FOLDERS):
            return folder
    raise DataError(
        f"data.archive={archive} is a folder without the reviews' train/pos, train/neg, test/pos and test/neg "
        "folders; give the aclImdb_v1.tar.gz archive or the aclImdb folder extracted from it"
    )


def fingerprint(source: Path) -> tuple:
    """What changes when ``source``'s reviews change, cheap enough for every job: a file's size and
    modification time; for a folder, a digest of each review file's name, size, inode, modification
    and change times (the change time moves with any write, whatever a copy sets the mtime to)."""
    if source.is_file():
        stat = source.stat()
        return stat.st_size, stat.st_mtime_ns
    listing = hashlib.sha256()
    with _readable(source):
        for name, entry in _review_paths(source):
            stat = entry.stat()
            listing.update(f"{name}\0{stat.st_size}\0{stat.st_ino}\0{stat.st_mtime_ns}\0{stat.st_ctime_ns}\0".encode())
    return (listing.hexdigest(),)


def fetch_archive(cache_dir: Path, url: str = ARCHIVE_URL, md5: str = ARCHIVE_MD5) -> Path:
    """The original archive, downloaded on first use and kept only if its MD5 matches."""
    target = cache_dir / Path(url).name
    if target.is_file():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    log.info("downloading %s", url)
    with tempfile.NamedTemporaryFile(dir=cache_dir, suffix=".part", delete=False) as part:
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                size, done, shown = int(response.headers.get("Content-Length") or 0), 0, 0
                while chunk := response.read(1 << 20):
                    part.write(chunk)
                    done += len(chunk)
                    if size and done * 10 // size > shown:  # a line every tenth: readable in logs too
                        shown = done * 10 // size
                        log.info("downloaded %.1f of %.1f MB", done / 2**20, size / 2**20)
            part.close()
            got = _file_digest(Path(part.name), "md5")
            if got != md5:
                raise DataError(f"download of {url} has MD5 {got}, expected {md5}; try again later")
            os.replace(part.name, target)
        except OSError as err:
            raise DataError(f"cannot download {url} ({err}); pass a local copy as data.archive=PATH") from None
        finally:
            Path(part.name).unlink(missing_ok=True)
    return target


def build_corpus(archive: Path) -> Corpus:
    """Read every review of the archive and encode it; the slow path the cache exists for."""
    texts = _read_reviews(archive)
    counts = collections.Counter()
    for _, text in texts["train"]:  # the labeled ones: ranks as keras.datasets.imdb has them
        counts.update(tokenize(text))
    # Ties in frequency are broken alphabetically so that the same archive gives the same ids.
    vocabulary = sorted(counts, key=lambda word: (-counts[word], word))
    index = word_index(vocabulary)
    splits = {
        split: Reviews.from_lists([encode_text(text, index) for _, text in reviews], [label for label, _ in reviews])
        for split, reviews in texts.items()
    }
    return Corpus(splits["train"], splits["test"], vocabulary, splits["unsup"])


def with_texts(corpus: Corpus, cache_dir: Path) -> Corpus:
    """``corpus`` with each review's raw text beside its ids (data.encoding=text: a model with its own
    tokenizer reads the text). Read from the archive once, then from a cache of its own: the corpus's
    cache stays small for the encodings that read ids only."""
    cache = cache_dir / f"texts-{corpus.archive_sha256[:16]}.npz"
    arrays = checked_npz.read(cache, CACHE_FORMAT, instead="reading the archive again")
    if arrays is None:
        arrays = {}
        for split, reviews in _read_reviews(Path(corpus.archive)).items():
            if split == "unsup":  # no model that reads raw text learns from unlabeled text
                continue
            encoded = [text.encode("utf-8") for _, text in reviews]
            offsets = np.concatenate([[0], np.cumsum([len(b) for b in encoded])])
            arrays |= {f"{split}_utf8": np.frombuffer(b"".join(encoded), np.uint8), f"{split}_offsets": offsets}
        checked_npz.write(cache, arrays, CACHE_FORMAT)

    def texts(split: str) -> np.ndarray:
        blob, offsets = arrays[f"{split}_utf8"].tobytes(), arrays[f"{split}_offsets"]
        return np.array([blob[a:b].decode("utf-8") for a, b in itertools.pairwise(offsets)], object)

    train, test = (dataclasses.replace(getattr(corpus, s), texts=texts(s)) for s in ("train", "test"))
    return dataclasses.replace(corpus, train=train, test=test)


def _escapes(member: tarfile.TarInfo) -> bool:
    """A member that extraction would write outside its directory: absolute, "..", or such a link."""
    paths = [member.name] + ([member.linkname] if member.issym() or member.islnk() else [])
    return any(p.startswith("/") or ".." in PurePosixPath(p).parts for p in paths)


def _read_reviews(source: Path) -> dict[str, list[tuple[int, str]]]:
    """(label, text) per split (train, test, and unsup: train/unsup, label 0, empty where the archive has
    none), in a fixed order (label, then review id), whatever the tar order, from the archive or the
    extracted folder alike."""
    found: dict[str, list[tuple[int, int, str]]] = {"train": [], "test": [], "unsup": []}
    undecodable = empty = 0
    try:
        for name, content in _review_files(source):
            text = content.decode("utf-8", errors="replace")
            undecodable += "\ufffd" in text
            empty += not text.strip()
            split, polarity, review_id, _ = _REVIEW.match(name).groups()
            found["unsup" if polarity == "unsup" else split].append((polarity == "pos", int(review_id), text))
    except (tarfile.TarError, EOFError, OSError) as err:
        raise _unreadable(source, err) from None
    for split in ("train", "test"):
        if not found[split]:
            raise DataError(f"{source} has no aclImdb/{split}/{{pos,neg}}/*.txt reviews; is it the IMDB archive?")
    if undecodable or empty:
        log.warning("%d reviews had bytes that are not UTF-8 (replaced), %d reviews were empty", undecodable, empty)
    return {split: [(int(pos), text) for pos, _, text in sorted(reviews)] for split, reviews in found.items()}


def _unreadable(source: Path, err: Exception) -> DataError:
    kind = "folder" if source.is_dir() else "tar archive"
    why = " ".join(str(err).split())  # tarfile's message for a cut archive runs over several lines
    return DataError(f"{source} is not a readable {kind} ({why})")


def _review_files(source: Path) -> Iterator[tuple[str, bytes]]:
    """Each review's name as the archive has it (aclImdb/train/pos/ID_RATING.txt) and its bytes.

    An archive's members are read in memory, never extracted; one with escaping members is refused
    all the same, since it is not the IMDB archive and may have been made to do harm.
    """
    if source.is_dir():
        for name, entry in _review_paths(source):
            yield name, Path(entry.path).read_bytes()
        return
    with tarfile.open(source, "r:*") as tar:
        for member in tar:
            if _escapes(member):
                raise DataError(f"{source} has a member that escapes the archive ({member.name!r}); refused")
            if _is_review(member.name) and member.isfile():
                yield member.name, tar.extractfile(member).read()


def _review_paths(folder: Path) -> list[tuple[str, os.DirEntry]]:
    """The review files of an extracted aclImdb folder, each as its name in the archive and its entry
    (whose stat is one call), in a fixed order; anything else left out, and train/unsup where it is absent."""
    found = []
    for split, polarity in [*_SPLIT_FOLDERS, _UNLABELED_FOLDER]:
        if (split, polarity) == _UNLABELED_FOLDER and not (folder / split / polarity).is_dir():
            continue
        with os.scandir(folder / split / polarity) as entries:
            named = sorted((f"aclImdb/{split}/{polarity}/{entry.name}", entry) for entry in entries)
        found += [(name, entry) for name, entry in named if _is_review(name)]
    return found


def _is_review(name: str) -> bool:
    match = _REVIEW.match(name)
    return bool(match) and (match[2] != "unsup" or match[1] == "train")


@contextmanager
def _readable(folder: Path) -> Iterator[None]:
    """A folder that cannot be listed or read is said in one line, not as an OSError's traceback."""
    try:
        yield
    except OSError as err:
        raise DataError(f"{folder} is not a readable folder ({err})") from None


def _folder_digest(folder: Path, cache_dir: Path) -> str:
    """SHA-256 of the review files' names and contents: like the archive's digest, it names the cache
    and the run's dataset, and any edit, added or removed review changes it. Reading 50,000 files
    takes seconds, so it is kept in the cache under the folder's fingerprint (each file's name, size,
    inode and times), which any such change changes too."""
    (listing,) = fingerprint(folder)
    known = cache_dir / f"folder-{hashlib.sha256(f'{folder.resolve()}{listing}'.encode()).hexdigest()[:16]}.sha256"
    if known.is_file():
        return known.read_text()
    digest = hashlib.sha256()
    with _readable(folder):
        for name, entry in _review_paths(folder):
            digest.update(name.removeprefix("aclImdb/").encode() + b"\0" + Path(entry.path).read_bytes() + b"\0")
    cache_dir.mkdir(parents=True, exist_ok=True)
    written = known.with_name(f"{known.name}.{os.getpid()}")
    written.write_text(digest.hexdigest())
    os.replace(written, known)  # whole or absent, whoever reads it meanwhile
    return digest.hexdigest()


def _read_cache(path: Path) -> Corpus | None:
    arrays = checked_npz.read(path, CACHE_FORMAT, instead="rebuilding it")
    if arrays is None:
        return None
    words = checked_npz.array_text(arrays["vocabulary"]).split("\n")
    train, test, unsup = (Reviews(arrays[f"{s}_ids"], arrays[f"{s}_offsets"], arrays[f"{s}_labels"]) for s in SPLITS)
    return Corpus(train, test, words, unsup)


def _write_cache(path: Path, corpus: Corpus) -> None:
    arrays = {"vocabulary": checked_npz.text_array("\n".join(corpus.vocabulary))}
    for split in SPLITS:
        reviews = getattr(corpus, split)
        arrays |= {f"{split}_ids": reviews.ids, f"{split}_offsets": reviews.offsets, f"{split}_labels": reviews.labels}
    checked_npz.write(path, arrays, CACHE_FORMAT)


def _file_digest(path: Path, algorithm: str) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, algorithm).hexdigest()
