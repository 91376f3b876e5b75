"""The baseline of scripts/benchmark.py: one classic IMDB experiment as a plain Keras script.

This is what the experiments look like without imdb-exp: the notebooks' code in one file, reading the
same archive with the same tokenization (the keras.datasets.imdb encoding, ranks counted on the
training reviews), the notebooks' float multi-hot matrices or pad_sequences, model.fit on in-memory
arrays. The validation split matches the runner's (10,000 reviews for dense, 5,000 for sequence
models), so that both do the same work per epoch.

    python scripts/plain_keras.py ARCHIVE --model dense|lstm|lstm_dropout|cnn_lstm [--epochs N]

The last line printed is JSON: data_prep_seconds, epoch_seconds, test_accuracy.
"""

import argparse
import collections
import json
import re
import tarfile
import time

import numpy as np

EXPERIMENTS = {  # the notebooks' settings
    "dense": dict(num_words=10_000, val=10_000, batch_size=512, epochs=4, optimizer="rmsprop"),
    "lstm": dict(num_words=5_000, maxlen=500, val=5_000, batch_size=64, epochs=3, optimizer="adam"),
    "lstm_dropout": dict(num_words=5_000, maxlen=500, val=5_000, batch_size=64, epochs=3, optimizer="adam"),
    "cnn_lstm": dict(num_words=5_000, maxlen=500, val=5_000, batch_size=64, epochs=3, optimizer="adam"),
}
REVIEW = re.compile(r"aclImdb/(train|test)/(pos|neg)/(\d+)_\d+\.txt$")
NOT_IN_WORDS = str.maketrans({c: " " for c in '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'})


def read_archive(path):
    reviews = {"train": [], "test": []}
    with tarfile.open(path) as tar:
        for member in tar:
            found = REVIEW.search(member.name)
            if found:
                text = tar.extractfile(member).read().decode("utf-8", errors="replace")
                words = text.replace("<br />", " ").lower().translate(NOT_IN_WORDS).split()
                split, polarity, number = found.groups()
                reviews[split].append((polarity == "pos", int(number), words))
    for split in reviews:
        reviews[split].sort(key=lambda review: review[:2])
    return reviews


def encode(reviews, num_words):
    counts = collections.Counter(word for _, _, words in reviews["train"] for word in words)
    ranked = sorted(counts, key=lambda word: (-counts[word], word))
    ids = {word: rank + 3 for rank, word in enumerate(ranked[: num_words - 4], start=1)}
    encoded = {}
    for split, items in reviews.items():
        sequences = [[1] + [ids.get(word, 2) for word in words] for _, _, words in items]
        encoded[split] = sequences, np.array([positive for positive, _, _ in items], "float32")
    return encoded


def multi_hot(sequences, num_words):
    matrix = np.zeros((len(sequences), num_words))
    for row, sequence in enumerate(sequences):
        matrix[row, sequence] = 1.0
    return matrix


def build(name, num_words, keras):
    layers = keras.layers
    if name == "dense":
        return keras.Sequential(
            [
                keras.Input((num_words,)),
                layers.Dense(16, activation="relu"),
                layers.Dense(16, activation="relu"),
                layers.Dense(1, activation="sigmoid"),
            ]
        )
    front = [keras.Input((None,), dtype="int32"), layers.Embedding(num_words, 32)]
    if name == "cnn_lstm":
        front += [layers.Conv1D(32, 3, padding="same", activation="relu"), layers.MaxPooling1D(2)]
    dropout = 0.2 if name == "lstm_dropout" else 0.0
    return keras.Sequential(
        [*front, layers.LSTM(100, dropout=dropout, recurrent_dropout=dropout), layers.Dense(1, activation="sigmoid")]
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("archive")
    parser.add_argument("--model", choices=EXPERIMENTS, default="dense")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    settings = EXPERIMENTS[args.model]

    import keras

    keras.utils.set_random_seed(args.seed)
    started = time.perf_counter()
    encoded = encode(read_archive(args.archive), settings["num_words"])
    (train_sequences, y_train), (test_sequences, y_test) = encoded["train"], encoded["test"]
    # The archive is sorted by label: shuffle (seeded) so that the first reviews make a fair validation set.
    order = np.random.default_rng(args.seed).permutation(len(y_train))
    train_sequences, y_train = [train_sequences[i] for i in order], y_train[order]
    if args.model == "dense":
        x_train, x_test = (multi_hot(s, settings["num_words"]) for s in (train_sequences, test_sequences))
    else:
        x_train, x_test = (
            keras.utils.pad_sequences(s, maxlen=settings["maxlen"]) for s in (train_sequences, test_sequences)
        )
    data_prep_seconds = time.perf_counter() - started

    model = build(args.model, settings["num_words"], keras)
    model.compile(optimizer=settings["optimizer"], loss="binary_crossentropy", metrics=["accuracy"])
    begins, ends = [], []
    timer = keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda *_: begins.append(time.perf_counter()),
        on_epoch_end=lambda *_: ends.append(time.perf_counter()),
    )
    n_val = settings["val"]
    model.fit(
        x_train[n_val:],
        y_train[n_val:],
        validation_data=(x_train[:n_val], y_train[:n_val]),
        epochs=args.epochs or settings["epochs"],
        batch_size=settings["batch_size"],
        callbacks=[timer],
        verbose=2,
    )
    _, test_accuracy = model.evaluate(x_test, y_test, batch_size=settings["batch_size"], verbose=0)
    epoch_seconds = [end - begin for begin, end in zip(begins, ends, strict=True)]
    print(
        json.dumps(
            {"data_prep_seconds": data_prep_seconds, "epoch_seconds": epoch_seconds, "test_accuracy": test_accuracy}
        )
    )


if __name__ == "__main__":
    main()
