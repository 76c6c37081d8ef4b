"""The local teacher: llama-cpp-python's OpenAI-compatible server, as a child process on 127.0.0.1.

A child process rather than a thread: the 1.5B model's memory is returned when it exits, a crash
in llama.cpp cannot take the app down, and `xiaoer teacher serve` in one terminal can serve
`xiaoer teacher ask` in another. A state file in the data dir (mode 0600) says where the server
listens, its process id, and the API key it was started with.

The local teacher reads conversations unredacted, so both directions are guarded: the server
(``app.local_server.llama_server``) answers only requests carrying its per-start random key, with CORS off;
and a client sends a conversation only to the server the state file names, after checking that its
process is alive and is that server (``verified_key``). Anything else listening on a loopback port
(another program, an SSH tunnel to another machine) is refused.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any
from urllib.parse import urlsplit

from app import paths
from app.engine import weights
from app.engine.llamacpp_backend import default_threads
from app.errors import XiaoerError
from app.fsio import atomic_write_text
from app.local_server.llama_server import KEY_ENV, MIN_KEY_CHARS

LOOPBACK = "127.0.0.1"
STATE_FILE = "teacher-server.json"
LOG_FILE = "teacher-server.log"
DEFAULT_PROFILE = "qwen2.5-1.5b"
DEFAULT_PORT = 8765
SERVER_MODULE = "app.local_server.llama_server"
# Servers started by Xiaoer before the key: still recognised by `xiaoer teacher stop`, never trusted.
_LEGACY_SERVER_MODULE = "llama_cpp.server"


class TeacherServerError(XiaoerError):
    """The local teacher could not start or stopped; the message says why and what to do."""


class TeacherServerNotRunning(TeacherServerError):
    """Nothing listens where the local teacher should be."""


class TeacherServerRefused(TeacherServerError):
    """Something listens there that is not a local teacher Xiaoer started: it gets nothing."""


def state_path() -> Path:
    return paths.data_dir() / STATE_FILE


def log_path() -> Path:
    folder = paths.data_dir() / "logs"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / LOG_FILE


def served_models(
    base_url: str, timeout: float = 1.0, api_key: str | None = None
) -> list[str] | None:
    """The model ids an OpenAI-compatible server lists at ``/v1/models``; None if it does not answer
    (or refuses ``api_key``)."""
    # No proxies: this request must stay on this machine.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    request = urllib.request.Request(base_url.rstrip("/") + "/models", headers=headers)
    try:
        with opener.open(request, timeout=timeout) as reply:
            data = json.loads(reply.read())
        return [str(entry["id"]) for entry in data["data"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
        return True


def _pid_alive(pid: int) -> bool:
    if sys.platform == "win32":
        # os.kill(pid, 0) would terminate the process on Windows; the port check decides there.
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # An exited child its parent has not reaped yet still answers signal 0.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[:1] != ["Z"]


def _is_server_process(pid: int, base_url: str, legacy: bool = False) -> bool:
    """Whether ``pid`` is still our teacher server (``legacy``: or one an older Xiaoer started)
    and not a process that reused its number."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        # No /proc (macOS, Windows): the port answering is the best evidence there is.
        return _accepts_connections(base_url)
    args = cmdline.split(b"\0")
    modules = [SERVER_MODULE, _LEGACY_SERVER_MODULE] if legacy else [SERVER_MODULE]
    return any(module.encode() in args for module in modules)


def _child_env() -> dict[str, str]:
    """The environment without variables that would override our command line in the server.

    ``python -m llama_cpp.server`` lets $HOST, $PORT and $CONFIG_FILE win over its flags, and its
    pydantic settings read any field (``api_key``, ``ssl_certfile`` …) from the environment, in
    any letter case. A shell that exports HOST must not make the teacher listen on the network.
    """
    from llama_cpp.server.settings import Settings

    blocked = {name.lower() for name in Settings.model_fields} | {"config_file", KEY_ENV.lower()}
    return {k: v for k, v in os.environ.items() if k.lower() not in blocked}


def _tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


