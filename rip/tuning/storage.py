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
    """The parsed URL; ValueError unless it names a SQLite file in an existing folder or a PostgreSQL database."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ValueError(f"bad storage URL {url!r}: {_EXPECTED}") from None
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ValueError(f"unsupported storage {shown(url)}: {_EXPECTED}")
    if parsed.get_backend_name() == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            raise ValueError(f"storage {url!r} is in memory: workers could neither share nor resume it; {_EXPECTED}")
        folder = Path(parsed.database).expanduser().parent
        if not folder.is_dir():
            hint = "" if folder.is_absolute() else " (the path is relative: an absolute one takes four slashes, sqlite:////PATH)"
            raise ValueError(f"storage {url!r}: folder {folder} does not exist{hint}")
    elif not parsed.database:
        raise ValueError(f"storage {shown(url)} names no database: {_EXPECTED}")
    return parsed


def shown(url: str) -> str:
    """`url` with its password hidden, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def open_storage(
    url: str, heartbeat_interval: int, grace_period: int | None, on_stale: Callable
) -> optuna.storages.RDBStorage:
    """Optuna's storage at `url`, with heartbeats; `on_stale(study, trial)` sees each trial of a dead worker."""
    backend = check_storage_url(url).get_backend_name()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(
                url,
                engine_kwargs={"connect_args": _CONNECT_ARGS.get(backend, {})},
                heartbeat_interval=heartbeat_interval,
                grace_period=grace_period,
                heartbeat_stale_trial_callback=on_stale,
            )
    except (SQLAlchemyError, ImportError) as error:
        reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
        raise ValueError(f"cannot open storage {shown(url)}: {reason}") from error


class StudyLock:
    """A mutual exclusion shared by every worker of one study, on every machine.

    A PostgreSQL advisory lock, or an exclusive `flock` on FILE.lock beside a SQLite file. The
    database or the kernel releases it when its holder dies.
    """

    def __init__(self, url: str, study_name: str):
        parsed = check_storage_url(url)
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
