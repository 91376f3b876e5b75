"""The test and validation probabilities after a fit: those Keras's own predict gives, a signal taken
at a batch's end."""

import os
import signal

import keras
import numpy as np
import pytest

from imdb_exp.run import after_fit
from imdb_exp.runtime.interrupts import Interrupted, Interrupts


def small_model() -> keras.Model:
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4, activation="relu"), keras.layers.Dense(1)])
    model.compile("rmsprop", "binary_crossentropy")
    return model


@pytest.mark.parametrize("rows", [1, 16, 37])  # one short batch, whole batches, a short last batch
def test_the_probabilities_are_those_of_keras_predict(rows):
    model, x = small_model(), np.random.default_rng(0).normal(size=(rows, 6)).astype("float32")
    found = after_fit.predicted(model, x, batch_size=8, interrupts=Interrupts())
    assert found.shape == (rows,)
    np.testing.assert_array_equal(found, model.predict(x, batch_size=8, verbose=0).ravel())


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="the other backends predict with Keras's loop")
def test_a_signal_ends_the_predictions_at_the_end_of_its_batch(monkeypatch):
    model, x = small_model(), np.zeros((40, 6), "float32")
    batches = []

    def predict_on_batch(rows):
        batches.append(len(rows))
        if len(batches) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return np.zeros((len(rows), 1), "float32")

    monkeypatch.setattr(model, "predict_on_batch", predict_on_batch)
    with Interrupts().handled() as interrupts, pytest.raises(Interrupted) as raised:
        after_fit.predicted(model, x, batch_size=8, interrupts=interrupts)
    assert raised.value.signal == signal.SIGTERM
    assert batches == [8, 8]
