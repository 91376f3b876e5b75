"""One background thread that writes what a finished run still has to record (figures, reports, the
logged model) while the next sweep job trains, and then ends the run.

The run stays RUNNING until its last record is in the store: a FINISHED run always has all of them,
and a process killed before that leaves the run RUNNING, as any run cut off (its checkpoint is kept
until the records are written). Before the process exits, and before a sweep writes its table,
everything handed over is waited for.

The thread writes only while a job trains (``while_training``) or while the records are waited for:
drawing figures and logging the model is Python work that holds the interpreter's lock, and during
the next job's set-up (Hydra's config, the run's start, the model's building: Python too) the two
threads took turns at it. During a fit the main thread mostly waits on the backend, which runs
without that lock.
"""

import atexit
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager

# Held while a job seeds the random generators and builds its model, and while a logged model is
# loaded (MLflow loads each logged model to check it answers its input example, here on the background
# thread): constructing Keras layers draws seeds from Python's global random state, and a draw by the
# other thread in between would change the job's initial weights.
model_seeding = threading.Lock()

_worker: ThreadPoolExecutor | None = None
_pending: list[Future] = []
_may_write = threading.Event()


def hand_over(records: Callable[[], None]) -> Future:
    """``records`` runs after everything handed over before it, on the one background thread, once
    a job trains or the records are waited for."""
    global _worker
    if _worker is None:
        _worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="imdb-exp-records")

    def when_let() -> None:
        _may_write.wait()
        records()

    future = _worker.submit(when_let)
    _pending.append(future)
    return future


@contextmanager
def while_training() -> Iterator[None]:
    """The records handed over start while the block (a job's fit) runs; one started goes on to its end."""
    _may_write.set()
    try:
        yield
    finally:
        _may_write.clear()


def wait() -> None:
    """Returns once everything handed over has been written or has failed (each failure already
    marked its run FAILED and was logged; the sweep's table reports it)."""
    _may_write.set()
    while _pending:
        _pending[0].exception()  # a signal meanwhile leaves it here, to be waited for again
        _pending.pop(0)


atexit.register(wait)
