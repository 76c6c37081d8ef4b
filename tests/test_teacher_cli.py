"""`xiaoer teacher ask|drain|status` and the outbox, end to end through the CLI.

The teacher is a scripted OpenAI-compatible HTTP server on 127.0.0.1 (its answers are the test's
input), reached through the real OpenAI SDK; "down" is a port nothing listens on.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest
from sqlalchemy import select

from app.cli import main
from app.store import OutboxItem, TeacherReply, open_store

MODEL = "scripted-teacher.gguf"
REPLY = "亲，可以选择的，下单时在配送方式里选快递公司就好。"


class Handler(BaseHTTPRequestHandler):
    asked: ClassVar[list[dict[str, Any]]] = []

    def do_GET(self) -> None:
        self._send({"object": "list", "data": [{"id": MODEL}]})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        self.asked.append(body)
        self._send(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 1_730_000_000,
                "model": MODEL,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": REPLY},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 40, "completion_tokens": 15, "total_tokens": 55},
            }
        )

    def _send(self, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def teacher_url() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    Handler.asked = []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()
    httpd.server_close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def use_teacher(capsys: pytest.CaptureFixture[str], base_url: str) -> None:
    # Not "local": the local provider sends only to the server Xiaoer started (with its key).
    code, _, _ = run(
        capsys,
        "teacher",
        "config",
        "--provider",
        "openai-compatible",
        "--base-url",
        base_url,
        "--model",
        MODEL,
    )
    assert code == 0


def make_due() -> None:
    """Queued items wait a few seconds before their first retry; the test does not."""
    store = open_store()
    with store.session() as session:
        for item in session.scalars(select(OutboxItem)):
            item.next_attempt_at = item.created_at
    store.close()


def test_scripted_question_asked_while_the_teacher_is_down_is_answered_by_drain(
    capsys: pytest.CaptureFixture[str], teacher_url: str
) -> None:
    use_teacher(capsys, f"http://127.0.0.1:{closed_port()}/v1")
    code, out, err = run(capsys, "teacher", "ask", "可以选择快递吗？")
    assert code == 1 and out == ""
    assert "Could not connect" in err and "xiaoer teacher drain" in err
    code, out, _ = run(capsys, "teacher", "status")
    assert json.loads(out)["outbox"] == {"pending": 1, "done": 0, "failed": 0}

    make_due()
    code, out, _ = run(capsys, "teacher", "drain")
    assert (code, json.loads(out)) == (0, {"done": 0, "failed": 0, "pending": 1}), "still down"

    use_teacher(capsys, teacher_url)  # the teacher is back
    make_due()
    code, out, _ = run(capsys, "teacher", "drain")
    assert (code, json.loads(out)) == (0, {"done": 1, "failed": 0, "pending": 0})
    assert Handler.asked[0]["messages"][-1] == {"role": "user", "content": "可以选择快递吗？"}
    store = open_store()
    with store.session() as session:
        row = session.scalars(select(TeacherReply)).one()
        assert (row.reply_text, row.model, row.output_tokens) == (REPLY, MODEL, 15)
    store.close()

    # Asking again is answered from what the drain recorded, without a second call.
    code, out, _ = run(capsys, "teacher", "ask", "可以选择快递吗？")
    assert (code, out.strip()) == (0, REPLY)
    assert len(Handler.asked) == 1


def test_scripted_ask_sends_queued_questions_once_the_teacher_answers(
    capsys: pytest.CaptureFixture[str], teacher_url: str
) -> None:
    use_teacher(capsys, f"http://127.0.0.1:{closed_port()}/v1")
    for question in ("能便宜点吗？", "什么时候发货？"):
        assert run(capsys, "teacher", "ask", question)[0] == 1
    use_teacher(capsys, teacher_url)
    make_due()
    code, out, err = run(capsys, "teacher", "ask", "可以选择快递吗？", "--drain", "1")
    assert (code, out.strip()) == (0, REPLY)
    assert json.loads(err.split("outbox: ", 1)[1]) == {"done": 1, "failed": 0, "pending": 1}
    asked = [body["messages"][-1]["content"] for body in Handler.asked]
    assert asked == ["可以选择快递吗？", "能便宜点吗？"], "the answer first, then the oldest queued"


def test_set_key_keeps_the_key_for_one_host(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    import keyring

    from tests.doubles import MemoryKeyring

    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    try:
        monkeypatch.setattr("sys.stdin", io.StringIO("sk-cli-secret\n"))
        code, out, _ = run(
            capsys, "teacher", "set-key", "openai-compatible", "--base-url", "https://api.x.com/v1"
        )
        assert code == 0 and "api.x.com" in out and "sk-cli-secret" not in out
        assert backend.store == {("xiaoer", "openai-compatible@api.x.com"): "sk-cli-secret"}
        # Without a server to keep it for (the configured teacher is the local one): refused.
        monkeypatch.setattr("sys.stdin", io.StringIO("sk-other\n"))
        code, _, err = run(capsys, "teacher", "set-key", "openai-compatible")
        assert code != 0 and "base URL" in err
        assert len(backend.store) == 1
    finally:
        keyring.set_keyring(previous)
