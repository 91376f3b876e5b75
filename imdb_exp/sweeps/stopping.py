"""A sweep on the joblib launcher, stopped by SIGINT: the running jobs end first.

There the launching process only waits while worker processes train. A signal raised in it makes
joblib kill its workers outright (SIGKILL), cutting their runs off. So the first SIGINT (Ctrl-C, or
`kill -INT` of the launching process) is held instead: the sweep's run says at once that it is
stopping (its failure_reason), no job starts after that (each looks before it trains), and the jobs
running end: finished where the signal reached the launching process alone, KILLED where it reached
them too. Then the command stops as the signal asks; a second SIGINT stops it at once. A Ctrl-C that
also reaches an idle worker ends it, and joblib then ends the others: the launcher raises the held
SIGINT for that failure (hydra_plugins/imdb_exp_joblib), and the runs cut off end KILLED with the
sweep's reason (multirun.SweepParentRun._end_cut_off_jobs). SIGTERM and SIGHUP, which a machine's
shutdown or a closed terminal send with little time to spare, act at once.
"""

import signal
import sys
import threading

from mlflow import MlflowClient

from imdb_exp.runtime.interrupts import Interrupted
from imdb_exp.tracking import record, store

_holding: "AfterRunningJobs | None" = None  # this process's sweep's, from hold() to let_go()


def hold(client: MlflowClient, parent_run_id: str) -> None:
    """From now on, a SIGINT waits for the running jobs (one ignored at start stays ignored)."""
    global _holding
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        _holding = AfterRunningJobs(client, parent_run_id)


def let_go() -> Interrupted | None:
    """SIGINT acts at once again; the one that was held, if any, for the caller to raise."""
    global _holding
    holding, _holding = _holding, None
    return holding.let_go() if holding is not None else None


def held_signal() -> Interrupted | None:
    """The SIGINT this process holds for its sweep's running jobs, if one came."""
    return Interrupted(signal.SIGINT) if _holding is not None and _holding.pending else None


class AfterRunningJobs:
    """SIGINT held for the running jobs, from its making to let_go()."""

    def __init__(self, client: MlflowClient, parent_run_id: str):
        self.client, self.parent_run_id = client, parent_run_id
        self.pending = False
        self.received = threading.Event()
        # Said by a thread of its own: the handler itself may have cut a store call of the main thread short,
        # and a thread started from a handler could wait for a lock the main thread holds.
        self.sayer = threading.Thread(target=self._say_stopping, name="imdb-exp-stopping", daemon=True)
        self.sayer.start()
        self.previous = signal.signal(signal.SIGINT, self._receive)

    def _receive(self, signum: int, frame) -> None:
        if self.pending:
            raise Interrupted(signum)
        self.pending = True
        self.received.set()

    def _say_stopping(self) -> None:
        self.received.wait()
        if not self.pending:
            return  # let go of without a signal
        self.client.set_tag(self.parent_run_id, record.FAILURE_REASON, "stopped by SIGINT")
        print("imdb-exp: SIGINT: no new job starts, the running jobs end first (SIGINT again stops them now)",
              file=sys.stderr, flush=True)  # fmt: skip

    def let_go(self) -> Interrupted | None:
        """The handler before it back; the SIGINT held, once the parent says it is stopping (so that
        nothing said later is overwritten)."""
        signal.signal(signal.SIGINT, self.previous)
        self.received.set()
        self.sayer.join(timeout=30)
        return Interrupted(signal.SIGINT) if self.pending else None


def why_not_started(tracking) -> str | None:
    """Why a job of a sweep whose signals are held must not start: its sweep is stopping."""
    return record.failure(store.client(tracking.uri).get_run(tracking.parent_run_id)) or None
