"""A small Keras model and a noisy in-memory dataset it overfits."""

import keras
import numpy as np

from imdb_exp.data.splits import Dataset, Split


def small_model(seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((20,)),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dropout(0.2),
            keras.layers.Dense(1),
        ]
    )
    model.compile(keras.optimizers.Adam(0.01), keras.losses.BinaryCrossentropy(from_logits=True))
    return model


def noisy_dataset() -> Dataset:
    """Labels mostly noise: a wide model learns the training rows by heart and the validation loss turns up."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 20)).astype("float32")
    y = ((x[:, 0] + rng.normal(scale=2.0, size=400)) > 0).astype("float32")
    return Dataset(Split(x[:300], y[:300]), Split(x[300:], y[300:]), Split(x[300:], y[300:]), corpus=None)
