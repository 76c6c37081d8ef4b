"""Bring a database to the newest schema with the Alembic revisions in ``migrations/``.

The same revisions build an SQLite file (solo) and the shop's PostgreSQL database (team mode):
SQLite alters a table by rebuilding it (Alembic's batch mode), PostgreSQL alters it in place.

Alembic runs programmatically: its environment and revisions are files inside this package, found
next to this module, so a checkout and an installed wheel migrate the same way and no alembic.ini
or working directory is involved.

Before an existing database is changed, a consistent copy is written next to it
(``xiaoer.db.bak-<old revision>``). If the upgrade fails, the original is restored from that copy
and a ``StoreError`` says so; the copy is kept either way.

To write a new revision, change ``models.py`` and let Alembic draft the difference against a
database at head, then review the draft by hand::

    from alembic import command
    from app.store import migrate, open_store
    store = open_store("sqlite:////tmp/dev.db")
    with store.engine.begin() as conn:
        command.revision(migrate.alembic_config(conn), "what changed", rev_id="0002",
                         autogenerate=True)
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Engine

from app import paths
from app.store.errors import StoreError, is_locked, locked_error

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
VERSION_LOCATIONS: list[Path] = [MIGRATIONS_DIR / "versions"]


def alembic_config(connection: Connection | None = None) -> Config:
    """An in-memory Alembic config pointing at this package's migrations."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # os.pathsep, not spaces: data dirs such as "Application Support" contain spaces.
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", os.pathsep.join(map(str, VERSION_LOCATIONS)))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations found in {VERSION_LOCATIONS}")
    return head


def _check_known(current: str | None, script: ScriptDirectory, where: object) -> None:
    if current is None:
        return
    try:
        script.get_revision(current)
    except CommandError as exc:
        raise StoreError(
            f"The database {where} has schema revision {current}, which this version of "
            "Xiaoer does not know: it was written by a newer Xiaoer. Update Xiaoer, or move "
            "the file away to start with an empty database."
        ) from exc


MIGRATION_LOCK = 0x5841_4F45_5231  # "XAOER1": one pg_advisory_xact_lock key for the upgrade
"""Desktops and workers starting at once upgrade the shop's database one at a time."""


def upgrade_server_to_head(engine: Engine, label: str) -> None:
    """Migrate a database server's database (PostgreSQL) to the newest revision.

    PostgreSQL changes its schema inside a transaction: a failed upgrade leaves the database as
    it was, so no copy is made (the shop's own backups cover the server). Programs starting
    together wait for each other on an advisory lock; the last ones find it at head. A database
    already at head is not locked at all: a shop's desktops starting together (`xiaoer bench
    team`: 20 agents, 40 stores) would otherwise queue on the lock and time out.
    """
    script = ScriptDirectory.from_config(alembic_config())
    head = script.get_current_head()
    with engine.connect() as conn:
        if MigrationContext.configure(conn).get_current_revision() == head:
            return
    with engine.begin() as conn:
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
        current = MigrationContext.configure(conn).get_current_revision()
        if current == head:
            return
        _check_known(current, script, label)
        try:
            command.upgrade(alembic_config(conn), "head")
        except Exception as exc:
            raise StoreError(
                f"Updating the database {label} from revision {current} to {head} failed "
                f"({exc}). Nothing was changed. Please report this."
            ) from exc


def upgrade_to_head(engine: Engine, path: Path, lock_timeout: float) -> None:
    """Migrate the database at ``path`` (reached through ``engine``) to the newest revision.

    ``engine`` must have foreign keys off: SQLite rebuilds a table to alter it, and dropping the
    old table would otherwise cascade deletes into its children. The result is checked with
    ``PRAGMA foreign_key_check`` before it is committed instead.
    """
    script = ScriptDirectory.from_config(alembic_config())
    head = script.get_current_head()
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
        has_tables = conn.exec_driver_sql("SELECT count(*) FROM sqlite_master").scalar_one() > 0
    if current == head:
        return
    _check_known(current, script, path)

    backup = _backup(path, current) if has_tables else None
    try:
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), "head")
            broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise RuntimeError(f"the upgrade left rows with dangling foreign keys: {broken}")
    except Exception as exc:
        if is_locked(exc):
            raise locked_error(path, lock_timeout) from exc
        if backup is None:
            raise StoreError(f"Creating the database {path} failed: {exc}") from exc
        engine.dispose()
        try:
            _copy_database(backup, path)
        except sqlite3.Error as restore_exc:
            raise StoreError(
                f"Updating the database {path} from revision {current} to {head} failed ({exc}), "
                f"and restoring it failed too ({restore_exc}). Your data is in {backup}: copy it "
                f"over {path} before starting Xiaoer again."
            ) from exc
        raise StoreError(
            f"Updating the database {path} from revision {current} to {head} failed ({exc}). "
            f"The database was restored to revision {current} (a copy is in {backup}). Please "
            "report this; the previous version of Xiaoer can still use the file."
        ) from exc


def _backup(path: Path, revision: str | None) -> Path:
    target = path.with_name(f"{path.name}.bak-{revision or 'none'}")
    n = 1
    # Never overwrite an older copy: after a failed restore it may be the only good one.
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.bak-{revision or 'none'}-{n}")
    paths.private_file(target)  # a whole copy of the customers' messages
    _copy_database(path, target)
    return target


def _copy_database(source: Path, target: Path) -> None:
    """Copy through SQLite's backup API, which includes committed data still in the WAL file."""
    with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)
