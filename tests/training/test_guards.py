"""The guards in a fit: a non-finite loss stops it, and a signal waits for the end of its batch."""

import os
import signal

import numpy as np
import pytest

from imdb_exp.runtime.interrupts import Interrupted, Interrupts
from imdb_exp.training.guards import InterruptAtBatchEnd, NonFiniteLoss, StopOnNonFiniteLoss


def test_non_finite_loss_stops_training():
    guard = StopOnNonFiniteLoss()
    guard.on_epoch_begin(2)
    guard.on_train_batch_end(0, {"loss": 0.5})
    with pytest.raises(NonFiniteLoss, match="loss became nan in epoch 3, batch 8"):
        guard.on_train_batch_end(7, {"loss": float("nan")})


def test_the_guards_leave_keras_free_to_check_batches_off_the_main_thread(monkeypatch):
    # On JAX and PyTorch, Keras runs async-safe batch-end callbacks on a worker thread; a guard's
    # exception must still reach the training loop, at the next batch end or the epoch's end.
    import keras
    from keras.src import backend

    monkeypatch.setattr(backend, "IS_THREAD_SAFE", True)
    guards = keras.callbacks.CallbackList([StopOnNonFiniteLoss(), InterruptAtBatchEnd(Interrupts())])
    assert guards._async_train and guards._async_test and guards._async_predict
    guards.on_train_begin()
    guards.on_epoch_begin(0)
    guards.on_train_batch_end(0, {"loss": float("nan")})
    with pytest.raises(NonFiniteLoss, match="loss became nan in epoch 1, batch 1"):
        guards.on_epoch_end(0, {})


def test_inside_keras_a_signal_waits_for_the_end_of_its_batch():
    import keras

    batches_ended = []

    class SignalInThirdBatch(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if batch == 2:
                os.kill(os.getpid(), signal.SIGTERM)  # SIGINT may be ignored here, as under nohup

        def on_train_batch_end(self, batch, logs=None):
            batches_ended.append(batch)

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile("rmsprop", "binary_crossentropy")
    x, y = np.ones((64, 4), "float32"), np.ones(64, "float32")
    with Interrupts().handled() as interrupts, pytest.raises(Interrupted) as raised, interrupts.deferred():
        callbacks = [SignalInThirdBatch(), InterruptAtBatchEnd(interrupts)]
        model.fit(x, y, batch_size=8, epochs=3, callbacks=callbacks, verbose=0)
    assert raised.value.signal == signal.SIGTERM
    assert batches_ended == [0, 1, 2]
