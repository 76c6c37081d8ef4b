"""The teacher's settings (the settings file's ``teacher`` section) and the local teacher's state
file (which holds its per-start API key) are written all or nothing through ``app.fsio``: a write
that fails midway leaves the previous file and no leftovers, the file and its folder are fsync'ed,
and the state file is readable by this user only at every moment, the temporary file included."""

from __future__ import annotations

import errno
import json
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import pytest

from app import fsio
from app.cloud import providers
from app.local_server import teacher_server
from app.local_server.teacher_server import TeacherServer

posix_only = pytest.mark.skipif(os.name != "posix", reason="file modes and folder fsync are POSIX")

OLD_KEY = "old-key-" + "o" * 40
NEW_KEY = "new-key-" + "n" * 40


def _write_state(tmp_path: Path, key: str) -> Path:
    """The state file as ``TeacherServer`` writes it when it starts."""
    server = TeacherServer(tmp_path / "m.gguf", port=8765)
    server.api_key = key
    server._write_state()
    return teacher_server.state_path()


def _fail(exc: BaseException) -> Callable[..., Any]:
    def raises(*args: Any, **kwargs: Any) -> Any:
        raise exc

    return raises


def _spy_fsync(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, os.stat_result]]:
    """Record what each fsync was for: ("file", its stat) or ("dir", its stat)."""
    seen: list[tuple[str, os.stat_result]] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        info = os.fstat(fd)
        seen.append(("dir" if stat.S_ISDIR(info.st_mode) else "file", info))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return seen


FAILURES = {
    "the disk fills up": ("fsync", OSError(errno.ENOSPC, "No space left on device")),
    "the rename fails": ("replace", OSError(errno.EIO, "Input/output error")),
    "the app is killed": ("replace", KeyboardInterrupt()),
}


# --- the local teacher's state file ------------------------------------------------------------


@pytest.mark.parametrize("failure", FAILURES, ids=list(FAILURES))
def test_a_state_write_that_fails_midway_keeps_the_old_state_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    path = _write_state(tmp_path, OLD_KEY)
    before = sorted(p.name for p in path.parent.iterdir())
    name, exc = FAILURES[failure]
    with monkeypatch.context() as patched, pytest.raises(type(exc)):
        patched.setattr(os, name, _fail(exc))
        _write_state(tmp_path, NEW_KEY)
    assert json.loads(path.read_text(encoding="utf-8"))["api_key"] == OLD_KEY
    # No temporary file with the new key is left behind.
    assert sorted(p.name for p in path.parent.iterdir()) == before
    assert not any(NEW_KEY in p.read_text("utf-8") for p in path.parent.iterdir() if p.is_file())


@posix_only
def test_the_state_file_and_its_temporary_file_are_never_readable_by_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A world-readable state file left by an older version or a careless copy: its mode must
    # not be inherited by the file that takes the new key.
    path = _write_state(tmp_path, OLD_KEY)
    path.chmod(0o644)
    modes_when_written: list[int] = []
    modes_when_renamed: list[int] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        info = os.fstat(fd)
        if stat.S_ISREG(info.st_mode):  # the key is in the temporary file now
            modes_when_written.append(stat.S_IMODE(info.st_mode))
        real_fsync(fd)

    def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        modes_when_renamed.append(stat.S_IMODE(os.stat(src).st_mode))
        real_replace(src, dst)

    with monkeypatch.context() as patched:
        patched.setattr(os, "fsync", fsync)
        patched.setattr(os, "replace", replace)
        _write_state(tmp_path, NEW_KEY)
    assert modes_when_written == [0o600]
    assert modes_when_renamed == [0o600]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text(encoding="utf-8"))["api_key"] == NEW_KEY


@posix_only
def test_the_state_file_and_its_folder_are_fsynced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = _spy_fsync(monkeypatch)
    _write_state(tmp_path, NEW_KEY)
    assert [kind for kind, _ in seen] == ["file", "dir"]  # the data, then the rename


# --- the teacher's settings ----------------------------------------------------------------------


@pytest.mark.parametrize("failure", FAILURES, ids=list(FAILURES))
def test_a_teacher_settings_write_that_fails_midway_keeps_the_old_settings(
    monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    old = providers.TeacherConfig(provider="gemini", model="gemini-old")
    path = providers.save_config(old)
    before = sorted(p.name for p in path.parent.iterdir())
    name, exc = FAILURES[failure]
    with monkeypatch.context() as patched, pytest.raises(type(exc)):
        patched.setattr(os, name, _fail(exc))
        providers.save_config(providers.TeacherConfig(provider="local", model="new"))
    assert providers.load_config() == old
    assert sorted(p.name for p in path.parent.iterdir()) == before


@posix_only
def test_the_teacher_settings_and_their_folder_are_fsynced(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _spy_fsync(monkeypatch)
    path = providers.save_config(providers.TeacherConfig(provider="gemini"))
    assert [kind for kind, _ in seen] == ["file", "dir"]
    assert seen[0][1].st_size == path.stat().st_size  # the whole file was on disk before the rename
    assert providers.load_config() == providers.TeacherConfig(provider="gemini")


# --- app.fsio's mode ---------------------------------------------------------------------------


@posix_only
def test_a_mode_is_set_before_anything_is_written_and_replaces_the_old_files(
    tmp_path: Path,
) -> None:
    target = tmp_path / "secret.json"
    fsio.atomic_write_text(target, "old")
    target.chmod(0o644)
    mode_while_writing: list[int] = []

    def write(fh: IO[bytes]) -> None:
        mode_while_writing.append(stat.S_IMODE(os.fstat(fh.fileno()).st_mode))
        fh.write(b"new")

    fsio.atomic_write(target, write, mode=0o600)
    assert mode_while_writing == [0o600]
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert target.read_text() == "new"
    # Without a mode, the old file's permissions are kept (settings a user made readable).
    target.chmod(0o640)
    fsio.atomic_write_text(target, "newer")
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
