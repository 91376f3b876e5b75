"""SIGINT and SIGTERM end a run KILLED: at once, or inside Keras at the end of the current batch.

Inside Keras the exception waits for a batch boundary: raised at an arbitrary point it can land in
TensorFlow's input pipeline or in a callback's MLflow write, which turn it into an ordinary error
(seen in CI: a Ctrl-C during training ended with exit status 1 instead of a KILLED run).
"""

import signal
from collections.abc import Iterator
from contextlib import contextmanager


class Interrupted(KeyboardInterrupt):
    def __init__(self, signum: int):
        self.signal = signal.Signals(signum)
        super().__init__(self.signal.name)


class Interrupts:
    def __init__(self) -> None:
        self.deferring = False
        self.pending: int | None = None

    def _receive(self, signum: int, frame) -> None:
        if self.deferring:
            self.pending = signum
        else:
            raise Interrupted(signum)

    @contextmanager
    def handled(self) -> Iterator["Interrupts"]:
        # A SIGINT ignored at start (a job started with `&` or nohup) stays ignored, as Python does it.
        signums = [s for s in (signal.SIGINT, signal.SIGTERM) if signal.getsignal(s) is not signal.SIG_IGN]
        previous = {signum: signal.signal(signum, self._receive) for signum in signums}
        try:
            yield self
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """Signals wait for raise_pending(); the guards.InterruptAtBatchEnd callback calls it."""
        self.deferring = True
        try:
            yield
        finally:
            self.deferring = False
        self.raise_pending()

    def raise_pending(self) -> None:
        if self.pending is not None:
            signum, self.pending = self.pending, None
            raise Interrupted(signum)
