"""Opening the database: one SQLite file, brought to the newest schema on open.

Every connection uses WAL (readers don't wait for the writer), enforces foreign keys and waits
for a lock instead of failing at once. Every unit of work starts with ``BEGIN IMMEDIATE``: it takes
the write lock up front, so waiting for another program happens there, before any of the work,
and a transaction can't fail halfway when it turns from reading to writing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from types import TracebackType

from sqlalchemy import URL, Connection, Engine, create_engine, event, make_url
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry

from app import paths
from app.store import migrate
from app.store.errors import StoreError, corrupt_error, is_corrupt, is_locked, locked_error
from app.store.repo import Repository

DB_FILENAME = "xiaoer.db"
LOCK_TIMEOUT_S = 5.0
"""How long a write waits for another program's lock before giving up with a StoreError."""


def default_path() -> Path:
    return paths.data_dir() / DB_FILENAME


class Store(Repository):
    """An open database, with the app's common writes and look-ups (see ``repo.py``).

    The Store may be shared between threads. Sessions may not: each unit of work opens its own
    with ``session()``, in the thread that runs it, and is done when the ``with`` block ends.
    """

    def __init__(self, engine: Engine, path: Path, lock_timeout: float) -> None:
        self.engine = engine
        self.path = path
        self.lock_timeout = lock_timeout
        # Objects stay readable after their unit of work ends (e.g. handed to the UI thread).
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One unit of work: committed when the block ends, rolled back if it raises.

        Raises StoreError when another program holds the lock for longer than ``lock_timeout``
        or the file turns out to be damaged; nothing from the unit of work is saved then.
        """
        try:
            with self._sessions.begin() as session:
                yield session
        except sa_exc.DBAPIError as exc:
            if is_locked(exc):
                raise locked_error(self.path, self.lock_timeout) from exc
            if is_corrupt(exc):
                raise corrupt_error(self.path, exc.orig) from exc
            raise

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open_store(url: str | None = None, *, lock_timeout: float = LOCK_TIMEOUT_S) -> Store:
    """Open (creating if needed) the SQLite database at ``url`` and migrate it to the newest schema.

    ``url`` is an SQLAlchemy SQLite URL such as ``sqlite:////path/to/file.db``; the default is
    ``xiaoer.db`` in the data dir. Raises StoreError for a damaged file (left untouched), a file
    from a newer Xiaoer, a failed migration (file restored) or a lock held too long.
    """
    path = default_path() if url is None else _file_of(url)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Customers' messages: this user's only. SQLite gives the -wal and -shm files the database
    # file's mode, so creating (or tightening) it first covers them too.
    _private_db_files(path)
    _check_readable(path, lock_timeout)
    migration_engine = _make_engine(path, lock_timeout, foreign_keys=False)
    try:
        migrate.upgrade_to_head(migration_engine, path, lock_timeout)
    finally:
        migration_engine.dispose()
    return Store(_make_engine(path, lock_timeout, foreign_keys=True), path, lock_timeout)


def _private_db_files(path: Path) -> None:
    paths.private_file(path)
    for sidecar in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if sidecar.exists():
            paths.private_file(sidecar)


def _file_of(url: str) -> Path:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        raise StoreError(f"The store needs an SQLite database file, not {url!r}")
    return Path(parsed.database).expanduser().resolve()


def _check_readable(path: Path, lock_timeout: float) -> None:
    """Refuse a file SQLite can't read, before anything could write to it."""
    if not path.exists() or path.stat().st_size == 0:
        return
    try:
        with closing(sqlite3.connect(path, timeout=lock_timeout)) as conn:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error as exc:
        if is_locked(exc):
            raise locked_error(path, lock_timeout) from exc
        if is_corrupt(exc):
            raise corrupt_error(path, exc) from exc
        raise StoreError(f"Can't open the database {path}: {exc}") from exc


def _make_engine(path: Path, lock_timeout: float, *, foreign_keys: bool) -> Engine:
    engine = create_engine(URL.create("sqlite+pysqlite", database=str(path)))

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _: ConnectionPoolEntry) -> None:
        # Take transaction control away from the sqlite3 module (it would not BEGIN before
        # DDL, so a failed migration could leave half a schema); _on_begin emits BEGIN instead.
        dbapi_connection.isolation_level = None
        # SQLite's busy handler retries with a growing sleep (1 ms up to 100 ms) until the
        # timeout, so a briefly held lock costs a short wait rather than an error.
        dbapi_connection.execute(f"PRAGMA busy_timeout = {round(lock_timeout * 1000)}")
        dbapi_connection.execute("PRAGMA journal_mode = WAL")
        dbapi_connection.execute(f"PRAGMA foreign_keys = {'ON' if foreign_keys else 'OFF'}")

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine
