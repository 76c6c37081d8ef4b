"""Cloud teacher providers against real HTTP servers on 127.0.0.1, and API keys in the keyring.

The OpenAI-compatible tests talk to a tiny real HTTP server that answers like DeepSeek or vLLM
would (the SDK is not mocked). Gemini cannot be reached from here, so its tests replay recorded
exchanges from tests/fixtures/gemini/ through a local server and check both directions: what
google-genai sent, and how its answer was read. Those tests are named ``test_gemini_recorded_*``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import keyring
import keyring.backend
import keyring.backends.fail
import keyring.errors
import pytest

from app.cloud import providers, secrets
from app.cloud.providers import (
    DEFAULT_GEMINI_MODEL,
    GEMINI_THINKING_HEADROOM,
    GeminiTeacher,
    OpenAICompatibleTeacher,
    TeacherConfig,
    TeacherConfigError,
    local_teacher,
    make_teacher,
)
from app.cloud.teacher import (
    TeacherRejected,
    TeacherRequest,
    TeacherUnavailable,
    Usage,
)
from tests.doubles import MemoryKeyring

pytest.importorskip("openai", reason="the openai SDK is a core dependency")
pytest.importorskip("google.genai", reason="google-genai is a core dependency")

FIXTURES = Path(__file__).parent / "fixtures" / "gemini"
KEY = "sk-test-0123456789abcdefSECRET"
GEMINI_KEY = "AIzaSyTEST-0123456789-abcdefSECRET"
QUESTION = TeacherRequest(
    messages=(
        ("system", "你是京东店铺的客服小二，回答简短、礼貌。"),
        ("user", "这款保温杯能装开水吗？"),
        ("assistant", "可以的亲，304不锈钢内胆，耐高温。"),
        ("user", "今天下单什么时候发货？"),
    ),
    max_tokens=128,
    temperature=0.3,
)


# --- a real HTTP server on 127.0.0.1 --------------------------------------------------------------


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class FakeApi:
    """Answers by the first path segment: /<scenario>/v1/... ; records every request."""

    port: int
    seen: list[Seen] = field(default_factory=list)

    def url(self, scenario: str, suffix: str = "/v1") -> str:
        return f"http://127.0.0.1:{self.port}/{scenario}{suffix}"


def completion(content: str | None, finish: str = "stop") -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_730_000_000,
        "model": "deepseek-chat",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": finish,
            }
        ],
        "usage": {"prompt_tokens": 31, "completion_tokens": 12, "total_tokens": 43},
    }


def error(message: str, kind: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


OPENAI_SCENARIOS: dict[str, tuple[int, Any]] = {
    "ok": (200, completion("  亲，今天下单明天发货哦～ ")),
    "rate_limited": (429, error("Rate limit reached for requests", "rate_limit_error")),
    "server_error": (500, error("The server had an error", "server_error")),
    "overloaded": (503, error("Service Unavailable", "server_error")),
    # Some gateways quote the whole key back; the message must not carry it on.
    "bad_key": (401, error(f"Incorrect API key provided: {KEY}", "invalid_request_error")),
    "bad_request": (400, error("Model Not Exist", "invalid_request_error")),
    "malformed": (200, b"<html>upstream returned garbage"),
    "empty": (200, completion("   \n")),
    "null_content": (200, completion(None)),
    "no_choices": (200, {**completion("x"), "choices": []}),
    "filtered": (200, completion("", finish="content_filter")),
}


class Handler(BaseHTTPRequestHandler):
    api: FakeApi

    def do_GET(self) -> None:
        scenario = self.path.strip("/").split("/")[0]
        if self.path.endswith("/models") and scenario == "ok":
            self._send(200, {"object": "list", "data": [{"id": "served-file.gguf"}]})
        else:
            self._send(404, error("not found", "not_found"))

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw
        self.api.seen.append(Seen(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
        scenario = self.path.strip("/").split("/")[0]
        if scenario == "slow":
            time.sleep(3)
            scenario = "ok"
        if scenario.startswith("gemini-"):
            exchange = json.loads((FIXTURES / f"{scenario[7:]}.json").read_text(encoding="utf-8"))
            self._send(exchange["response"]["status"], exchange["response"]["json"])
            return
        status, payload = OPENAI_SCENARIOS[scenario]
        self._send(status, payload)

    def _send(self, status: int, payload: Any) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        # The timeout tests' client gives up before the answer is written.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[FakeApi]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    api = FakeApi(port=httpd.server_address[1])
    Handler.api = api
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield api
    httpd.shutdown()
    httpd.server_close()


@contextlib.contextmanager
def serving(port: int = 0) -> Iterator[int]:
    """Another server answering like the fake API (same recorder), on ``port``; yields its port."""
    httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield int(httpd.server_address[1])
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def api(server: FakeApi) -> FakeApi:
    server.seen.clear()
    return server


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def openai_teacher(api: FakeApi, scenario: str, **kwargs: Any) -> OpenAICompatibleTeacher:
    kwargs.setdefault("api_key", KEY)
    return OpenAICompatibleTeacher(api.url(scenario), "deepseek-chat", timeout=5.0, **kwargs)


# --- OpenAI-compatible: real HTTP, real SDK -------------------------------------------------------


def test_openai_compatible_valid_completion(api: FakeApi) -> None:
    teacher = openai_teacher(api, "ok", price_per_1k_input=0.002, price_per_1k_output=0.008)
    answer = teacher.complete(QUESTION)
    assert answer.text == "亲，今天下单明天发货哦～"
    assert answer.provider == "openai-compatible"
    assert answer.model == "deepseek-chat"
    assert answer.usage == Usage(input_tokens=31, output_tokens=12)
    assert teacher.cost(answer.usage) == pytest.approx(31 / 1000 * 0.002 + 12 / 1000 * 0.008)
    [request] = api.seen
    assert request.path == "/ok/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.body["model"] == "deepseek-chat"
    assert request.body["max_tokens"] == 128
    assert request.body["temperature"] == 0.3
    assert [m["role"] for m in request.body["messages"]] == ["system", "user", "assistant", "user"]
    assert request.body["messages"][3]["content"] == "今天下单什么时候发货？"


@pytest.mark.parametrize("scenario", ["rate_limited", "server_error", "overloaded"])
def test_openai_compatible_retryable_statuses_are_unavailable(api: FakeApi, scenario: str) -> None:
    with pytest.raises(TeacherUnavailable) as info:
        openai_teacher(api, scenario).complete(QUESTION)
    status = OPENAI_SCENARIOS[scenario][0]
    assert f"HTTP {status}" in str(info.value)
    assert len(api.seen) == 1, "the SDK's own retries must be off"


@pytest.mark.parametrize(
    ("scenario", "words"),
    [
        ("bad_key", "refused the API key (HTTP 401)"),
        ("bad_request", "rejected the request (HTTP 400): Model Not Exist"),
        ("malformed", "malformed"),
        ("empty", "empty answer"),
        ("null_content", "empty answer"),
        ("no_choices", "without choices"),
        ("filtered", "content filter"),
    ],
)
def test_openai_compatible_rejections(api: FakeApi, scenario: str, words: str) -> None:
    with pytest.raises(TeacherRejected) as info:
        openai_teacher(api, scenario).complete(QUESTION)
    assert words in str(info.value)
    assert len(api.seen) == 1


def test_openai_compatible_key_never_in_errors_logs_or_repr(
    api: FakeApi, caplog: pytest.LogCaptureFixture
) -> None:
    teacher = openai_teacher(api, "bad_key")
    with caplog.at_level(logging.DEBUG), pytest.raises(TeacherRejected) as info:
        teacher.complete(QUESTION)
    assert api.seen[0].headers["authorization"] == f"Bearer {KEY}", "the key was sent"
    assert "Incorrect API key provided: ***" in str(info.value), "the server's words are kept"
    assert caplog.records, "the SDK logs at debug level, so the check below means something"
    exposed = [
        str(info.value),
        repr(info.value),
        repr(info.value.__cause__),
        repr(teacher),
        caplog.text,
    ]
    assert not [text for text in exposed if KEY in text]
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_openai_compatible_connection_refused_is_unavailable_and_quick() -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    started = time.monotonic()
    with pytest.raises(TeacherUnavailable, match="Could not connect"):
        OpenAICompatibleTeacher(url, "m", api_key=KEY, timeout=5.0).complete(QUESTION)
    assert time.monotonic() - started < 3


def test_openai_compatible_timeout_is_unavailable(api: FakeApi) -> None:
    teacher = OpenAICompatibleTeacher(api.url("slow"), "m", api_key=KEY, timeout=0.5)
    started = time.monotonic()
    with pytest.raises(TeacherUnavailable, match=r"did not answer within 0\.5 s"):
        teacher.complete(QUESTION)
    assert time.monotonic() - started < 2.5


def test_openai_compatible_without_key_never_sends_openai_env_key(
    api: FakeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-the-environment")
    openai_teacher(api, "ok", api_key=None).complete(QUESTION)
    assert "sk-from-the-environment" not in api.seen[0].headers.get("authorization", "")


def test_local_teacher_refuses_a_loopback_server_xiaoer_did_not_start(api: FakeApi) -> None:
    """The local teacher is sent conversations unredacted: whatever else listens on a loopback
    port (another program, an SSH tunnel to another machine) must get none of them."""
    from app.local_server import teacher_server as server

    url = api.url("ok")
    for model in (None, "x"):
        with pytest.raises(TeacherConfigError, match="not a local teacher Xiaoer started"):
            local_teacher(url, model=model)
    with pytest.raises(TeacherConfigError, match="not a local teacher Xiaoer started"):
        make_teacher(TeacherConfig(provider="local", base_url=url, model="x"))
    # A state file naming it is not enough: this process (pytest) is not the teacher server.
    state = {"pid": os.getpid(), "base_url": url, "model": "x", "api_key": "k" * 43}
    server.write_private(server.state_path(), json.dumps(state))
    with pytest.raises(TeacherConfigError, match=f"process {os.getpid()} is not the teacher"):
        local_teacher(url, model="x")
    assert server.running_server() is None
    # Nor does a teacher made while nothing listened send anything once something does.
    port = closed_port()
    teacher = local_teacher(f"http://127.0.0.1:{port}/ok/v1", model="x")
    with pytest.raises(TeacherUnavailable, match="xiaoer teacher serve"):
        teacher.complete(QUESTION)
    # Another program takes the port meanwhile.
    with serving(port), pytest.raises(TeacherRejected, match="not a local teacher Xiaoer started"):
        teacher.complete(QUESTION)
    assert api.seen == [], "not one conversation reached the impostor"
    with pytest.raises(TeacherConfigError, match=r"127\.0\.0\.1"):
        local_teacher("http://192.168.1.20:8765/v1", model="x")
    with pytest.raises(TeacherUnavailable, match="xiaoer teacher serve"):
        local_teacher(f"http://127.0.0.1:{closed_port()}/v1")


# --- Gemini: recorded exchanges replayed on 127.0.0.1 ---------------------------------------------


def exchange(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    return data


def gemini(api: FakeApi, name: str, **kwargs: Any) -> GeminiTeacher:
    kwargs.setdefault("api_key", GEMINI_KEY)
    return GeminiTeacher(base_url=api.url(f"gemini-{name}", ""), timeout=5.0, **kwargs)


def test_gemini_recorded_request_and_answer(api: FakeApi) -> None:
    recorded = exchange("generate_ok")
    teacher = gemini(api, "generate_ok", price_per_1k_input=0.00125, price_per_1k_output=0.005)
    answer = teacher.complete(QUESTION)

    [sent] = api.seen
    assert sent.path == "/gemini-generate_ok" + recorded["request"]["path"]
    assert sent.body == recorded["request"]["json"]
    assert sent.headers["x-goog-api-key"] == GEMINI_KEY
    assert GEMINI_KEY not in sent.path, "the key goes in the header, not the URL"
    text = recorded["response"]["json"]["candidates"][0]["content"]["parts"][0]["text"]
    assert answer.text == text
    assert (answer.provider, answer.model) == ("gemini", DEFAULT_GEMINI_MODEL)
    # The default model thinks: thinking tokens are billed as output, so they are counted.
    assert answer.usage == Usage(input_tokens=46, output_tokens=24 + 31)
    assert teacher.cost(answer.usage) == pytest.approx(0.046 * 0.00125 + 0.055 * 0.005)


def test_gemini_recorded_default_is_a_current_model_with_room_to_think(api: FakeApi) -> None:
    # The paper's Gemini 1.5 Pro is shut down; the default must not be a retired model.
    assert DEFAULT_GEMINI_MODEL == "gemini-3.8-flash"
    gemini(api, "generate_ok").complete(QUESTION)
    config = api.seen[0].body["generationConfig"]
    assert config["thinkingConfig"] == {"thinking_level": "LOW"}  # as google-genai sends it
    assert config["maxOutputTokens"] == QUESTION.max_tokens + GEMINI_THINKING_HEADROOM


def test_gemini_recorded_system_messages_are_joined_into_one_instruction(api: FakeApi) -> None:
    request = TeacherRequest(
        messages=(("system", "规则一"), ("user", "你好"), ("system", "规则二")), max_tokens=16
    )
    gemini(api, "generate_ok", model="gemini-2.0-flash").complete(request)
    [sent] = api.seen
    assert sent.path.endswith("/v1beta/models/gemini-2.0-flash:generateContent")
    assert sent.body["systemInstruction"]["parts"] == [{"text": "规则一\n\n规则二"}]
    assert sent.body["contents"] == [{"parts": [{"text": "你好"}], "role": "user"}]
    assert sent.body["generationConfig"] == {"maxOutputTokens": 16, "temperature": 0.3}, (
        "models before Gemini 3 get no thinking settings and no headroom"
    )


@pytest.mark.parametrize(
    ("name", "error", "words"),
    [
        ("blocked_prompt", TeacherRejected, "blocked the prompt (SAFETY)"),
        ("safety_finish", TeacherRejected, "finish reason SAFETY"),
        ("empty_text", TeacherRejected, "empty answer"),
        ("invalid_key", TeacherRejected, "refused the API key (HTTP 400)"),
        ("bad_request", TeacherRejected, "rejected the request (HTTP 400)"),
        ("rate_limited", TeacherUnavailable, "HTTP 429"),
        ("overloaded", TeacherUnavailable, "HTTP 503"),
    ],
)
def test_gemini_recorded_failures_are_mapped(
    api: FakeApi, name: str, error: type[Exception], words: str
) -> None:
    with pytest.raises(error) as info:
        gemini(api, name).complete(QUESTION)
    assert words in str(info.value)
    assert len(api.seen) == 1, "the SDK's own retries must be off"
    assert api.seen[0].path == f"/gemini-{name}" + exchange(name)["request"]["path"]


def test_gemini_recorded_key_never_in_errors_logs_or_repr(
    api: FakeApi, caplog: pytest.LogCaptureFixture
) -> None:
    teacher = gemini(api, "invalid_key")
    with caplog.at_level(logging.DEBUG), pytest.raises(TeacherRejected) as info:
        teacher.complete(QUESTION)
    assert api.seen[0].headers["x-goog-api-key"] == GEMINI_KEY
    assert "API key not valid" in str(info.value)
    exposed = [str(info.value), repr(info.value), repr(teacher), caplog.text]
    assert not [text for text in exposed if GEMINI_KEY in text]
    assert info.value.__suppress_context__


def test_gemini_recorded_connection_refused_is_unavailable() -> None:
    teacher = GeminiTeacher(api_key=GEMINI_KEY, base_url=f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(TeacherUnavailable, match="Could not connect to Gemini"):
        teacher.complete(QUESTION)


def test_gemini_recorded_timeout_is_unavailable(api: FakeApi) -> None:
    teacher = GeminiTeacher(api_key=GEMINI_KEY, base_url=api.url("slow", ""), timeout=0.5)
    with pytest.raises(TeacherUnavailable, match="did not answer"):
        teacher.complete(QUESTION)


def test_gemini_without_key_is_rejected_before_any_request(
    api: FakeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_API_KEY", "from-google-env")
    with pytest.raises(TeacherRejected, match="XIAOER_GEMINI_API_KEY"):
        gemini(api, "generate_ok", api_key=None).complete(QUESTION)
    assert api.seen == []


# --- API keys in the keyring ----------------------------------------------------------------------


class PlaintextKeyring(MemoryKeyring):
    """Stands in for keyrings.alt's file backend that writes passwords in clear text."""


