"""Errors a user can cause and fix, how any error is said in one line, and what it was raised from."""

import re
import sys
from collections.abc import Iterator
from typing import NoReturn


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


def hydra_in_one_line(err: BaseException) -> str:
    """Hydra's report of an override it cannot compose, in one line: a group's options, which it lists
    over lines, joined; its config search path and its "+key=value" advice left out (such a key is
    refused by the schema in turn); what it was raised from (the type a value lacks) after a colon."""
    said = re.sub(r"To append to your config use \+\S+ ?", "", str(err).split("Config search path:")[0])
    cause = f": {first_line(err.__cause__)}" if err.__cause__ else ""
    return f"{' '.join(said.split()).rstrip('.')}{cause}"


def refuse(prog: str, message: str) -> NoReturn:
    """Ends a command in one line, with exit status 2: a mistake in what it was given, as argparse's."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    sys.exit(2)
