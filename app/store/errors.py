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


def is_locked(error: BaseException) -> bool:
    """SQLITE_BUSY / SQLITE_LOCKED: another connection holds the lock past the busy timeout."""
    return _error_name(error).startswith(("SQLITE_BUSY", "SQLITE_LOCKED"))


def is_corrupt(error: BaseException) -> bool:
    """SQLITE_CORRUPT / SQLITE_NOTADB: the file is damaged or is not a database at all."""
    return _error_name(error).startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB"))


def locked_error(path: Path, waited_s: float) -> StoreError:
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