@pytest.fixture
def use_backend() -> Iterator[Any]:
    previous = keyring.get_keyring()

    def use(backend: keyring.backend.KeyringBackend) -> keyring.backend.KeyringBackend:
        keyring.set_keyring(backend)
        return backend

    yield use
    keyring.set_keyring(previous)


@pytest.fixture
def memory_keyring(use_backend: Any, monkeypatch: pytest.MonkeyPatch) -> MemoryKeyring:
    for provider in ("gemini", "openai-compatible"):
        monkeypatch.delenv(secrets.env_var(provider), raising=False)
    backend: MemoryKeyring = use_backend(MemoryKeyring())
    return backend


def test_keyring_round_trip(memory_keyring: MemoryKeyring) -> None:
    assert secrets.keyring_warning() is None
    assert secrets.get_api_key("gemini") is None
    secrets.set_api_key("gemini", f"  {GEMINI_KEY}\n")
    assert memory_keyring.store == {
        ("xiaoer", "gemini@generativelanguage.googleapis.com"): GEMINI_KEY
    }
    assert secrets.get_api_key("gemini") == GEMINI_KEY
    secrets.delete_api_key("gemini")
    secrets.delete_api_key("gemini")  # forgetting twice is fine
    assert secrets.get_api_key("gemini") is None


