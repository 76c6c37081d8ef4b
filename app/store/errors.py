"""The one error the store raises for conditions a user can act on, and how SQLite reports them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy import exc as sa_exc

from app.errors import XiaoerError


class StoreError(XiaoerError):
    """The database can't be used as it is; the message names the file and says what to do."""


def _sqlite_error(error: BaseException) -> sqlite3.Error | None:
    if isinstance(error, sa_exc.DBAPIError) and isinstance(error.orig, sqlite3.Error):
        return error.orig
    if isinstance(error, sqlite3.Error):
        return error
    return None


def _error_name(error: BaseException) -> str:
    found = _sqlite_error(error)
    return str(getattr(found, "sqlite_errorname", "")) if found is not None else ""


def _sqlstate(error: BaseException) -> str:
    orig = error.orig if isinstance(error, sa_exc.DBAPIError) else error
    return str(getattr(orig, "sqlstate", "") or "")


def is_locked(error: BaseException) -> bool:
    """SQLITE_BUSY / SQLITE_LOCKED, or PostgreSQL's lock_not_available (55P03): another
    connection holds the lock past the lock timeout."""
    return _error_name(error).startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or (
        _sqlstate(error) == "55P03"
    )


def is_unreachable(error: BaseException) -> bool:
    """The database server can't be reached: refused, gone, timed out, or the connection broke
    (a server stopped or killed mid-session). Not an error in the data: retrying later helps."""
    if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
        return True
    if isinstance(error, sa_exc.OperationalError | sa_exc.InterfaceError):
        # Class 08 (connection exception), 57P01-57P03 (admin shutdown, crash shutdown, can't
        # connect now); no SQLSTATE at all: the connection attempt itself failed.
        state = _sqlstate(error)
        return state == "" or state.startswith(("08", "57P"))
    return False


def is_corrupt(error: BaseException) -> bool:
    """SQLITE_CORRUPT / SQLITE_NOTADB: the file is damaged or is not a database at all."""
    return _error_name(error).startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB"))


def locked_error(path: Path | str, waited_s: float) -> StoreError:
    return StoreError(
        f"The database {path} is locked by another program (waited {waited_s:g} s). Nothing "
        "from this change was saved. Close the other program (another Xiaoer window or a "
        "training job) and try again."
    )


def corrupt_error(path: Path, detail: object) -> StoreError:
    return StoreError(
        f"The database {path} is damaged or is not a Xiaoer database ({detail}). It was left "
        f"untouched. Move it away (or replace it with the newest {path.name}.bak-* copy next "
        "to it) and start Xiaoer again."
    )
