"""Arrays on disk that are either whole and current or ignored: the corpus cache and run checkpoints.

A file is an .npz of plain arrays (no pickle) plus a format version and a SHA-256 of its contents.
It is written under a unique temporary name and renamed into place, so readers and concurrent
writers never see half a file; a truncated, altered or older-format file reads as None.
"""

import hashlib
import logging
import os
import tempfile
from pathlib import Path

import numpy as np

from imdb_exp.schema import UserError

log = logging.getLogger(__name__)


class DiskError(UserError):
    pass


def write(path: Path, arrays: dict[str, np.ndarray], format_version: int) -> None:
    """DiskError, in one line, when the disk is full or the folder not writable: the file is then as it
    was (or absent), never half written."""
    checksum = np.frombuffer(_checksum(arrays).encode(), np.uint8)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as tmp:
            try:
                np.savez(tmp, checksum=checksum, format=np.int64(format_version), **arrays)
                tmp.close()
                os.replace(tmp.name, path)
            finally:
                Path(tmp.name).unlink(missing_ok=True)
    except OSError as err:
        raise DiskError(
            f"cannot write {path} ({err.strerror or err}); free space on that disk or make the folder writable "
            "(IMDB_EXP_HOME moves the cache and the checkpoints)"
        ) from None


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
