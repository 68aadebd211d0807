"""The work queue that searches (`rip tune`) and sweeps (`rip sweep --storage`) share.

Work is the trials of one Optuna study in a database (a SQLite file, or PostgreSQL for many
machines). Any number of workers claim trials: each decides what to do next while holding the
study's lock (`StudyLock`), a claimed trial sends heartbeats, and a trial whose worker died (no
heartbeat for the grace period) is marked FAIL and queued again with the same parameters and
attributes (`retry`), up to a number of retries.
"""

import fcntl
import hashlib
import logging
import os
import socket
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import optuna
import sqlalchemy
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

log = logging.getLogger(__name__)

WORKER_ATTR = "rip.worker"  # trial user attribute: host:pid of the worker that claimed it
RETRY_ATTR = "rip.retry_of"  # trial user attribute of a retry: the number of the trial it repeats
_EXPECTED = "expected sqlite:///FILE or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE"
_CONNECT_ARGS = {"postgresql": {"connect_timeout": 10}}
WAIT_POLL = 5.0  # seconds at most between looks at the study while other workers' trials run


def worker_id() -> str:
    """host:pid of this worker."""
    return f"{socket.gethostname()}:{os.getpid()}"


def check_storage_url(url: str) -> URL:
    """The parsed URL (psycopg2 as PostgreSQL's default driver); ValueError unless it names a SQLite
    file in an existing folder or a PostgreSQL database."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ValueError(f"bad storage URL {url!r}: {_EXPECTED}") from None
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ValueError(f"unsupported storage {shown(url)}: {_EXPECTED}")
    if parsed.get_backend_name() == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            raise ValueError(f"storage {url!r} is in memory: no worker could share or resume it; {_EXPECTED}")
        folder = Path(parsed.database).expanduser().parent
        if not folder.is_dir():
            hint = "" if folder.is_absolute() else " (a relative path; an absolute one takes four slashes)"
            raise ValueError(f"storage {url!r}: folder {folder} does not exist{hint}")
    elif not parsed.database:
        raise ValueError(f"storage {shown(url)} names no database: {_EXPECTED}")
    if parsed.drivername == "postgresql":  # SQLAlchemy 2.1 would pick psycopg 3; we depend on psycopg2
        parsed = parsed.set(drivername="postgresql+psycopg2")
    return parsed


def shown(url: str) -> str:
    """`url` with its password hidden, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def connect(
    url: str, study_name: str, heartbeat_interval: int, grace_period: int | None, on_stale: Callable | None
) -> tuple[optuna.storages.RDBStorage, "StudyLock"]:
    """Optuna's storage at `url`, with heartbeats, and the lock of study `study_name`.

    `on_stale(study, trial)` sees each trial whose worker died (see `retry_stale`). The storage's
    tables are created while holding the lock: two workers creating them at once would fail.
    """
    parsed = check_storage_url(url)
    lock = None
    try:
        lock = StudyLock(parsed, study_name)
        with lock, warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            storage = optuna.storages.RDBStorage(
                parsed.render_as_string(hide_password=False),
                engine_kwargs={"connect_args": _CONNECT_ARGS.get(parsed.get_backend_name(), {})},
                heartbeat_interval=heartbeat_interval,
                grace_period=grace_period,
                heartbeat_stale_trial_callback=on_stale,
            )
    except (SQLAlchemyError, ImportError) as error:
        if lock is not None:
            lock.close()
        reason = str(getattr(error, "orig", None) or error.__cause__ or error).strip().splitlines()[0]
        raise ValueError(f"cannot open storage {shown(url)}: {reason}") from error
    return storage, lock


