"""Errors a user can cause and fix, and how any error is said in one line."""


class UserError(Exception):
    """Something the user can fix; reported as one line, without a traceback."""


class ConfigError(UserError):
    pass


def first_line(err: BaseException) -> str:
    """The error's first line, or its type's name where it says nothing."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
