"""Adapter version names and folders: safe names, and a version's files are never written twice.

A version is immutable once trained: the engine may be serving it, and promotion checks its files
against the hash recorded at export. So a run never writes into a finished version. A name the
user chose (``xiaoer train --name``) that is taken is an error; a name Xiaoer makes (a timestamp)
gets a ``-2``, ``-3`` … suffix instead. A folder holding only an unfinished run (a checkpoint, no
adapter) is not a version yet: running the same name again resumes it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from app import paths

MAX_VERSION_CHARS = 64
"""The store's column width for a version name."""
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
RESERVED_NAMES = ("base", "none", "active")
"""What ``xiaoer adapters rollback`` and ``xiaoer eval --adapter`` read as no adapter or the active."""


def check_version_name(name: str) -> str:
    """``name`` if it is a safe adapter version name (a folder name inside the adapters folder),
    else ValueError saying what is allowed. Every way a version is named goes through here."""
    if not _SAFE_NAME.fullmatch(name) or ".." in name or len(name) > MAX_VERSION_CHARS:
        raise ValueError(
            f"{name!r} is not a valid adapter version name: use up to {MAX_VERSION_CHARS} "
            "letters, digits, '.', '_' or '-', starting with a letter or digit, no '..'"
        )
    if name.lower() in RESERVED_NAMES:
        raise ValueError(f"{name!r} is not a valid adapter version name: it means something else")
    return name


def adapters_dir() -> Path:
    path = paths.data_dir() / "adapters"
    path.mkdir(parents=True, exist_ok=True)
    return path


def is_finished(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a trained adapter (then it is a version, never written again)."""
    return any((run_dir / name).exists() for name in ("adapter", "adapter.gguf", "metrics.json"))


def is_registered(version: str) -> bool:
    """Whether the store (the default database) has an adapter version called ``version``."""
    from app.store import open_store

    store = open_store()
    try:
        with store.session() as session:
            return store.get_adapter(session, version) is not None
    finally:
        store.close()


def run_dir_for(version: str, run_dir: Path | None = None) -> Path:
    """The folder to train the user-named ``version`` in (by default in the adapters folder):
    new, or an unfinished run to resume. ValueError for an unsafe name or an existing version."""
    check_version_name(version)
    run_dir = adapters_dir() / version if run_dir is None else run_dir
    if is_registered(version) or is_finished(run_dir):
        raise ValueError(
            f"adapter version {version!r} already exists, and versions are never overwritten: "
            "choose another --name"
        )
    return run_dir


def new_run_dir(version: str, taken: Callable[[str], bool] = lambda name: False) -> Path:
    """A new, empty folder for a version Xiaoer names: ``version``, or ``version-2`` … when that
    folder exists or ``taken(name)`` (e.g. the store has a version of that name elsewhere)."""
    check_version_name(version)
    for n in range(1, 1000):
        name = version if n == 1 else f"{version}-{n}"
        run_dir = adapters_dir() / check_version_name(name)
        if taken(name):
            continue
        try:
            run_dir.mkdir(parents=True)
        except FileExistsError:
            continue
        return run_dir
    raise RuntimeError(f"no free adapter version name like {version!r}")
