"""Arrays on disk that are either whole and current or ignored: the corpus cache and run checkpoints.

A file is an .npz of plain arrays (no pickle) plus a format version and a SHA-256 of its contents.
It is written under a unique temporary name and renamed into place, so readers and concurrent
writers never see half a file; a truncated, altered or older-format file reads as None.
"""

import gc
import hashlib
import logging
import os
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from imdb_exp.errors import UserError

log = logging.getLogger(__name__)


class DiskError(UserError):
    pass


def write(path: Path, arrays: dict[str, np.ndarray], format_version: int) -> None:
    """DiskError, in one line, when the disk is full or the folder not writable: the file is then as it
    was (or absent), never half written."""
    checksum = np.frombuffer(_checksum(arrays).encode(), np.uint8)
    with _failed_archives_closed_quietly():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as tmp:
                try:
                    np.savez(tmp, checksum=checksum, format=np.int64(format_version), **arrays)
                    tmp.close()
                    os.replace(tmp.name, path)
                finally:
                    Path(tmp.name).unlink(missing_ok=True)
            return
        except OSError as err:
            reason = err.strerror or str(err)
        gc.collect()  # the failed archive, if a cycle still holds it: closed now, while its error is dropped
    raise DiskError(
        f"cannot write {path} ({reason}); free space on that disk or make the folder writable "
        "(IMDB_EXP_HOME moves the cache and the checkpoints)"
    )


@contextmanager
def _failed_archives_closed_quietly() -> Iterator[None]:
    """numpy < 2 leaves the zip archive of a failed np.savez open; its finalizer then tries to finish
    the file and prints an ignored error and its traceback. That one error, and no other, is dropped."""
    previous = sys.unraisablehook

    def hook(unraisable) -> None:
        if getattr(unraisable.object, "__qualname__", "") != f"{zipfile.ZipFile.__name__}.__del__":
            previous(unraisable)

    sys.unraisablehook = hook
    try:
        yield
    finally:
        sys.unraisablehook = previous


def read(path: Path, format_version: int, instead: str) -> dict[str, np.ndarray] | None:
    """The arrays of ``path``; None if it is missing, or damaged or of another format (a warning that
    names the file and what happens ``instead``)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
        stored = bytes(arrays.pop("checksum")).decode()
        if int(arrays.pop("format")) != format_version or stored != _checksum(arrays):
            raise ValueError("checksum or format mismatch")
    except Exception as err:  # any unreadable file is as good as none
        log.warning("%s is not valid (%s); %s", path, err, instead)
        return None
    return arrays


def text_array(text: str) -> np.ndarray:
    return np.frombuffer(text.encode(), np.uint8)


def array_text(array: np.ndarray) -> str:
    return bytes(array).decode()


def _checksum(arrays: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for name in sorted(arrays):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(arrays[name]).tobytes())
    return digest.hexdigest()
