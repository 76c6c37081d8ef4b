"""Opening the database, brought to the newest schema on open: one SQLite file (solo, the
default) or the shop's PostgreSQL server (team mode, ``XIAOER_DATABASE_URL``; docs/team.md).

Every SQLite connection uses WAL (readers don't wait for the writer), enforces foreign keys and waits
for a lock instead of failing at once. Every unit of work starts with ``BEGIN IMMEDIATE``: it takes
the write lock up front, so waiting for another program happens there, before any of the work,
and a transaction can't fail halfway when it turns from reading to writing.
"""

from __future__ import annotations

import os
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
DATABASE_URL_ENV = "XIAOER_DATABASE_URL"
"""The shop's database in team mode, e.g. ``postgresql+psycopg://xiaoer@db.shop.lan/xiaoer``."""
SERVER_BACKENDS = ("postgresql",)
CONNECT_TIMEOUT_S = 5
"""How long connecting to a database server may take before the server counts as unreachable."""


def default_path() -> Path:
    return paths.data_dir() / DB_FILENAME


def shop_database_url(setting: str | None = None) -> str | None:
    """The shop's database in team mode: ``XIAOER_DATABASE_URL``, else ``setting`` (the desktop's
    settings); None in solo mode. The URL may name a password; it is never logged or shown."""
    url = os.environ.get(DATABASE_URL_ENV, "").strip() or (setting or "").strip()
    return url or None


def is_server_url(url: str) -> bool:
    return make_url(url).get_backend_name() in SERVER_BACKENDS


class Store(Repository):
    """An open database, with the app's common writes and look-ups (see ``repo.py``).

    The Store may be shared between threads. Sessions may not: each unit of work opens its own
    with ``session()``, in the thread that runs it, and is done when the ``with`` block ends.
    """

    def __init__(self, engine: Engine, path: Path, lock_timeout: float) -> None:
        self.engine = engine
        self.path = path
        """The SQLite file; for a server database, the place in the data dir beside which this
        desktop keeps the store's files (rankers, caches)."""
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
                raise locked_error(self.label, self.lock_timeout) from exc
            if is_corrupt(exc):
                raise corrupt_error(self.path, exc.orig) from exc
            raise

    @property
    def is_server(self) -> bool:
        """A database server (PostgreSQL, team mode) rather than this desktop's SQLite file."""
        return self.engine.dialect.name != "sqlite"

    @property
    def label(self) -> str:
        """Where the data is, for messages: the file, or the server's URL without a password."""
        if self.is_server:
            return self.engine.url.render_as_string(hide_password=True)
        return str(self.path)

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
    """Open (creating if needed) the database at ``url`` and migrate it to the newest schema.

    ``url`` is an SQLAlchemy SQLite URL such as ``sqlite:////path/to/file.db`` (the default is
    ``xiaoer.db`` in the data dir: solo mode), or a PostgreSQL one such as
    ``postgresql+psycopg://user@host/db`` (the shop's database in team mode; the database must
    exist). Raises StoreError for a damaged file (left untouched), a database from a newer Xiaoer,
    a failed migration (file restored), a lock held too long or a server that can't be reached.
    """
    if url is not None and is_server_url(url):
        return _open_server(url, lock_timeout)
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


def _open_server(url: str, lock_timeout: float) -> Store:
    parsed = make_url(url)
    if parsed.get_driver_name() not in ("psycopg", "psycopg2"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    # Waiting for another session's row lock is bounded like SQLite's busy timeout; server
    # options in the URL (``?options=-csearch_path%3Dxiaoer`` for a schema of its own) stay.
    options = [f"-c lock_timeout={round(lock_timeout * 1000)}"]
    given = parsed.query.get("options")
    if given:
        options.insert(0, given if isinstance(given, str) else " ".join(given))
        parsed = parsed.difference_update_query(["options"])
    engine = create_engine(
        parsed,
        # A desktop's connections outlive server restarts: test each before use, so a restarted
        # server costs one reconnect, not one failed unit of work.
        pool_pre_ping=True,
        connect_args={"connect_timeout": CONNECT_TIMEOUT_S, "options": " ".join(options)},
    )
    label = parsed.render_as_string(hide_password=True)
    try:
        migrate.upgrade_server_to_head(engine, label)
    except sa_exc.OperationalError as exc:
        engine.dispose()
        raise StoreError(f"Can't reach the shop database {label}: {exc.orig}") from exc
    except BaseException:
        engine.dispose()
        raise
    return Store(engine, paths.data_dir() / "shop", lock_timeout)


def _private_db_files(path: Path) -> None:
    paths.private_file(path)
    for sidecar in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if sidecar.exists():
            paths.private_file(sidecar)


def _file_of(url: str) -> Path:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        raise StoreError(
            f"The store needs an SQLite database file or a PostgreSQL server, not {url!r}"
        )
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
