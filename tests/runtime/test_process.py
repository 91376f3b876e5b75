"""What the process does between jobs: the last job's garbage collected, what lives on frozen."""

import gc
import weakref

import keras
import numpy as np

from imdb_exp.runtime import process


def test_a_job_collects_the_last_jobs_garbage_and_freezes_what_lives_on():
    class Node:
        pass

    gc.freeze()  # what an earlier job left frozen
    cycle = Node()
    cycle.itself = cycle  # garbage only a collection frees, as a finished job's model is
    gone, kept = weakref.ref(cycle), Node()
    del cycle
    try:
        process.start_job(keras)
        assert gone() is None
        assert not any(o is kept for o in gc.get_objects())  # frozen: no longer walked
    finally:
        gc.unfreeze()
    assert any(o is kept for o in gc.get_objects())


def test_a_job_frees_the_traced_train_steps_of_the_models_before_it():
    """TensorFlow keeps every traced tf.custom_gradient (Keras's optimizer traces one per model) in a
    global registry with its whole graph: 4-5 MB a job in a 100-job sweep, until start_job let go."""
    from tensorflow.python.framework import ops

    def traced_gradients() -> int:
        return sum(name.startswith("CustomGradient-") for name in ops._gradient_registry._registry)

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile("rmsprop", "mse")
    model.fit(np.ones((8, 4)), np.ones(8), epochs=1, verbose=0)
    assert traced_gradients() > 0  # else TensorFlow no longer registers them, and this test says nothing
    trained = weakref.ref(model.train_function)
    del model
    try:
        process.start_job(keras)
        assert traced_gradients() == 0 and trained() is None
    finally:
        gc.unfreeze()
