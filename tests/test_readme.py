"""Every imdb-exp command the README shows composes into a valid config: a key renamed or an option
removed fails here, before a reader meets it."""

import re
import shlex
from pathlib import Path

import pytest

from imdb_exp.config import schema

README = Path(__file__).resolve().parents[1] / "README.md"


def shown_commands() -> list[list[str]]:
    """The arguments of each `imdb-exp` command of the README, in its code lines and in its text, a
    sweep's first values."""
    text = README.read_text()
    lines = [line.split("#")[0] for line in text.splitlines() if re.match(r"    imdb-exp( |$)", line)]
    lines += re.findall(r"`(imdb-exp(?: [^`]*)?)`", text)
    commands = []
    for line in lines:
        arguments = shlex.split(line)[1:]
        if any(a.startswith("resume=") or a == "--help" for a in arguments):
            continue  # a run id to continue, not a config
        commands.append([a.split(",")[0] if "=" in a else a for a in arguments if a not in ("-m", "--multirun")])
    return commands


def test_the_readme_shows_commands():
    assert len(shown_commands()) >= 10


@pytest.mark.parametrize("arguments", shown_commands(), ids=" ".join)
def test_each_command_the_readme_shows_composes_into_a_valid_config(compose_cfg, arguments):
    cfg = compose_cfg(*arguments)
    if cfg.model.family != "pretrained":  # its preset is a user's own
        schema.validate(cfg)
