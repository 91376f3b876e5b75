"""Output whose reader has gone: a closed terminal (EIO) or a pipe to a program the hang-up ended
(EPIPE) drops the line, so the run ends by its signal; any other failure to write still fails."""

import errno

import pytest

from imdb_exp.runtime.terminal import HungUpSafe


class Failing:
    def __init__(self, code: int) -> None:
        self.code = code

    def write(self, text: str) -> int:
        raise OSError(self.code, "failed")

    def flush(self) -> None:
        raise OSError(self.code, "failed")


@pytest.mark.parametrize("code", [errno.EIO, errno.EPIPE])
def test_writes_to_a_reader_that_has_gone_are_dropped(code):
    stream = HungUpSafe(Failing(code))
    assert stream.write("epoch 3\n") == len("epoch 3\n")
    stream.flush()


def test_other_failures_to_write_still_fail():
    with pytest.raises(OSError, match="failed"):
        HungUpSafe(Failing(errno.ENOSPC)).write("epoch 3\n")