def test_env_var_overrides_the_keyring(
    memory_keyring: MemoryKeyring, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert secrets.env_var("openai-compatible") == "XIAOER_OPENAI_COMPATIBLE_API_KEY"
    assert secrets.env_var("gemini") == "XIAOER_GEMINI_API_KEY"
    deepseek = "https://api.deepseek.com/v1"
    secrets.set_api_key("openai-compatible", "from-keyring", deepseek)
    monkeypatch.setenv("XIAOER_OPENAI_COMPATIBLE_API_KEY", "from-env")
    assert secrets.get_api_key("openai-compatible", deepseek) == "from-env"
    monkeypatch.setenv("XIAOER_OPENAI_COMPATIBLE_API_KEY", "")
    assert secrets.get_api_key("openai-compatible", deepseek) == "from-keyring"


def test_set_api_key_refuses_without_a_secure_backend(
    use_backend: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_backend(keyring.backends.fail.Keyring())
    monkeypatch.delenv("XIAOER_GEMINI_API_KEY", raising=False)
    warning = secrets.keyring_warning()
    assert warning is not None
    assert "No secure keyring is available" in warning
    assert "keyring.backends.fail.Keyring" in warning
    assert "XIAOER_GEMINI_API_KEY" in warning
    with pytest.raises(secrets.SecretsError) as info:
        secrets.set_api_key("gemini", GEMINI_KEY)
    assert str(info.value) == warning
    assert GEMINI_KEY not in str(info.value)
    assert secrets.get_api_key("gemini") is None  # reading just finds nothing


def test_plaintext_backend_is_refused(use_backend: Any) -> None:
    backend = use_backend(PlaintextKeyring())
    warning = secrets.keyring_warning()
    assert warning is not None and "plain text" in warning
    with pytest.raises(secrets.SecretsError, match="plain text"):
        secrets.set_api_key("gemini", GEMINI_KEY)
    assert backend.store == {}


def test_a_locked_keyring_error_does_not_quote_the_key(use_backend: Any) -> None:
    class LockedKeyring(MemoryKeyring):
        def set_password(self, service: str, username: str, password: str) -> None:
            raise keyring.errors.KeyringLocked(f"locked while storing {password}")

    use_backend(LockedKeyring())
    with pytest.raises(secrets.SecretsError, match="unlock the keyring") as info:
        secrets.set_api_key("gemini", GEMINI_KEY)
    assert GEMINI_KEY not in str(info.value) and info.value.__suppress_context__


# --- the saved teacher settings -------------------------------------------------------------------


def test_config_round_trip_holds_no_secret(memory_keyring: MemoryKeyring) -> None:
    secrets.set_api_key("openai-compatible", KEY, "https://api.deepseek.com/v1")
    config = TeacherConfig(
        provider="openai-compatible",
        model="deepseek-chat",
        base_url="https://api.deepseek.com/v1",
        price_per_1k_input=0.002,
        price_per_1k_output=0.008,
    )
    path = providers.save_config(config)
    assert path.name == "settings.json"  # the teacher section of the one settings file
    assert KEY not in path.read_text(encoding="utf-8")
    assert "key" not in json.loads(path.read_text(encoding="utf-8"))
    assert providers.load_config() == config


def test_config_defaults_to_local_and_refuses_a_key_field() -> None:
    assert providers.load_config() == TeacherConfig(provider="local")
    providers.config_path().write_text(
        json.dumps({"version": 2, "teacher": {"provider": "gemini", "api_key": "x"}})
    )
    with pytest.raises(TeacherConfigError, match="keyring"):
        providers.load_config()
    providers.config_path().write_text("{not json")
    with pytest.raises(TeacherConfigError, match="unreadable"):
        providers.load_config()


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"provider": "openai"}, "Unknown teacher provider"),
        ({"provider": "openai-compatible", "model": "m"}, "needs base_url and model"),
        ({"provider": "gemini", "timeout": 0}, "timeout must be positive"),
        ({"provider": "gemini", "price_per_1k_input": -1}, "cannot be negative"),
        ({"provider": "gemini", "base_url": "ftp://x"}, "http:// or https://"),
        ({"provider": "local", "base_url": "http://10.0.0.2:8765/v1"}, "127.0.0.1"),
        (
            {"provider": "openai-compatible", "model": "m", "base_url": "http://api.x.com/v1"},
            "plain http:// to another machine",
        ),
        ({"provider": "gemini", "base_url": "http://192.168.1.9:8080"}, "use https://"),
    ],
)
def test_config_validation(kwargs: dict[str, Any], words: str) -> None:
    with pytest.raises(TeacherConfigError, match=words):
        TeacherConfig(**kwargs)


