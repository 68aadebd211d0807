"""Local SQLite tracking stores: created once under a lock, with their artifacts beside them.

MLflow creates a SQLite store's tables on first use, so processes that start together on a new
file race to create them ("table ... already exists"). After `use_local_stores()`, this process
builds its SQLite stores with `sqlite_store`: the store is created while holding an exclusive
`flock` on FILE.init-lock, and new experiments keep their artifacts in FILE's folder under
`mlartifacts/` (or under `$RIP_ARTIFACT_ROOT`), not in `./mlruns` of whatever folder the command
ran in. Experiments created earlier keep the location they were created with.
"""

import fcntl
import functools
import os
from pathlib import Path

from mlflow.exceptions import MlflowException
from sqlalchemy.engine import make_url

ARTIFACT_ROOT_ENV = "RIP_ARTIFACT_ROOT"
ARTIFACT_FOLDER = "mlartifacts"
LOCK_SUFFIX = ".init-lock"


def database_file(store_uri: str) -> Path | None:
    """The file of a sqlite:/// URI (absolute), or None for an in-memory database."""
    database = make_url(store_uri).database
    if database in (None, "", ":memory:"):
        return None
    return Path(database).expanduser().absolute()


def artifact_root(store_uri: str) -> str:
    """Where new experiments of the store keep their artifacts: $RIP_ARTIFACT_ROOT, else beside the file."""
    given = os.environ.get(ARTIFACT_ROOT_ENV)
    if given:
        return given if "://" in given else str(Path(given).expanduser().absolute())
    file = database_file(store_uri)
    return str((file.parent if file else Path.cwd()) / ARTIFACT_FOLDER)


@functools.cache
def local_store_class() -> type:
    """MLflow's SqlAlchemyStore, for processes that look an experiment up before creating it: when
    another process created the experiment in between, creating it returns that experiment.

    Built on first use, since MLflow may import this module (as a store plugin) while it is being imported.
    """
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    class LocalStore(SqlAlchemyStore):
        def create_experiment(self, name, artifact_location=None, tags=None):
            try:
                return super().create_experiment(name, artifact_location, tags)
            except MlflowException as error:
                existing = self.get_experiment_by_name(name)
                created_meanwhile = existing is not None and existing.lifecycle_stage == "active"
                if error.error_code != "RESOURCE_ALREADY_EXISTS" or not created_meanwhile:
                    raise
                return existing.experiment_id

    return LocalStore


def sqlite_store(store_uri: str, artifact_uri: str | None = None):
    """Build the store of a sqlite URI under its lock; new experiments' artifacts go to `artifact_uri`
    (default: `artifact_root(store_uri)`). Raises MlflowException with one line on failure.

    The signature of MLflow's store builders: `mlflow.tracking_store` entry points may name it."""
    root = artifact_uri or artifact_root(store_uri)
    file = database_file(store_uri)
    if file is None:
        return local_store_class()(store_uri, root)
    try:
        with open(f"{file}{LOCK_SUFFIX}", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or when this process dies
            return local_store_class()(store_uri, root)
    except MlflowException:
        raise
    except Exception as error:  # SQLAlchemy, alembic or the file system: one line, not their traceback
        if not file.parent.is_dir():
            reason = f"folder {file.parent} does not exist"
        else:
            reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
        raise MlflowException(f"cannot open the tracking store {store_uri}: {reason}") from error


def use_local_stores() -> None:
    """Build every SQLite tracking store of this process with `sqlite_store`."""
    from mlflow.tracking._tracking_service import utils

    utils._register("sqlite", sqlite_store)
