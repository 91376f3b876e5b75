"""Where an Optuna study lives, and how its trials are kept honest when processes die.

By default a journal file beside the MLflow store (Optuna's file lock lets several processes on one
machine use it at once); for many machines an RDB URL, PostgreSQL above all. Optuna is imported
only when a search runs.

A trial is RUNNING from the moment its search asks for it until the search tells how it ended. If
that search process dies first (SIGKILL, a lost machine), the trial would stay RUNNING for ever,
and Optuna's default sampler steers every later trial away from its parameters. So each search
vouches for the trials it has in flight, and a search starting on the study fails those nobody
vouches for any more, with a line saying so:

- RDB storages: Optuna's heartbeat. The search records one for each trial in flight every
  HEARTBEAT_SECONDS; `optuna.storages.fail_stale_trials` fails a trial whose last beat is older
  than GRACE_SECONDS.
- Journal files (one machine, or a file system with working locks): the search process holds a
  lock file for as long as it lives, and names it in each trial it asks for (user attribute
  imdb_exp.owner). A RUNNING trial whose owner's lock is free was left by a dead process.
"""

import atexit
import logging
import os
import re
import socket
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from imdb_exp.errors import ConfigError, chain, first_line
from imdb_exp.runtime import file_locks
from imdb_exp.runtime.paths import home
from imdb_exp.runtime.process import between_jobs
from imdb_exp.runtime.redaction import redact
from imdb_exp.sweeps import launchers
from imdb_exp.tracking import store

log = logging.getLogger(__name__)
T = TypeVar("T")

HEARTBEAT_SECONDS = 20
GRACE_SECONDS = 90  # several missed beats: a busy database or machine is not taken for a dead search
DATABASE_PATIENCE_SECONDS = 120  # how long a call waits for a database that refuses connections (a restart)
OWNER_ATTR = "imdb_exp.owner"
UNOWNED_GRACE_SECONDS = 60  # a trial asked for an instant ago may not name its owner yet


def default_storage(tracking_uri: str | None) -> str:
    """A journal file beside the MLflow store: next to its SQLite file, else in IMDB_EXP_HOME."""
    uri = store.resolve_uri(tracking_uri)
    database = store.sqlite_file(uri)
    folder = database.parent if database is not None else home()
    return str(folder / "optuna-journal.log")


def refuse_storage_out_of_reach(storage: str | None, launcher) -> None:
    """A study in the default journal file, on a launcher that runs trials on other machines, would be
    split into one study per machine: refused, with what to use instead. A journal path given on
    purpose (a shared file system) is taken as it is."""
    if storage is None and launchers.runs_jobs_elsewhere(launcher):
        raise ConfigError(
            "this launcher runs trials on other machines, which cannot reach the study's default journal file "
            "on this one; give the study a database every machine reaches, hydra.sweeper.storage="
            "postgresql://USER:PASSWORD@HOST:PORT/DATABASE (pip install 'imdb-exp[postgres]'), or a journal "
            "path on a file system they all share"
        )