def test_make_teacher_uses_the_keyring_key(api: FakeApi, memory_keyring: MemoryKeyring) -> None:
    secrets.set_api_key("openai-compatible", KEY, api.url("ok"))
    config = TeacherConfig(
        provider="openai-compatible", model="deepseek-chat", base_url=api.url("ok"), timeout=5
    )
    teacher = make_teacher(config)
    assert (teacher.provider, teacher.is_local) == ("openai-compatible", False)
    teacher.complete(QUESTION)
    assert api.seen[0].headers["authorization"] == f"Bearer {KEY}"


def test_a_key_saved_for_one_host_is_never_sent_to_another(
    api: FakeApi, memory_keyring: MemoryKeyring
) -> None:
    # Gemini: the key saved for Google's host; a base_url elsewhere finds none.
    secrets.set_api_key("gemini", GEMINI_KEY)
    with pytest.raises(TeacherRejected, match=r"No API key is set for Gemini at 127\.0\.0\.1:"):
        make_teacher(TeacherConfig(provider="gemini", base_url=api.url("gemini-generate_ok", "")))
    assert api.seen == []
    assert secrets.get_api_key("gemini") == GEMINI_KEY
    assert secrets.get_api_key("gemini", "https://gemini-proxy.example/") is None
    # openai-compatible: saved for one server, the base_url moved to another.
    secrets.set_api_key("openai-compatible", KEY, api.url("ok"))
    with serving() as other_port:
        elsewhere = f"http://127.0.0.1:{other_port}/ok/v1"
        moved = TeacherConfig(provider="openai-compatible", model="m", base_url=elsewhere)
        make_teacher(moved).complete(QUESTION)
    [request] = api.seen
    assert request.headers["host"] == f"127.0.0.1:{other_port}"
    assert KEY not in json.dumps(request.headers), "the key stayed with the host it was saved for"
    with pytest.raises(secrets.SecretsError, match="set its base URL first"):
        secrets.set_api_key("openai-compatible", KEY)