class StudyLock:
    """A mutual exclusion shared by every worker of one study, on every machine.

    A PostgreSQL advisory lock, or an exclusive `flock` on FILE.lock beside a SQLite file. The
    database or the kernel releases it when its holder dies.
    """

    def __init__(self, parsed: URL, study_name: str):
        self.held = False
        if parsed.get_backend_name() == "sqlite":
            self.file = open(f"{Path(parsed.database).expanduser()}.lock", "a")
            self.connection = None
        else:
            engine = sqlalchemy.create_engine(
                parsed, poolclass=sqlalchemy.NullPool, connect_args=_CONNECT_ARGS["postgresql"]
            )
            self.connection = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            digest = hashlib.blake2b(f"rip.tune:{study_name}".encode(), digest_size=8).digest()
            self.key = int.from_bytes(digest, "big", signed=True)

    def acquire(self) -> None:
        if self.connection is None:
            fcntl.flock(self.file, fcntl.LOCK_EX)
        else:
            self.connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": self.key})
        self.held = True

    def release(self) -> None:
        """Release the lock if held (so that it can be released early, inside a trial)."""
        if not self.held:
            return
        if self.connection is None:
            fcntl.flock(self.file, fcntl.LOCK_UN)
        else:
            self.connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
        self.held = False

    def __enter__(self) -> "StudyLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def close(self) -> None:
        self.release()
        if self.connection is None:
            self.file.close()
        else:
            self.connection.close()


def retry(study: optuna.Study, trial: FrozenTrial, max_retries: int) -> bool:
    """Queue failed `trial` again (same parameters and user attributes, `RETRY_ATTR` naming it)
    unless it was retried `max_retries` times already; return whether it was queued."""
    if len(trial.system_attrs.get("retry_history", [])) >= max_retries:
        return False
    trial.user_attrs = {**trial.user_attrs, RETRY_ATTR: trial.number}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retries)(study, trial)
    return True


def retry_stale(max_retries: int, on_lost: Callable[[FrozenTrial], None] | None = None) -> Callable:
    """The storage's callback for a trial whose worker died: `on_lost(trial)`, then `retry`."""

    def on_stale(study: optuna.Study, trial: FrozenTrial) -> None:
        if on_lost is not None:
            on_lost(trial)
        queued = retry(study, trial, max_retries)
        log.warning("trial %d lost its worker (%s); %s", trial.number, trial.user_attrs.get(WORKER_ATTR),
                    "retrying it" if queued else f"not retried: {max_retries} retries used")

    return on_stale


def claim(study: optuna.Study, storage: optuna.storages.RDBStorage, trial: FrozenTrial) -> optuna.Trial | None:
    """Claim waiting `trial` besides the one `work` hands out (call under the lock): it is RUNNING
    for this worker, which keeps it alive with `heartbeat`; None if it was not waiting."""
    if not storage.set_trial_state_values(trial._trial_id, TrialState.RUNNING):
        return None
    storage.record_heartbeat(trial._trial_id)  # stale from now on if this worker dies
    return optuna.Trial(study, trial._trial_id)


def heartbeat(storage: optuna.storages.RDBStorage, trial: optuna.Trial):
    """Optuna's heartbeat thread for a trial claimed with `claim`: `start()` it, `join()` to stop."""
    from optuna.storages._heartbeat import get_heartbeat_thread

    return get_heartbeat_thread(trial._trial_id, storage)


def work(study: optuna.Study, lock: StudyLock, objective: Callable[[optuna.Trial], float], n_trials: int,
         poll: float, *, settle: Callable[[optuna.Study], None] | None = None, catch: tuple = ()) -> None:
    """Run trials while the study has room; wait while other workers' trials run; return when all are done.

    `n_trials`: the study's total of trials that did not fail (0: run only queued trials).
    `settle(study)` runs under the lock before every decision. `catch`: errors that fail a trial
    without stopping the worker. The lock is released as soon as the claimed trial exists.
    """

    def released(trial: optuna.Trial) -> float:
        lock.release()  # the trial exists: other workers may decide now
        return objective(trial)

    while True:
        with lock, warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
            if settle is not None:
                settle(study)
            step = next_step(study, n_trials)
            if step == "run":
                study.optimize(released, n_trials=1, catch=catch)
        if step == "done":
            return
        if step == "wait":
            time.sleep(poll)


def next_step(study: optuna.Study, n_trials: int) -> str:
    """run: a queued trial waits or the budget has room; wait: others' trials still run; done."""
    states = [trial.state for trial in study.get_trials(deepcopy=False)]
    if TrialState.WAITING in states or sum(state != TrialState.FAIL for state in states) < n_trials:
        return "run"
    return "wait" if TrialState.RUNNING in states else "done"
