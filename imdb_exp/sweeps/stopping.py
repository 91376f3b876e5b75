"""A sweep on the joblib launcher, stopped: the running jobs end first.

There the launching process only waits while worker processes train. A signal raised in it would
make joblib kill its workers outright (SIGKILL), and their runs, cut off before they could end, would
be FAILED as lost. So the first SIGINT, SIGTERM or SIGHUP is held instead: the sweep's run says at
once that it is stopping (its failure_reason), no job starts after that (each looks before it
trains), and the jobs running end, finished, or KILLED where the signal reached them too (Ctrl-C at
a terminal signals the workers). Then the command stops as the signal asks. A second signal stops it
at once, as before.
"""

import signal
import sys
import threading

from mlflow import MlflowClient

from imdb_exp.runtime.interrupts import Interrupted
from imdb_exp.tracking import record


class AfterRunningJobs:
    def __init__(self, client: MlflowClient, parent_run_id: str):
        self.client, self.parent_run_id = client, parent_run_id
        self.pending: int | None = None
        self.previous: dict[int, object] = {}

    def hold(self) -> None:
        """From now on, a signal waits for the running jobs (a signal ignored at start stays ignored)."""
        signums = [
            s for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP) if signal.getsignal(s) is not signal.SIG_IGN
        ]
        self.previous = {signum: signal.signal(signum, self._receive) for signum in signums}

    def _receive(self, signum: int, frame) -> None:
        if self.pending is not None:
            raise Interrupted(signum)
        self.pending = signum
        # Not here: this handler may have cut a store call of the main thread short.
        threading.Thread(target=self._say_stopping, args=(signal.Signals(signum).name,), daemon=True).start()

    def _say_stopping(self, name: str) -> None:
        self.client.set_tag(self.parent_run_id, record.FAILURE_REASON, f"stopped by {name}")
        print(f"imdb-exp: {name}: no new job starts, the running jobs end first ({name} again stops them now)",
              file=sys.stderr, flush=True)  # fmt: skip

    def let_go(self) -> Interrupted | None:
        """Signals act at once again; the one that was held, if any, for the caller to raise."""
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        self.previous = {}
        return None if self.pending is None else Interrupted(self.pending)


def why_not_started(client: MlflowClient, parent_run_id: str) -> str | None:
    """Why a job of this sweep must not start: its sweep is stopping (see the module's docstring)."""
    return record.failure(client.get_run(parent_run_id)) or None
