"""The local teacher's lock, without a model: how the server is started, what refuses to start,
and the state file that hands its key to clients. The real server answering only with its key,
with CORS off, is tested in test_teacher_server.py (slow: it loads a model)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.local_server import teacher_server
from app.local_server.teacher_server import TeacherServer

ROOT = Path(__file__).resolve().parents[1]
KEY_ENV = "XIAOER_TEACHER_SERVER_KEY"


def test_the_server_runs_locked_down_and_its_key_is_not_on_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = TeacherServer(tmp_path / "m.gguf", port=8765)
    command = server.command()
    assert command[1:3] == ["-m", "app.local_server.llama_server"], "not the bare llama_cpp.server"
    assert "--api_key" not in command, "any user can read a command line"
    # A key in the parent's environment never reaches the child (it gets a fresh one).
    monkeypatch.setenv(KEY_ENV, "inherited-key-0123456789-0123456789-0123")
    assert KEY_ENV not in teacher_server._child_env()


def test_the_state_file_holds_the_key_for_this_user_only(tmp_path: Path) -> None:
    server = TeacherServer(tmp_path / "m.gguf", port=8765)
    server.api_key = "k" * 43
    server._write_state()
    path = teacher_server.state_path()
    assert json.loads(path.read_text(encoding="utf-8"))["api_key"] == server.api_key
    if sys.platform != "win32":
        assert path.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    ("env_key", "args", "words"),
    [
        (None, [], "without an API key"),
        ("short", [], "without an API key"),
        ("k" * 43, ["--api_key", "x"], "from the environment"),
        ("k" * 43, ["--host", "0.0.0.0"], "127.0.0.1 only"),
    ],
)
def test_the_server_refuses_to_start_open(env_key: str | None, args: list[str], words: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != KEY_ENV}
    if env_key is not None:
        env[KEY_ENV] = env_key
    started = subprocess.run(
        [sys.executable, "-m", "app.local_server.llama_server", "--model", "absent.gguf", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    assert started.returncode == 2, started.stderr
    assert words in started.stderr
