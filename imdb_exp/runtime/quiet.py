"""The backends' start-up notices, kept off the terminal of a machine without a GPU.

TensorFlow's C++ libraries write to file descriptor 2 directly (TF_CPP_MIN_LOG_LEVEL no longer
reaches all of them): that oneDNN is on, that this machine has no CUDA driver, which CPU
instructions the build leaves unused, and then that cuInit failed. None of it is news to a user of
a CPU machine, and it comes before the run's first useful line.
"""

import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

NOTICES = re.compile(
    r"oneDNN custom operations are on|cpu_feature_guard|To enable the following instructions"
    r"|All log messages before absl::InitializeLog|Could not find cuda drivers"
)
NO_DRIVER = "Could not find cuda drivers"
# Only where the machine has no CUDA driver at all; with a driver, a failed cuInit is news.
NO_DRIVER_CONSEQUENCES = re.compile(r"failed call to cuInit")


@contextmanager
def start_up_notices_dropped() -> Iterator[None]:
    """Whatever the block writes to stderr is held back and written after it, less the notices."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            lines = held.read().decode(errors="replace").splitlines(keepends=True)
            no_driver = any(NO_DRIVER in line for line in lines)
            for line in lines:
                if not NOTICES.search(line) and not (no_driver and NO_DRIVER_CONSEQUENCES.search(line)):
                    sys.stderr.write(line)
            sys.stderr.flush()
