"""A data split as Keras batches, reshuffled every epoch with a seeded generator.

Only one batch of a multi-hot split is ever unpacked to float32 at a time.
"""

import math

import keras
import numpy as np

from imdb_exp.data import Split


class Batches(keras.utils.PyDataset):
    def __init__(self, split: Split, batch_size: int, shuffle_seed: int | None = None):
        super().__init__()
        self.split, self.batch_size = split, batch_size
        self.rng = None if shuffle_seed is None else np.random.default_rng(shuffle_seed)
        self.order = np.arange(len(split))
        self.on_epoch_end()

    def __len__(self) -> int:
        return math.ceil(len(self.split) / self.batch_size)

    def __getitem__(self, index: int):
        # Sorted: gathers in memory order are faster, and order within a batch does not change its gradient.
        rows = np.sort(self.order[index * self.batch_size : (index + 1) * self.batch_size])
        return self.split.x[rows], self.split.y[rows]

    def on_epoch_end(self) -> None:
        if self.rng is not None:
            self.rng.shuffle(self.order)