class TeacherServer:
    """One llama.cpp server process serving one GGUF file on 127.0.0.1."""

    def __init__(
        self,
        model_path: str | Path,
        host: str = LOOPBACK,
        port: int = 0,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        chat_format: str | None = None,
    ) -> None:
        if host not in (LOOPBACK, "localhost"):
            raise TeacherServerError(
                f"The local teacher listens on {LOOPBACK} only (asked for {host}): it has no "
                "authentication, and customer conversations must not leave this machine"
            )
        if not 0 <= port <= 65535:
            raise TeacherServerError(f"Invalid port {port}")
        self.model_path = Path(model_path)
        self.port = port
        self.n_ctx = n_ctx
        self.n_threads = n_threads or default_threads()
        self.chat_format = chat_format
        # The name clients see at /v1/models and in answers: the served file's name.
        self.model = self.model_path.name
        self.log_path = log_path()
        self.api_key: str | None = None
        """A fresh random key each start; clients read it from the state file."""
        self._process: subprocess.Popen[bytes] | None = None
        self._detached = False

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible API root, e.g. ``http://127.0.0.1:8765/v1``."""
        if self.port == 0:
            raise TeacherServerError("The local teacher has no port until it is started")
        return f"http://{LOOPBACK}:{self.port}/v1"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def command(self) -> list[str]:
        """The child's command line (flags of llama-cpp-python 0.3.x ``llama_cpp.server``, which
        ``app.local_server.llama_server`` takes). The key is not on it: any user can read a command line."""
        cmd = [
            sys.executable,
            "-m",
            SERVER_MODULE,
            "--model",
            str(self.model_path),
            "--model_alias",
            self.model,
            "--host",
            LOOPBACK,
            "--port",
            str(self.port),
            "--n_ctx",
            str(self.n_ctx),
            "--n_threads",
            str(self.n_threads),
            # As in the engine: one thread count for prompt and decode, so that on a small
            # machine the prompt pass does not fight the app's own threads.
            "--n_threads_batch",
            str(self.n_threads),
            "--verbose",
            "false",
        ]
        if self.chat_format:
            cmd += ["--chat_format", self.chat_format]
        return cmd

    def start(self, timeout: float = 180.0, detach: bool = False) -> str:
        """Launch the server and wait until it answers; returns ``base_url``.

        ``detach``: the server gets its own session, so that it outlives this process and the
        terminal; `xiaoer teacher stop` (``stop_server``) ends it.
        """
        if self.is_running():
            return self.base_url
        if not self.model_path.is_file():
            raise TeacherServerError(f"The teacher model {self.model_path} does not exist")
        if self.port == 0:
            self.port = _free_port()
        elif not _port_is_free(self.port):
            raise TeacherServerError(
                f"Port {self.port} on {LOOPBACK} is in use (is a teacher already running?); "
                "choose another port"
            )
        self.api_key = secrets.token_urlsafe(32)
        detached: dict[str, Any] = {}
        if detach:
            if sys.platform == "win32":
                detached["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP
            else:
                detached["start_new_session"] = True
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**_child_env(), KEY_ENV: self.api_key},
                **detached,
            )
        deadline = time.monotonic() + timeout
        while True:
            code = self._process.poll()
            if code is not None:
                self._process = None
                raise TeacherServerError(
                    f"The local teacher exited with code {code} while starting. "
                    f"Log {self.log_path}:\n{_tail(self.log_path)}"
                )
            if served_models(self.base_url, timeout=1.0, api_key=self.api_key) is not None:
                break
            if time.monotonic() > deadline:
                self.stop()
                raise TeacherServerError(
                    f"The local teacher did not answer within {timeout:g} s and was stopped. "
                    f"Log {self.log_path}:\n{_tail(self.log_path)}"
                )
            time.sleep(0.25)
        self._write_state()
        return self.base_url

    def stop(self, grace: float = 10.0) -> None:
        """Ask the server to exit, and kill it if it has not after ``grace`` seconds."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(grace)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._clear_state(process.pid)

    def release(self) -> None:
        """Leave the server running on its own: this object no longer stops it."""
        self._process = None

    def wait(self) -> int:
        """Block until the server exits on its own; returns its exit code."""
        if self._process is None:
            raise TeacherServerError("The local teacher is not running")
        return self._process.wait()

    def __enter__(self) -> TeacherServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.base_url if self.port else "not started"
        return f"TeacherServer({self.model!r}, {where}, pid={self.pid})"

    def _write_state(self) -> None:
        state = {
            "pid": self.pid,
            "base_url": self.base_url,
            "model": self.model,
            "model_path": str(self.model_path),
            "log": str(self.log_path),
            "started": time.time(),
            "api_key": self.api_key,
        }
        write_private(state_path(), json.dumps(state, indent=2))

    @staticmethod
    def _clear_state(pid: int) -> None:
        state = _read_state()
        if state is not None and state.get("pid") == pid:
            state_path().unlink(missing_ok=True)


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` all or nothing (temp file, fsync, rename), readable and
    writable by this user only (0600): the temporary file is 0600 before the key goes in."""
    atomic_write_text(path, text, mode=0o600)


