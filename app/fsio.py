"""Crash-safe file writes: the one way Xiaoer writes adapters, matchers, caches and state files;
and ``loads_json`` for the JSON lines it reads.

Each write goes to a temporary file in the target's own folder, is flushed and fsync'ed, and is
then renamed over the target (``os.replace``, atomic on POSIX and Windows), and the folder is
fsync'ed so the rename itself survives a power cut. A kill or a crash at any moment leaves the old
file or the new one, never half of one. (The ``atomicwrites`` package did this but is archived;
the standard library has everything it needs.)
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np


def loads_json(text: str | bytes) -> Any:
    """``json.loads`` for text read from a file: JSON nested deeper than the parser can follow is
    a ValueError like any other broken line (``json`` raises RecursionError), so the callers'
    "file:line: not a record" errors cover it."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("the JSON is nested too deeply") from None


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in ``path`` durable (a no-op where folders can't be opened)."""
    if os.name != "posix":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, write: Callable[[IO[bytes]], Any], mode: int | None = None) -> Path:
    """Write ``path`` with ``write(binary file)``, all or nothing; returns ``path``.

    ``mode`` (e.g. ``0o600`` for a file holding a key) is set on the temporary file before
    anything is written into it, so the data is never readable more widely, not even for a
    moment; without it the new file keeps the old one's permissions (a new one gets 0600).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        if mode is not None and hasattr(os, "fchmod"):  # POSIX (Windows has no such modes)
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        if mode is None and path.exists():  # keep the old file's permissions
            shutil.copymode(path, tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


def atomic_write_bytes(path: Path, data: bytes, mode: int | None = None) -> Path:
    return atomic_write(path, lambda fh: fh.write(data), mode)


def atomic_write_text(
    path: Path, text: str, encoding: str = "utf-8", mode: int | None = None
) -> Path:
    return atomic_write_bytes(path, text.encode(encoding), mode)


def atomic_save_npy(path: Path, array: np.ndarray[Any, Any]) -> Path:
    """``np.save`` all or nothing (``path`` is used as it is: give it the ``.npy`` suffix)."""
    return atomic_write(path, lambda fh: np.save(fh, array, allow_pickle=False))


def atomic_savez(path: Path, **arrays: np.ndarray[Any, Any]) -> Path:
    """``np.savez`` all or nothing (``path`` is used as it is: give it the ``.npz`` suffix)."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    return atomic_write_bytes(path, buffer.getvalue())


def replace_file(tmp: Path, target: Path) -> None:
    """Move ``tmp`` (a finished file a library wrote) over ``target`` durably."""
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, target)
    fsync_dir(target.parent)


def fsync_tree(path: Path) -> None:
    """fsync every file and folder under ``path`` (a folder written by a library, e.g. peft's
    ``save_pretrained``), before it is renamed into place with ``replace_dir``."""
    for root, _dirs, files in os.walk(path):
        for name in files:
            fd = os.open(Path(root) / name, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(root))


def replace_dir(tmp: Path, target: Path) -> None:
    """Move the finished folder ``tmp`` to ``target`` durably, replacing an older ``target``.

    Folders can't be swapped in one rename: a crash between the two renames leaves the old folder
    as ``.<name>.old`` beside the target (removed by the next call), never a half-written one."""
    fsync_tree(tmp)
    old = target.with_name(f".{target.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        os.replace(target, old)
    os.replace(tmp, target)
    fsync_dir(target.parent)
    shutil.rmtree(old, ignore_errors=True)