def test_a_key_saved_per_provider_moves_only_to_the_default_host(
    api: FakeApi, memory_keyring: MemoryKeyring
) -> None:
    """Keys an earlier version saved under the provider name alone."""
    keyring.set_password("xiaoer", "gemini", GEMINI_KEY)
    keyring.set_password("xiaoer", "openai-compatible", KEY)
    # openai-compatible has no default host: where the old key belonged is unknown.
    config = TeacherConfig(provider="openai-compatible", model="m", base_url=api.url("ok"))
    with pytest.raises(TeacherRejected, match="not tied to a host") as info:
        make_teacher(config)
    assert KEY not in str(info.value)
    assert api.seen == []
    secrets.set_api_key("openai-compatible", KEY, api.url("ok"))
    make_teacher(config).complete(QUESTION)
    assert api.seen[0].headers["authorization"] == f"Bearer {KEY}"
    # Gemini's old key was for Google's host, the only one it knew: it moves there, only there.
    assert secrets.get_api_key("gemini", "https://gemini-proxy.example/") is None
    assert secrets.get_api_key("gemini") == GEMINI_KEY
    assert ("xiaoer", "gemini") not in memory_keyring.store
    assert memory_keyring.store[("xiaoer", "gemini@generativelanguage.googleapis.com")] == (
        GEMINI_KEY
    )


