"""The project's installed commands in a subprocess, as a user would run them."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.support.store import epochs_logged


def run_cli(
    *args: str, cwd: Path, timeout: int = 300, program: str = "imdb-exp", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """An installed command of the project in a subprocess, as a user would run it."""
    command = [str(Path(sys.executable).with_name(program)), *args]
    env = os.environ | {"PYTHONUNBUFFERED": "1"} | (env or {})
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def start_cli(*args: str, cwd: Path, env: dict[str, str] | None = None, own_group: bool = False) -> subprocess.Popen:
    """The imdb-exp command started as from a terminal, to be signalled or killed while it runs;
    ``own_group``: in a process group of its own, as a terminal's foreground job (os.killpg is Ctrl-C).

    SIGINT is reset to its default: a CI runner may start us with it ignored, which the child would
    inherit. Its epoch lines are dropped (a pipe nobody reads would fill and stop it); stderr is kept.
    """
    command = [str(Path(sys.executable).with_name("imdb-exp")), *args]
    return subprocess.Popen(
        command,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ | (env or {}),
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        start_new_session=own_group,
    )


def wait_for_epochs(process: subprocess.Popen, database: Path, count: int, run_tag=None, timeout=120) -> None:
    deadline = time.monotonic() + timeout
    while epochs_logged(database, run_tag) < count and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    if epochs_logged(database, run_tag) < count:
        process.kill()
        raise AssertionError(f"training never logged {count} epochs; stderr: {process.communicate()[1][-2000:]}")
