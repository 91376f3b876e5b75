"""Errors a user can cause and fix, how any error is said in one line, and what it was raised from."""

from collections.abc import Iterator


class UserError(Exception):
    """Something the user can fix; reported as one line, without a traceback."""


class ConfigError(UserError):
    pass


def first_line(err: BaseException) -> str:
    """The error's first line, or its type's name where it says nothing."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def chain(err: BaseException | None) -> Iterator[BaseException]:
    """``err``, then what it was raised from or while handling, and so on back (each once)."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or err.__context__
