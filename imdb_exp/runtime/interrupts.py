"""SIGINT, SIGTERM and SIGHUP (the terminal closed, an SSH session lost) end a run KILLED: at once,
or inside Keras at the end of the current batch.
So does SIGUSR2 where a scheduler handles it (submitit, for SLURM's preemption and time limit):
the run ends KILLED with the reason, then the scheduler's handler requeues the job, which
continues the run from its checkpoint.

Inside Keras the exception waits for a batch boundary: raised at an arbitrary point it can land in
TensorFlow's input pipeline or in a callback's MLflow write, which turn it into an ordinary error
(exit status 1 instead of a KILLED run). A run's end and a sweep's end hold signals off the same way
(``held_off``): cut in two, they would leave a run RUNNING that nothing ends. Elsewhere an interrupt
can still cut a step whose clean-up then fails (a save's file closed twice: OSError); ``unmasked``
gives back the interrupt behind such an error.
"""

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from imdb_exp.errors import chain


class Interrupted(KeyboardInterrupt):
    def __init__(self, signum: int):
        self.signal = signal.Signals(signum)
        super().__init__(self.signal.name)


def signal_of(err: KeyboardInterrupt) -> signal.Signals:
    return err.signal if isinstance(err, Interrupted) else signal.SIGINT


def reason(err: KeyboardInterrupt) -> str:
    """Why a run ended KILLED, as its failure_reason says it."""
    signum = signal_of(err)
    if signum == signal.SIGUSR2:
        return (
            "stopped by SIGUSR2, the scheduler's notice of preemption or of the time limit: submitit requeues "
            "the job, which continues this run from its last checkpoint"
        )
    return f"stopped by {signum.name}"


class Interrupts:
    def __init__(self) -> None:
        self.deferring = False
        self.pending: int | None = None
        self.previous: dict[int, object] = {}

    def _receive(self, signum: int, frame) -> None:
        if self.deferring:
            self.pending = signum
        else:
            raise Interrupted(signum)

    @contextmanager
    def handled(self) -> Iterator["Interrupts"]:
        # A signal ignored at start stays ignored, as Python does it: SIGINT for a job started with `&`,
        # SIGHUP under nohup (which is how a run is meant to outlive its terminal).
        terminating = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        signums = [s for s in terminating if signal.getsignal(s) is not signal.SIG_IGN]
        if callable(signal.getsignal(signal.SIGUSR2)):  # a scheduler's: it acts once the run has ended
            signums.append(signal.SIGUSR2)
        self.previous = {signum: signal.signal(signum, self._receive) for signum in signums}
        try:
            with unmasked():
                yield self
        finally:
            for signum, handler in self.previous.items():
                signal.signal(signum, handler)

    def pass_on(self, signum: int) -> None:
        """Hands ``signum`` to the handler this process had for it before, if that was a function."""
        handler = self.previous.get(signum)
        if callable(handler) and handler is not signal.default_int_handler:
            handler(signum, None)

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


@contextmanager
def unmasked() -> Iterator[None]:
    """An ordinary error raised while an interrupt was on its way out of the block is that interrupt:
    the run it cut ends KILLED and the command stops, instead of a sweep's job FAILED and the next one
    started."""
    try:
        yield
    except Exception as err:
        cut = next((cause for cause in chain(err) if isinstance(cause, KeyboardInterrupt)), None)
        if cut is None:
            raise
        raise cut from err  # the error's traceback stays in the report


@contextmanager
def held_off() -> Iterator[None]:
    """A signal during the block waits for its end, then raises: for steps that must not be cut in two
    (a run's end recorded and its records handed over; a sweep's table and its run's end). Only the main
    thread receives signals; elsewhere the block simply runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    holding = Interrupts()
    with holding.handled(), holding.deferred():
        yield
