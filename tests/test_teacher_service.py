"""The teacher service: firewall, prompt, cache, retries, breaker, outbox and records.

These tests drive the service with a scripted stand-in for the provider (its answers and failures
are the test's input); the real providers are tested in test_providers.py and against the real
local teacher server in test_teacher_server.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from app.cloud.prompt import ExampleBank, PromptExample, build_request, prompt_hash
from app.cloud.service import (
    CircuitBreaker,
    RetryPolicy,
    TeacherService,
    clean_reply,
    usage_by_provider,
)
from app.cloud.teacher import (
    TeacherRejected,
    TeacherUnavailable,
)
from app.engine.conversation import Turn
from app.store import OutboxItem, Store, TeacherReply, open_store
from tests.doubles import OneExample, ScriptedTeacher

PII = ["13812345678", "张伟", "520401029636"]
CONVERSATION = [
    Turn("customer", "你好，我叫张伟"),
    Turn("agent", "您好，请问有什么可以帮您？"),
    Turn("customer", "订单号520401029636，电话13812345678，能改地址吗"),
]


# A real PostgreSQL server, started by the tests (tests/postgres.py).
pytest_plugins = ("tests.postgres",)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """The desktop's SQLite file, and the shop's PostgreSQL database a worker drains (team mode)."""
    url = (
        f"sqlite:///{tmp_path / 'x.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    s = open_store(url)
    yield s
    s.close()


def no_sleep(_: float) -> None:
    return None


def service(teacher, store=None, **kw) -> TeacherService:
    return TeacherService(teacher, store, retry=RetryPolicy(attempts=3), sleep=no_sleep, **kw)


def test_scripted_nothing_personal_is_sent_and_the_reply_is_restored(store: Store) -> None:
    teacher = ScriptedTeacher(
        ["[NAME_1]您好，订单[ORDER_1]可以修改地址，我们会致电[PHONE_1]确认。"]
    )
    result = service(teacher, store, cost_fn=lambda u: u.input_tokens * 0.001).ask(CONVERSATION)
    sent = json.dumps(teacher.requests[0].messages, ensure_ascii=False)
    for value in PII:
        assert value not in sent
    assert "[PHONE_1]" in sent and "[ORDER_1]" in sent and "[NAME_1]" in sent
    assert result.reply == "张伟您好，订单520401029636可以修改地址，我们会致电13812345678确认。"
    with store.session() as s:
        row = s.scalars(select(TeacherReply)).one()
        assert row.sent_json == sent, "the store records exactly what was sent"
        assert row.prompt_hash == result.prompt_hash
        assert row.input_tokens == 100 and row.cost == pytest.approx(0.1)
        for value in PII:
            assert value not in row.query_text and value not in row.reply_text


def test_scripted_local_teacher_gets_the_conversation_as_is() -> None:
    teacher = ScriptedTeacher(["好的"], is_local=True)
    service(teacher).ask(CONVERSATION)
    assert "13812345678" in json.dumps(teacher.requests[0].messages, ensure_ascii=False)


def test_scripted_cache_answers_a_repeated_request_without_a_call(store: Store) -> None:
    teacher = ScriptedTeacher(["第一次的回复"])
    svc = service(teacher, store)
    first = svc.ask(CONVERSATION)
    second = svc.ask(CONVERSATION)
    assert len(teacher.requests) == 1
    assert second.cached and second.reply == first.reply


def test_scripted_retries_transient_errors_then_succeeds() -> None:
    teacher = ScriptedTeacher([TeacherUnavailable("429"), TeacherUnavailable("503"), "好的"])
    assert service(teacher).ask(CONVERSATION).reply == "好的"
    assert len(teacher.requests) == 3


def test_scripted_rejected_is_not_retried_and_bad_output_is_not_a_label(store: Store) -> None:
    teacher = ScriptedTeacher([TeacherRejected("401 bad key")])
    with pytest.raises(TeacherRejected):
        service(teacher, store).ask(CONVERSATION)
    assert len(teacher.requests) == 1
    for bad in ["   ", "[PHONE_1]。", "客服：", "长" * 5000]:
        with pytest.raises(TeacherRejected):
            service(ScriptedTeacher([bad]), store).ask(CONVERSATION)
    with store.session() as s:
        assert s.scalars(select(TeacherReply)).all() == []


def test_clean_reply_strips_role_prefixes() -> None:
    assert clean_reply("客服：亲，可以的") == "亲，可以的"


def test_scripted_outbox_keeps_a_failed_request_until_it_succeeds(store: Store) -> None:
    teacher = ScriptedTeacher([TeacherUnavailable("connection refused")] * 3)
    svc = service(teacher, store, breaker=CircuitBreaker(threshold=100))
    with pytest.raises(TeacherUnavailable):
        svc.ask(CONVERSATION, message_id=None)
    with store.session() as s:
        item = s.scalars(select(OutboxItem)).one()
        assert item.status == "pending" and "connection refused" in (item.last_error or "")
        item.next_attempt_at = item.created_at  # due now
    teacher.script = [TeacherUnavailable("still down")] * 3
    assert svc.drain_outbox() == {"done": 0, "pending": 1, "failed": 0}
    with store.session() as s:
        item = s.scalars(select(OutboxItem)).one()
        assert item.attempts == 2
        item.next_attempt_at = item.created_at
    teacher.script = ["[NAME_1]您好，可以改。"]
    assert svc.drain_outbox() == {"done": 1, "pending": 0, "failed": 0}
    with store.session() as s:
        assert s.scalars(select(OutboxItem)).one().status == "done"
        assert s.scalars(select(TeacherReply)).one().reply_text == "[NAME_1]您好，可以改。"


def test_scripted_outbox_resends_the_first_prompt_and_one_item_per_request(store: Store) -> None:
    down = ScriptedTeacher([TeacherUnavailable("connection refused")] * 6)
    invoice = PromptExample("能开发票吗", "亲，可以开的，下单时选择发票类型即可")
    asking = service(down, store, examples=OneExample(invoice), k=1, max_tokens=64)
    for _ in range(2):  # the same request failing twice stays one item
        with pytest.raises(TeacherUnavailable):
            asking.ask(CONVERSATION, message_id=None)
    with store.session() as s:
        item = s.scalars(select(OutboxItem)).one()
        assert item.attempts == 2
        assert "13812345678" in json.dumps(item.request, ensure_ascii=False), (
            "the outbox keeps the conversation as typed; redaction happens at send time"
        )
        item.next_attempt_at = item.created_at
    # `xiaoer teacher drain` has no example bank and default settings: it still sends the prompt
    # the first attempt built (examples, length), redacted for the teacher it goes to.
    back = ScriptedTeacher(["好的，可以改。"])
    draining = service(back, store)
    assert draining.drain_outbox() == {"done": 1, "failed": 0, "pending": 0}
    assert back.requests == [down.requests[0]]
    assert back.requests[0].max_tokens == 64
    sent = json.dumps(back.requests[0].messages, ensure_ascii=False)
    assert "能开发票吗" in sent and not any(value in sent for value in PII)
    # Asking again later is answered from what the drain recorded.
    assert asking.ask(CONVERSATION).cached


def test_scripted_drain_stops_at_the_first_unavailable(store: Store) -> None:
    svc = service(ScriptedTeacher([TeacherUnavailable("down")] * 9), store)
    for text in ("能便宜点吗", "什么时候发货", "可以退货吗"):
        with pytest.raises(TeacherUnavailable):
            svc.ask([Turn("customer", text)])
    with store.session() as s:
        for item in s.scalars(select(OutboxItem)):
            item.next_attempt_at = item.created_at
    teacher = ScriptedTeacher(
        ["好的", TeacherUnavailable("down again")] + [TeacherUnavailable("x")] * 9
    )
    assert service(teacher, store).drain_outbox() == {"done": 1, "failed": 0, "pending": 2}
    assert len(teacher.requests) == 1 + 3, "one retried item, then the drain stops"
    with store.session() as s:
        statuses = [i.status for i in s.scalars(select(OutboxItem).order_by(OutboxItem.id))]
    assert statuses == ["done", "pending", "pending"]


def test_scripted_circuit_breaker_fails_fast_then_half_opens() -> None:
    now = [0.0]
    breaker = CircuitBreaker(threshold=2, cooldown_s=30, clock=lambda: now[0])
    teacher = ScriptedTeacher([TeacherUnavailable("down")] * 2)
    svc = TeacherService(teacher, retry=RetryPolicy(attempts=2), breaker=breaker, sleep=no_sleep)
    with pytest.raises(TeacherUnavailable):
        svc.ask(CONVERSATION)
    with pytest.raises(TeacherUnavailable, match="pausing"):
        svc.ask(CONVERSATION)
    assert len(teacher.requests) == 2, "an open breaker makes no call"
    now[0] = 31.0
    teacher.script = ["好的"]
    assert svc.ask(CONVERSATION).reply == "好的"


def test_scripted_usage_accounting(store: Store) -> None:
    svc = service(ScriptedTeacher(["好的", "可以"]), store, cost_fn=lambda u: 0.5)
    svc.ask(CONVERSATION)
    svc.ask([Turn("customer", "能便宜点吗？")])
    usage = usage_by_provider(store)
    assert usage == {
        "scripted/m1": {"calls": 2, "input_tokens": 200, "output_tokens": 40, "cost": 1.0}
    }


def test_prompt_has_instruction_examples_and_turns() -> None:
    examples = [
        PromptExample("可以选择快递吗", "可以的亲"),
        PromptExample("能便宜吗", "已经是最低价了"),
    ]
    req = build_request(CONVERSATION, examples, lang="en")
    roles = [r for r, _ in req.messages]
    assert roles == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
    ]
    assert req.messages[0][1].startswith(
        "Assuming that you are an e-commerce customer service agent"
    )
    assert prompt_hash(req, "p", "m") != prompt_hash(req, "p", "m2")


def test_retrieved_examples_are_the_most_similar(tmp_path: Path) -> None:
    bank = ExampleBank(
        [
            PromptExample("可以选择快递吗？", "可以的，下单备注快递公司即可"),
            PromptExample("这件衣服有红色吗", "有的亲"),
            PromptExample("能开发票吗", "可以开电子发票"),
            PromptExample("发什么快递", "默认发中通快递"),
        ],
        cache_dir=tmp_path,
    )
    top = bank.retrieve("我想指定快递公司可以吗", k=2)
    assert {e.query for e in top} == {"可以选择快递吗？", "发什么快递"}
    assert bank.retrieve("发什么快递", k=1)[0].query == "发什么快递"
    assert bank.retrieve("发什么快递", k=1, leave_out_same=True)[0].query == "可以选择快递吗？"
    assert list(tmp_path.glob("examples-*.npy")), "embeddings are cached"
    assert len(bank.fixed(2)) == 2 and bank.fixed(2) == bank.fixed(2)
    with pytest.raises(ValueError):
        ExampleBank([])


# --- every byte that leaves: a capturing OpenAI-compatible server on loopback -----------------


def test_recorded_http_full_teacher_call_sends_no_pii(store: Store) -> None:
    """The real OpenAI SDK talks to a capturing HTTP server on 127.0.0.1 that plays a recorded
    answer; every request line, header and body byte it receives is checked for personal data."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from app.cloud.prompt import ExampleBank
    from app.cloud.providers import OpenAICompatibleTeacher

    captured: list[tuple[bytes, bytes]] = []
    answer = {
        "id": "c1",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {
                    "role": "assistant",
                    "content": "[NAME_1]您好，订单[ORDER_1]可以改地址，稍后致电[PHONE_1]。",
                },
            }
        ],
        "usage": {"prompt_tokens": 50, "completion_tokens": 10, "total_tokens": 60},
    }

    class Capture(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            captured.append((self.requestline.encode() + bytes(self.headers), body))
            data = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Capture)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        teacher = OpenAICompatibleTeacher(
            f"http://127.0.0.1:{server.server_address[1]}/v1", "deepseek-chat", api_key="sk-test"
        )
        bank = ExampleBank([PromptExample("我叫王芳，电话13900001111，能退货吗", "可以的王芳女士")])
        svc = TeacherService(teacher, store, bank, k=1, sleep=no_sleep)
        result = svc.ask(CONVERSATION)
    finally:
        server.shutdown()
    assert len(captured) == 1
    head, raw_body = captured[0]
    wire = (head + raw_body).decode("utf-8", errors="replace")
    body = json.dumps(json.loads(raw_body), ensure_ascii=False)  # JSON may escape non-ASCII
    for value in [*PII, "王芳", "13900001111"]:
        assert value not in wire and value not in body, value
    assert result.reply == "张伟您好，订单520401029636可以改地址，稍后致电13812345678。"


