"""Batch labeling: corpus readers, resumability after a kill, progress. The provider is a
scripted stand-in (see test_teacher_service.py); the real local teacher labels in
test_teacher_server.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from app.cloud.label import done_ids, label_corpus, progress_line, read_tasks
from app.cloud.prompt import Example
from app.cloud.service import CircuitBreaker, RetryPolicy, TeacherService
from app.cloud.teacher import TeacherUnavailable
from app.store import OutboxItem, TeacherReply, open_store
from tests.test_teacher_service import ScriptedTeacher

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def write_jsonl(path: Path, n: int) -> Path:
    lines = [
        json.dumps(
            {"id": f"q{i}", "context": ["你好", "您好", f"第{i}个问题：能便宜点吗？"]},
            ensure_ascii=False,
        )
        for i in range(n)
    ]
    lines.append(json.dumps({"query": "第0个问题：能便宜点吗？", "id": "dup"}, ensure_ascii=False))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def service(teacher) -> TeacherService:
    return TeacherService(teacher, retry=RetryPolicy(attempts=1), sleep=lambda s: None)


def test_jsonl_tasks_roles_and_dedupe(tmp_path: Path) -> None:
    tasks = read_tasks(write_jsonl(tmp_path / "c.jsonl", 3), "jsonl")
    assert [t.id for t in tasks] == ["q0", "q1", "q2", "dup"]
    assert [t.role for t in tasks[0].turns] == ["customer", "agent", "customer"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"context": [1, 2]}\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:1"):
        read_tasks(bad, "jsonl")


def test_labeling_resumes_after_a_kill(tmp_path: Path) -> None:
    tasks = read_tasks(write_jsonl(tmp_path / "c.jsonl", 6), "jsonl")
    out = tmp_path / "labels.jsonl"
    teacher = ScriptedTeacher([f"回复{i}" for i in range(3)] + [TeacherUnavailable("down")] * 10)
    first = label_corpus(service(teacher), tasks, out, concurrency=1, progress=lambda s: None)
    assert first.labeled == 3 and first.failed == 4
    # A kill in the middle of writing leaves half a line behind.
    with out.open("ab") as fh:
        fh.write(b'{"id": "q5", "teacher_re')
    assert done_ids(out) == {"q0", "q1", "q2"}
    teacher.script = []  # the teacher is back
    second = label_corpus(service(teacher), tasks, out, concurrency=2, progress=lambda s: None)
    assert second.skipped == 3 and second.labeled == 4 and second.failed == 0
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert sorted(r["id"] for r in records) == sorted(t.id for t in tasks)
    assert all(r["teacher_reply"] and r["query"] for r in records)


class QueryExamples:
    """An example bank stand-in: one example pair per query, chosen deterministically."""

    def retrieve(self, query: str, k: int) -> list[Example]:
        return [Example(f"例：{query}", "亲，可以的")]


def test_scripted_queued_requests_are_answered_by_the_next_run_never_lost(tmp_path: Path) -> None:
    """A run during an outage queues the requests; the next run sends the very same requests from
    the outbox first, records the answers and labels those tasks from them, asking nothing twice."""
    store = open_store(f"sqlite:///{tmp_path / 'x.db'}")
    tasks = read_tasks(write_jsonl(tmp_path / "c.jsonl", 4), "jsonl")
    out = tmp_path / "labels.jsonl"

    def run(teacher: ScriptedTeacher):
        svc = TeacherService(
            teacher,
            store,
            QueryExamples(),  # type: ignore[arg-type]
            retry=RetryPolicy(attempts=1, max_s=0.0),
            breaker=CircuitBreaker(threshold=100),
            sleep=lambda s: None,
        )
        return label_corpus(svc, tasks, out, progress=lambda s: None)

    down = ScriptedTeacher(["回复0", TeacherUnavailable("connection refused")] * 3)
    first = run(down)
    assert (first.labeled, first.failed, first.outbox_pending) == (3, 2, 2)
    queued = down.requests[1::2]
    with store.session() as s:
        items = s.scalars(select(OutboxItem).order_by(OutboxItem.id)).all()
        assert [i.status for i in items] == ["pending", "pending"]
        assert [i.request["turns"][-1][1] for i in items] == [
            tasks[1].turns[-1].text,
            tasks[3].turns[-1].text,
        ]

    back = ScriptedTeacher(["补回复1", "补回复3"])
    second = run(back)
    assert back.requests[:2] == queued, "the outbox sends the requests exactly as first built"
    assert len(back.requests) == 2, "the tasks are then labeled from the recorded answers"
    assert (second.outbox_done, second.outbox_pending) == (2, 0)
    assert (second.skipped, second.labeled, second.failed) == (3, 2, 0)
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert sorted(r["id"] for r in records) == sorted(t.id for t in tasks)
    by_id = {r["id"]: r["teacher_reply"] for r in records}
    assert (by_id[tasks[1].id], by_id[tasks[3].id]) == ("补回复1", "补回复3")
    with store.session() as s:
        assert [i.status for i in s.scalars(select(OutboxItem))] == ["done", "done"]
        assert len(s.scalars(select(TeacherReply)).all()) == len(tasks), "one answer per task"
    store.close()


def test_progress_line_has_eta() -> None:
    assert "ETA" in progress_line(5, 10, 0.0) and "5/10 (50%)" in progress_line(5, 10, 0.0)


@pytest.mark.skipif(not SHARED.is_dir(), reason="the JDDC samples in ../shared/data are not here")
def test_jddc_readers_give_tasks_ending_with_the_customer() -> None:
    t18 = read_tasks(SHARED / "jddc2018", "jddc2018", limit=50)
    t19 = read_tasks(SHARED / "jddc2019" / "chat_0.1per.txt", "jddc2019", limit=50)
    assert len(t18) == 50 and len(t19) == 50
    assert all(t.turns[-1].role == "customer" and t.reference for t in t18 + t19)
