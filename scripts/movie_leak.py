"""How much a random validation sample shares with training: rare words of neighbouring reviews.

The archive keeps a movie's reviews (at most 30) under consecutive ids, and the test set's movies
are not in the training set. A validation set drawn review by review therefore holds reviews of
training movies, whose names and titles (rare words) a model of n-grams can learn. This measures
the overlap of rare words (ranks at or above --rare-from) between reviews i and i + 1 of each class
in id order, against random pairs of training reviews.

    python scripts/movie_leak.py ARCHIVE [--rare-from 20000] [--pairs 20000]
"""

import argparse

import numpy as np

from imdb_exp.data.corpus import INDEX_FROM, default_cache_dir, load_corpus


def rare_words(ids: np.ndarray, offsets: np.ndarray, rare_from: int) -> list[set[int]]:
    reviews = (ids[a:b] for a, b in zip(offsets[:-1], offsets[1:], strict=True))
    return [set(review[review >= rare_from + INDEX_FROM].tolist()) for review in reviews]


def jaccard(a: set[int], b: set[int]) -> float:
    return len(a & b) / len(a | b) if a or b else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("archive")
    parser.add_argument("--rare-from", type=int, default=20000)
    parser.add_argument("--pairs", type=int, default=20000)
    args = parser.parse_args()
    train = load_corpus(args.archive, default_cache_dir()).train
    words = rare_words(train.ids, train.offsets, args.rare_from)
    # The corpus keeps each class in id order: neighbours within a class are neighbours in the archive.
    same_class_next = [i for i in range(len(words) - 1) if train.labels[i] == train.labels[i + 1]]
    rng = np.random.default_rng(0)
    neighbours = [jaccard(words[i], words[i + 1]) for i in rng.choice(same_class_next, args.pairs)]
    random_pairs = [jaccard(words[i], words[j]) for i, j in rng.integers(0, len(words), (args.pairs, 2)) if i != j]
    print(f"rare words (rank >= {args.rare_from}), mean Jaccard overlap of {args.pairs} pairs:")
    print(f"  neighbouring reviews: {np.mean(neighbours):.5f}")
    print(f"  random pairs:         {np.mean(random_pairs):.5f}")
    print(f"  ratio:                {np.mean(neighbours) / np.mean(random_pairs):.1f}x")


if __name__ == "__main__":
    main()