def open_storage(spec: str):
    """An Optuna RDB URL (``dialect://...``) as it is, or a path: a journal file there."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    if "://" in spec:
        return _database(spec)
    Path(spec).parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.JournalStorage(JournalFileBackend(spec))


def _database(url: str):
    """Optuna's RDB storage with heartbeats, its pooled connections checked before each use, and new
    connections waited for while the database restarts: a restart costs a search time, not trials."""
    import optuna
    from sqlalchemy import event
    from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

    deadline = time.monotonic() + DATABASE_PATIENCE_SECONDS
    told = False
    while True:
        try:
            with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna since 2.9
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                storage = optuna.storages.RDBStorage(
                    url,
                    engine_kwargs={"pool_pre_ping": True},
                    heartbeat_interval=HEARTBEAT_SECONDS,
                    grace_period=GRACE_SECONDS,
                )
            break
        except (IntegrityError, ProgrammingError, OperationalError) as err:
            # A database restarting refuses connections; workers started at once on a new database
            # all create its tables, and all but one fail ("duplicate key ... alembic_version"). On
            # a later try the database is back, and the tables are there.
            if refused_for_good(err) or time.monotonic() > deadline:
                raise
            if isinstance(err, OperationalError) and not told:
                log.warning(
                    "the study's database %s does not answer; waiting up to %d s for it: %s",
                    redact(url),
                    DATABASE_PATIENCE_SECONDS,
                    first_line(err),
                )
                told = True
            time.sleep(1)
    event.listen(storage.engine, "do_connect", _connect_patiently)
    return storage


def patiently(call: Callable[[], T]) -> T:
    """``call``, made again while the database drops it mid-transaction (a restart terminates the
    connections in use; the pool's check before each use catches only idle ones), for up to
    DATABASE_PATIENCE_SECONDS. The failed transaction was rolled back: a write made again is made once."""
    import optuna
    from sqlalchemy.exc import OperationalError

    deadline = time.monotonic() + DATABASE_PATIENCE_SECONDS
    while True:
        try:
            return call()
        except (optuna.exceptions.StorageInternalError, OperationalError) as err:
            if not _dropped(err) or time.monotonic() > deadline:
                raise
            log.warning("the study's database dropped a call (%s); trying again", first_line(err))
            time.sleep(1)


def _dropped(err: BaseException) -> bool:
    """Whether a lost connection is behind ``err``: Optuna wraps the driver's OperationalError, or the
    rollback that follows it, which fails in turn (PendingRollbackError, the lost one its context)."""
    from sqlalchemy.exc import OperationalError, PendingRollbackError

    return any(isinstance(cause, OperationalError | PendingRollbackError) for cause in chain(err))


def _connect_patiently(dialect, connection_record, cargs, cparams):
    deadline = time.monotonic() + DATABASE_PATIENCE_SECONDS
    while True:
        try:
            return dialect.connect(*cargs, **cparams)
        except dialect.loaded_dbapi.OperationalError as err:
            if refused_for_good(err) or time.monotonic() > deadline:
                raise
            time.sleep(1)


# What a database server or the resolver says that no wait mends: a wrong password, user, database
# or host name. Anything else may be a restart, and is waited for: refused connections, "the database
# system is starting up", a name that does not resolve *yet* ("Temporary failure in name resolution",
# as a restarting container's name gives).
_FOR_GOOD = re.compile(
    r'password authentication failed|pg_hba\.conf|(database|role) "[^"]*" does not exist'
    r"|failed to resolve host .*Name or service not known|could not translate host name .*Name or service not known"
)


def refused_for_good(err: BaseException) -> bool:
    return _FOR_GOOD.search(str(err)) is not None


def fail_orphaned_trials(study, spec: str) -> None:
    """Fails the RUNNING trials of the study whose search process is gone (see the module's docstring)."""
    import optuna

    before = {t.number for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))}
    if "://" in spec:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
    else:
        for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            owner = trial.user_attrs.get(OWNER_ATTR)
            if owner is None and time.time() - trial.datetime_start.timestamp() < UNOWNED_GRACE_SECONDS:
                continue
            if owner is None or not file_locks.is_held(Path(owner)):
                study.tell(trial.number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
    running = {t.number for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))}
    for number in sorted(before - running):
        log.warning(
            "trial %d of study %s was RUNNING, but the search that ran it is gone: marked FAIL",
            number,
            study.study_name,
        )


@contextmanager
def vouching_for(study, trials: list, spec: str) -> Iterator[None]:
    """While the launcher runs ``trials``, this process says they live: heartbeats (RDB storages),
    or its lock file named in each trial (journal files)."""
    if "://" not in spec:
        owner = _owner_lock(spec)
        for trial in trials:
            trial.set_user_attr(OWNER_ATTR, owner)
        yield
        return
    stop = threading.Event()

    def beat() -> None:
        while not stop.is_set():
            for trial in trials:
                try:
                    study._storage.record_heartbeat(trial._trial_id)
                except Exception as err:  # a missed beat is no failure; GRACE_SECONDS allows several
                    log.warning("heartbeat of trial %d not recorded: %s", trial.number, err)
            stop.wait(HEARTBEAT_SECONDS)

    beating = threading.Thread(target=beat, name="optuna-heartbeat", daemon=True)
    beating.start()
    try:
        yield
    finally:
        stop.set()
        beating.join()


def _owner_lock(journal: str) -> str:
    """This process's lock file beside the journal (process.between_jobs.search_owner), held until it exits."""
    if between_jobs.search_owner is None:
        folder = Path(journal).with_name(Path(journal).name + ".owners")
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}.lock"
        between_jobs.search_owner = (str(path), file_locks.hold(path))
        atexit.register(path.unlink, missing_ok=True)  # gone, as its trials' owner is
    return between_jobs.search_owner[0]
