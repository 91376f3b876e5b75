"""Credentials never printed or recorded: in any text, ``scheme://USER:PASSWORD@host`` becomes
``scheme://***@host``, and the connection itself still uses them.

Covers what the config takes as a URL (tracking.uri, hydra.sweeper.storage, trial.storage) wherever
it appears: params, tags, config.yaml, failure reasons, a job's log, and every logged line of the
process, Hydra's and the launchers' included (they print each job's overrides).
"""

import logging
import re

# Hydra shows an override's colons escaped (postgresql\://user\:pass@host): the backslash is allowed.
_CREDENTIALS = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*\\?://)[^\s/@'\"]+@")
TAG_LIMIT = 4000  # MLflow refuses a tag value over 5000 characters; a reason's first lines say enough


def redact(text: str) -> str:
    return _CREDENTIALS.sub(r"\g<scheme>***@", text)


def as_tag(text: str) -> str:
    """``text`` as a tag may hold it: redacted and cut to the limit."""
    return redact(text)[:TAG_LIMIT]


def redact_log_records() -> None:
    """Every log record of this process, whichever logger and handler writes it, is redacted as it is
    made. Set on the record factory, it survives Hydra configuring logging anew for each job."""
    make = logging.getLogRecordFactory()
    if getattr(make, "redacts", False):
        return

    def redacted(*args, **kwargs) -> logging.LogRecord:
        record = make(*args, **kwargs)
        message = record.getMessage()
        if _CREDENTIALS.search(message):
            record.msg, record.args = redact(message), None
        return record

    redacted.redacts = True
    logging.setLogRecordFactory(redacted)