# --- every byte that leaves for Gemini: a stand-in for Gemini's API on loopback -----------------

FIXTURES = Path(__file__).parent / "fixtures" / "gemini"
# A conversation full of personal data, in the shapes customers type it (values made up; the ID
# card and bank card pass their checksums).
PII_TURNS = [
    Turn("customer", "你好，我叫张伟，手机13812345678，座机0512-68881234"),
    Turn("agent", "您好张伟先生，请问有什么可以帮您？"),
    Turn(
        "customer",
        "订单号520401029636的收货地址是江苏省苏州市姑苏区人民路100号，身份证320102199001011232，"
        "退款到卡6222021234567890128，邮箱zhangwei88@163.com，快递SF1234567890123，"
        "链接https://shop.example.com/o?token=abc123secret，电话也可以打+86 139 1234 5678",
    ),
]
PII_VALUES = [
    "张伟",
    "13812345678",
    "0512-68881234",
    "68881234",
    "520401029636",
    "人民路100号",
    "320102199001011232",
    "6222021234567890128",
    "zhangwei88",
    "SF1234567890123",
    "abc123secret",
    "139 1234 5678",
    # Another customer's, in the example dialogue the prompt shows.
    "王芳",
    "13900001111",
]


def test_recorded_gemini_stand_in_receives_no_personal_data_through_the_service(
    store: Store,
) -> None:
    """google-genai, pointed at a real HTTP server on 127.0.0.1 that plays Gemini's recorded
    generateContent answer, is driven through TeacherService; every byte it sends (request line
    and URL, headers, body) is checked for the conversation's personal data."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from app.cloud.providers import GeminiTeacher

    recorded = json.loads((FIXTURES / "generate_ok.json").read_text(encoding="utf-8"))
    answer = json.loads(json.dumps(recorded["response"]["json"]))
    # The recorded answer, its text echoing the conversation's placeholders as a teacher does.
    answer["candidates"][0]["content"]["parts"][0]["text"] = "[NAME_1]您好，已为您登记，请放心。"
    captured: list[tuple[str, bytes, bytes]] = []

    class GeminiStandIn(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            captured.append((self.path, self.requestline.encode() + bytes(self.headers), body))
            data = json.dumps(answer).encode()
            self.send_response(recorded["response"]["status"])
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), GeminiStandIn)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        teacher = GeminiTeacher(
            api_key="AIzaSy-stand-in-key-0123456789",
            base_url=f"http://127.0.0.1:{server.server_address[1]}",
            timeout=10,
        )
        bank = ExampleBank([PromptExample("我叫王芳，电话13900001111，能退货吗", "可以的王芳女士")])
        svc = TeacherService(teacher, store, bank, k=1, sleep=no_sleep)
        result = svc.ask(PII_TURNS)
    finally:
        server.shutdown()
        server.server_close()
    [(path, head, raw_body)] = captured
    assert path == recorded["request"]["path"], "the recorded endpoint was called"
    body = json.loads(raw_body)
    sent_texts = json.dumps(body, ensure_ascii=False)  # JSON may escape non-ASCII
    assert "[PHONE_1]" in sent_texts and "人民路" not in sent_texts
    assert len(body["contents"]) == 2 + len(PII_TURNS), "example pair and conversation were sent"
    for wire in (path, head.decode("utf-8", "replace"), raw_body.decode("utf-8"), sent_texts):
        leaked = [value for value in PII_VALUES if value in wire]
        assert not leaked, f"sent to Gemini: {leaked}"
    # Only this conversation's own value comes back, for the agent.
    assert result.reply == "张伟您好，已为您登记，请放心。" and result.label == result.reply
