"""Whether a process lives, told by a lock file it holds (flock): the kernel lets go of the lock when
the process ends, however it ends (a SIGKILL, an out-of-memory kill, a lost machine)."""

import fcntl
import os
from pathlib import Path


def hold(path: Path) -> int | None:
    """Takes the lock of ``path`` (created if missing); its descriptor, to close to let go, or None if a
    live process holds it already."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def is_held(path: Path) -> bool:
    """Whether a live process holds the lock of ``path`` right now."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
