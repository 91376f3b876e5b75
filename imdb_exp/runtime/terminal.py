"""Output that survives its terminal. When the terminal a run was started from closes (a window shut,
an SSH session lost), writing to it fails at once (EIO; EPIPE where the output went through a pipe
to a program the hang-up ended, as `imdb-exp ... | tee log`), while the SIGHUP that says so may come
a moment later: the failed write would end the run FAILED instead of KILLED by the hang-up. Lines
written after the hang-up go nowhere, as they would have anyway."""

import errno
import sys

GONE = (errno.EIO, errno.EPIPE)


class HungUpSafe:
    """A text stream whose writes to a terminal (or a reader) that has gone are dropped."""

    def __init__(self, stream) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        try:
            return self.stream.write(text)
        except OSError as err:
            if err.errno not in GONE:
                raise
            return len(text)

    def flush(self) -> None:
        try:
            self.stream.flush()
        except OSError as err:
            if err.errno not in GONE:
                raise

    def __getattr__(self, name: str):
        return getattr(self.stream, name)


def outlive_hang_ups() -> None:
    """sys.stdout and sys.stderr wrapped (once)."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, HungUpSafe):
            setattr(sys, name, HungUpSafe(stream))
