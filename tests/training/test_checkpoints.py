"""A run's checkpoint: restored exactly, refused when damaged or another model's, and locked while live."""

import keras
import numpy as np
import pytest

from imdb_exp.config.schema import TrainerConfig
from imdb_exp.training import checkpoints, fitting
from tests.support.toy_model import noisy_dataset, small_model


@pytest.mark.slow
def test_a_checkpoint_restores_weights_optimizer_and_dropout_state_so_training_continues_identically(isolated_home):
    dataset = noisy_dataset()
    trainer = TrainerConfig(epochs=6, batch_size=32)
    straight = small_model()
    fitting.fit(straight, dataset, trainer, checkpoints.Progress(), [], [], verbose=0)

    first = small_model()
    three = TrainerConfig(epochs=3, batch_size=32)
    progress = fitting.fit(first, dataset, three, checkpoints.Progress(), [], [], verbose=0)
    checkpoints.save("run-a", first, progress)
    second = small_model(seed=99)  # other initial weights and dropout state: all of it must come from the file
    restored = checkpoints.restore("run-a", second)
    assert restored.to_json() == progress.to_json()
    fitting.fit(second, dataset, trainer, restored, [], [], verbose=0)
    for a, b in zip(straight.get_weights(), second.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_damaged_checkpoint_is_not_used_and_one_for_another_model_is_refused(isolated_home, caplog):
    checkpoints.save("run-b", small_model(), checkpoints.Progress(epochs_done=1))
    data = bytearray(checkpoints.path("run-b").read_bytes())
    data[len(data) // 2] ^= 0xFF
    checkpoints.path("run-b").write_bytes(bytes(data))
    assert checkpoints.restore("run-b", small_model()) is None
    assert "the run cannot continue from it" in caplog.text

    checkpoints.save("run-c", small_model(), checkpoints.Progress(epochs_done=1))
    other = keras.Sequential([keras.Input((20,)), keras.layers.Dense(3), keras.layers.Dense(1)])
    other.compile("adam", "mse")
    with pytest.raises(checkpoints.CheckpointError, match="does not fit this model"):
        checkpoints.restore("run-c", other)


def test_the_lock_tells_a_live_run_from_a_stale_one(isolated_home):
    assert not checkpoints.is_live("run-d")
    let_go = checkpoints.hold("run-d")
    assert checkpoints.is_live("run-d")
    with pytest.raises(checkpoints.CheckpointError, match="another live process"):
        checkpoints.hold("run-d")
    let_go()
    assert not checkpoints.is_live("run-d")
    assert not list(checkpoints.directory().iterdir())  # nothing to continue from: no lock file left either
