"""A synthetic archive in the real aclImdb layout, of reviews that plant sentiment words."""

import io
import tarfile
from pathlib import Path

import numpy as np

POSITIVE = ["great", "wonderful", "superb", "loved", "brilliant"]
NEGATIVE = ["awful", "boring", "terrible", "hated", "waste"]
NEUTRAL = ["the", "a", "movie", "film", "plot", "actor", "scene", "it", "was", "and", "of", "story", "i"]


def review_text(rng: np.random.Generator, positive: bool) -> str:
    words = list(rng.choice(NEUTRAL, size=rng.integers(15, 40)))
    words += list(rng.choice(POSITIVE if positive else NEGATIVE, size=3))
    rng.shuffle(words)
    return " ".join(words[:8]) + ". <br /><br />" + ", ".join(words[8:]).capitalize() + "!"


def write_archive(
    path: Path, per_class: dict[str, int], seed: int = 0, extra: dict[str, bytes] | None = None, unsup: int = 0
) -> Path:
    """A tar.gz laid out like aclImdb_v1.tar.gz: aclImdb/{train,test}/{pos,neg}/ID_RATING.txt, and
    ``unsup`` reviews without a label (half of each kind) as aclImdb/train/unsup/ID_0.txt."""
    rng = np.random.default_rng(seed)
    files = {"aclImdb/README": b"synthetic test archive\n"}
    for split, count in per_class.items():
        for polarity in ("pos", "neg"):
            for i in range(count):
                rating = rng.integers(7, 11) if polarity == "pos" else rng.integers(1, 5)
                files[f"aclImdb/{split}/{polarity}/{i}_{rating}.txt"] = review_text(rng, polarity == "pos").encode()
    for i in range(unsup):
        files[f"aclImdb/train/unsup/{i}_0.txt"] = review_text(rng, i % 2 == 0).encode()
    files |= extra or {}
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path
