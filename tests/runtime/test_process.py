"""What the process does between jobs: the last job's garbage collected, what lives on frozen."""

import gc
import weakref

import keras

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