def _read_state() -> dict[str, Any] | None:
    try:
        state = json.loads(state_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def stop_server(grace: float = 15.0) -> dict[str, Any]:
    """`xiaoer teacher stop`: end the local teacher this data dir's state file names.

    Works for a detached server and for one that `xiaoer teacher serve` runs in another terminal
    (that command then exits cleanly, as on Ctrl-C). The server is asked to exit and killed if it
    has not after ``grace`` seconds.
    """
    state = _read_state()
    pid = state.get("pid") if state else None
    base_url = state.get("base_url") if state else None
    if not (isinstance(pid, int) and isinstance(base_url, str)):
        return {"stopped": False, "detail": "no local teacher is running from this data dir"}
    if not (_pid_alive(pid) and _is_server_process(pid, base_url, legacy=True)):
        state_path().unlink(missing_ok=True)
        return {"stopped": False, "detail": "the local teacher had already exited"}
    # The state file goes first: it tells a `serve` waiting on this server that the exit is asked
    # for, not a crash.
    state_path().unlink(missing_ok=True)
    os.kill(pid, signal.SIGTERM)
    if not _wait_exit(pid, grace):
        os.kill(pid, getattr(signal, "SIGKILL", signal.SIGTERM))
        _wait_exit(pid, 5.0)
    return {"stopped": True, "pid": pid, "base_url": base_url}


def _wait_exit(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _unverified(state: dict[str, Any] | None, base_url: str) -> str | None:
    """Why ``state`` does not vouch for a teacher Xiaoer started at ``base_url``; None if it does."""
    path = state_path()
    if state is None:
        return f"no local teacher was started from this data dir (no {path})"
    named = state.get("base_url")
    if not isinstance(named, str) or named.rstrip("/") != base_url.rstrip("/"):
        return f"the local teacher Xiaoer started is at {named}"
    key, pid = state.get("api_key"), state.get("pid")
    if not (isinstance(key, str) and len(key) >= MIN_KEY_CHARS):
        return "its state file holds no API key (restart it with `xiaoer teacher serve`)"
    if not (isinstance(pid, int) and _pid_alive(pid)):
        return f"the process the state file names ({pid}) has exited"
    if not _is_server_process(pid, base_url):
        return f"process {pid} is not the teacher server Xiaoer started"
    if sys.platform != "win32":
        info = path.stat()
        if info.st_uid != os.getuid() or info.st_mode & 0o077:
            return f"its state file {path} is not private to this user (mode 0600)"
    return None


def verified_key(base_url: str) -> str:
    """The API key to send to the local teacher at ``base_url``, once the state file shows that
    Xiaoer started it there and its process still runs.

    Raises TeacherServerNotRunning when nothing listens at ``base_url``, TeacherServerRefused when
    something does that cannot be verified: it must get no conversation, since the local teacher
    is sent them unredacted.
    """
    state = _read_state()
    problem = _unverified(state, base_url)
    if problem is None:
        assert state is not None
        return str(state["api_key"])
    if _accepts_connections(base_url):
        raise TeacherServerRefused(
            f"{base_url} is not a local teacher Xiaoer started ({problem}), so it is sent "
            "nothing: the local teacher sees conversations unredacted. Start the local teacher "
            "with `xiaoer teacher serve`, or use the openai-compatible provider for another "
            "server (its requests are redacted)."
        )
    raise TeacherServerNotRunning(
        f"The local teacher at {base_url} is not running; start it with `xiaoer teacher serve`"
    )


def running_server() -> str | None:
    """The base URL of a local teacher started from this data dir that is alive and answering."""
    state = _read_state()
    if state is None:
        return None
    pid, base_url, model = state.get("pid"), state.get("base_url"), state.get("model")
    if not (isinstance(pid, int) and isinstance(base_url, str)):
        return None
    if not _pid_alive(pid):
        state_path().unlink(missing_ok=True)
        return None
    if _unverified(state, base_url) is not None:
        return None
    # The port must answer with our model: after a crash another program may hold the port.
    served = served_models(base_url, api_key=str(state["api_key"]))
    if served is None:
        # llama_cpp.server answers one request at a time: while it finishes a long completion
        # (even one whose client went away) /v1/models waits. Our pid listening is enough then.
        return base_url if _accepts_connections(base_url) else None
    return base_url if model in served else None


def running_model(base_url: str) -> str | None:
    """The model our running local teacher at ``base_url`` serves, from its state file: while it
    finishes a long completion it cannot list its models."""
    state = _read_state()
    if state is None or state.get("base_url") != base_url or running_server() != base_url:
        return None
    model = state.get("model")
    return model if isinstance(model, str) and model else None


def _accepts_connections(base_url: str) -> bool:
    parts = urlsplit(base_url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), 1.0):
            return True
    except OSError:
        return False


@contextmanager
def _sigterm_as_exit() -> Iterator[None]:
    """Let a SIGTERM to `xiaoer teacher serve` unwind normally, so the child is stopped too."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def server_for(
    profile: str = DEFAULT_PROFILE,
    port: int = DEFAULT_PORT,
    *,
    n_ctx: int = 4096,
    n_threads: int | None = None,
    progress: weights.ProgressFn | None = None,
) -> TeacherServer:
    """A (not yet started) server for ``profile``: a built-in profile (assembled on first use,
    ``progress`` is told how far), a registered model name or a GGUF path."""
    if profile in weights.PROFILES:
        built_in = weights.PROFILES[profile]
        model_path = weights.provision(built_in, progress)
        chat_format: str | None = built_in.chat_format
    else:
        source = weights.resolve(profile)
        if source.kind != "gguf":
            raise TeacherServerError(f"The local teacher serves GGUF files; '{profile}' is not one")
        model_path = source.path
        chat_format = None if source.chat_format == "auto" else source.chat_format
    return TeacherServer(
        model_path, port=port, n_ctx=n_ctx, n_threads=n_threads, chat_format=chat_format
    )


def serve_forever(
    profile: str = DEFAULT_PROFILE,
    port: int = DEFAULT_PORT,
    *,
    n_ctx: int = 4096,
    n_threads: int | None = None,
    progress: weights.ProgressFn | None = None,
    on_ready: Callable[[str], None] | None = None,
    start_timeout: float = 180.0,
    detach: bool = False,
) -> None:
    """`xiaoer teacher serve`: provision the model if needed, serve it until Ctrl-C (or
    `xiaoer teacher stop`), stop cleanly.

    ``profile`` is a built-in profile (assembled on first use, ``progress`` is told how far), a
    registered model name or a GGUF path. ``on_ready`` gets the base URL once the server answers.
    ``detach``: return once the server answers and leave it running in the background.
    """
    existing = running_server()
    if existing:
        raise TeacherServerError(f"A local teacher is already running at {existing}")
    server = server_for(profile, port, n_ctx=n_ctx, n_threads=n_threads, progress=progress)
    if detach:
        with server:  # stopped only if it fails to start
            server.start(start_timeout, detach=True)
            server.release()
        if on_ready is not None:
            on_ready(server.base_url)
        return
    with _sigterm_as_exit(), server:
        server.start(start_timeout)
        if on_ready is not None:
            on_ready(server.base_url)
        try:
            code = server.wait()
        except KeyboardInterrupt:
            return
        if _read_state() is None:
            return  # `xiaoer teacher stop` removed the state file and ended the server
        raise TeacherServerError(
            f"The local teacher exited unexpectedly with code {code}. "
            f"Log {server.log_path}:\n{_tail(server.log_path)}"
        )