def test_plain_http_to_another_machine_is_refused() -> None:
    for url in ("http://api.deepseek.com/v1", "http://10.0.0.5:8000/v1", "http://[fe80::1]/v1"):
        with pytest.raises(TeacherConfigError, match="use https://"):
            OpenAICompatibleTeacher(url, "m", api_key=KEY)
        with pytest.raises(TeacherConfigError, match="use https://"):
            GeminiTeacher(api_key=GEMINI_KEY, base_url=url)
    for url in ("http://127.0.0.1:8000/v1", "http://localhost:8000/v1", "http://[::1]:8000/v1"):
        assert OpenAICompatibleTeacher(url, "m").base_url == url
    assert OpenAICompatibleTeacher("https://api.deepseek.com/v1", "m").base_url


def test_make_teacher_gemini(
    api: FakeApi, memory_keyring: MemoryKeyring, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = TeacherConfig(provider="gemini", base_url=api.url("gemini-generate_ok", ""))
    with pytest.raises(TeacherRejected, match="No API key is set for Gemini"):
        make_teacher(config)
    monkeypatch.setenv("XIAOER_GEMINI_API_KEY", GEMINI_KEY)
    teacher = make_teacher(config)
    assert (teacher.provider, teacher.model) == ("gemini", DEFAULT_GEMINI_MODEL)
    assert teacher.complete(QUESTION).usage.output_tokens == 24 + 31
    assert api.seen[0].headers["x-goog-api-key"] == GEMINI_KEY


def test_make_teacher_local_without_a_running_server_is_unavailable() -> None:
    with pytest.raises(TeacherUnavailable, match="xiaoer teacher serve"):
        make_teacher(TeacherConfig(provider="local"))


def test_make_teacher_local_gets_time_for_a_slow_cpu() -> None:
    # 30 s suits a cloud API; the 1.5B teacher on a busy 2-core machine timed out at 30 s on long
    # JDDC prompts during a real labeling run.
    base = f"http://127.0.0.1:{closed_port()}/v1"
    local = make_teacher(TeacherConfig(provider="local", base_url=base, model="m.gguf"))
    assert isinstance(local, OpenAICompatibleTeacher)
    assert local.timeout == 180.0
    longer = TeacherConfig(provider="local", base_url=base, model="m.gguf", timeout=600)
    assert make_teacher(longer).timeout == 600  # type: ignore[attr-defined]
    cloud = TeacherConfig(provider="openai-compatible", base_url=base, model="deepseek-chat")
    assert make_teacher(cloud).timeout == 30.0  # type: ignore[attr-defined]


# A stand-in for a busy teacher server: a process started as Xiaoer starts it (its command line
# names the server module) whose port accepts connections and never answers.
BUSY_SERVER = """
import socket, time
sock = socket.socket()
sock.bind(("127.0.0.1", 0))
sock.listen()
print(sock.getsockname()[1], flush=True)
time.sleep(120)
"""


def test_stand_in_busy_local_teacher_is_still_used_with_the_model_its_state_file_names() -> None:
    """llama_cpp.server answers one request at a time: while it finishes a long completion for
    one client, /v1/models waits, and a second client must not call it "not running"."""
    import subprocess
    import sys

    from app.local_server import teacher_server as server

    busy = subprocess.Popen(
        [sys.executable, "-c", BUSY_SERVER, "-m", server.SERVER_MODULE],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert busy.stdout is not None
        base_url = f"http://127.0.0.1:{int(busy.stdout.readline())}/v1"
        state = {
            "pid": busy.pid,
            "base_url": base_url,
            "model": "teacher.gguf",
            "api_key": "k" * 43,
        }
        server.write_private(server.state_path(), json.dumps(state))
        teacher = make_teacher(TeacherConfig(provider="local"))
        assert isinstance(teacher, OpenAICompatibleTeacher)
        assert (teacher.model, teacher.base_url) == ("teacher.gguf", base_url)
        if sys.platform != "win32":  # a state file others could read or write vouches for nothing
            server.state_path().chmod(0o644)
            with pytest.raises(TeacherConfigError, match="not private"):
                make_teacher(TeacherConfig(provider="local", base_url=base_url, model="m"))
            server.state_path().chmod(0o600)
    finally:
        busy.kill()
        busy.wait()
    with pytest.raises(TeacherUnavailable, match="xiaoer teacher serve"):
        make_teacher(TeacherConfig(provider="local"))  # the process and its port are gone
