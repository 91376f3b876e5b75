"""One background thread that writes what a finished run still has to record (figures, reports, the
logged model) while the next sweep job trains, and then ends the run.

The run stays RUNNING until its last record is in the store: a FINISHED run always has all of them,
and a process killed before that leaves the run RUNNING, as any run cut off (its checkpoint is kept
until the records are written). Before a sweep writes its table, after a run of its own, and before
the command exits, everything handed over is waited for.

The thread writes only while a job trains (``while_training``) or while the records are waited for:
drawing figures and logging the model is Python work that holds the interpreter's lock, and would
take turns with the next job's set-up (Hydra's config, the run's start, the model's building), which
is Python too. During a fit the main thread mostly waits on the backend, which runs without that lock.
The process keeps one RecordsWriter (process.between_jobs.writer).
"""

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager


class RecordsWriter:
    def __init__(self) -> None:
        self.worker: ThreadPoolExecutor | None = None
        self.pending: list[tuple[str, Future]] = []  # (the run whose records they are, their writing)
        self.may_write = threading.Event()
        # Held while a job seeds the random generators and builds its model, and while the records
        # thread logs a model (MLflow loads it to check it answers its input example): constructing
        # Keras layers draws seeds from Python's global random state, and a draw by the other thread
        # in between would change the job's initial weights.
        self.model_seeding = threading.Lock()

    def hand_over(self, run_id: str, records: Callable[[], None]) -> Future:
        """``records`` (of run ``run_id``) runs after everything handed over before it, on the one
        background thread, once a job trains or the records are waited for."""
        if self.worker is None:
            self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="imdb-exp-records")

        def when_allowed() -> None:
            self.may_write.wait()
            records()

        future = self.worker.submit(when_allowed)
        self.pending.append((run_id, future))
        return future

    def writing(self, run_id: str) -> bool:
        """Whether records of run ``run_id`` were handed over and are not written yet: the run is RUNNING
        in the store meanwhile, its checkpoint still there, though nothing is left to train."""
        return any(of == run_id and not future.done() for of, future in self.pending)

    @contextmanager
    def while_training(self) -> Iterator[None]:
        """The records handed over start while the block (a job's fit) runs; one started goes on to its end."""
        self.may_write.set()
        try:
            yield
        finally:
            self.may_write.clear()

    def wait(self) -> None:
        """Returns once everything handed over has been written or has failed (each failure already
        marked its run FAILED and was logged; the sweep's table reports it)."""
        self.may_write.set()
        while self.pending:
            self.pending[0][1].exception()  # a signal meanwhile leaves it here, to be waited for again
            self.pending.pop(0)
