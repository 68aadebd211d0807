"""Where studies live (a SQLite file or a PostgreSQL database) and the lock their workers share."""

import fcntl
import hashlib
import warnings
from collections.abc import Callable
from pathlib import Path

import optuna
import sqlalchemy
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

_EXPECTED = "expected sqlite:///FILE or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE"
_CONNECT_ARGS = {"postgresql": {"connect_timeout": 10}}


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
    url: str, study_name: str, heartbeat_interval: int, grace_period: int | None, on_stale: Callable
) -> tuple[optuna.storages.RDBStorage, "StudyLock"]:
    """Optuna's storage at `url`, with heartbeats, and the lock of study `study_name`.

    `on_stale(study, trial)` sees each trial whose worker died. The storage's tables are created
    while holding the lock: two workers creating them at once on a new database would fail.
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
