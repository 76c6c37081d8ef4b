"""Batch labeling: corpus readers, resumability after a kill, progress. The provider is a
scripted stand-in (see test_teacher_service.py); the real local teacher labels in
test_teacher_server.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from app.cloud.label import corpus_format, done_ids, label_corpus, progress_line, read_tasks
from app.cloud.prompt import PromptExample
from app.cloud.service import CircuitBreaker, RetryPolicy, TeacherService, outbox_counts
from app.cloud.teacher import TeacherUnavailable
from app.store import OutboxItem, Store, TeacherReply, open_store
from tests.doubles import ScriptedTeacher

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
    first = label_corpus(
        service(teacher), tasks, out, concurrency=1, progress=lambda s: None, sleep=lambda s: None
    )
    assert (first.labeled, first.failed) == (3, 0) and "run the same command" in first.stopped
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

    def retrieve(self, query: str, k: int) -> list[PromptExample]:
        return [PromptExample(f"例：{query}", "亲，可以的")]


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
        # No pause: the run stops at the outage (the next test covers pausing).
        return label_corpus(svc, tasks, out, progress=lambda s: None, max_pauses=0)

    # One worker, two requests in flight: q0 answered, q1 refused, then the stop; q2 is asked in
    # between (and answered) only if q0's answer is seen before q1's refusal (thread timing).
    down = ScriptedTeacher(["回复0", TeacherUnavailable("connection refused")] * 3)
    first = run(down)
    done = first.labeled
    assert done in (1, 2) and (first.failed, first.outbox_pending) == (0, 1)
    assert first.stopped and "connection refused" in first.stopped
    queued = down.requests[1]
    with store.session() as s:
        items = s.scalars(select(OutboxItem).order_by(OutboxItem.id)).all()
        assert [i.status for i in items] == ["pending"]
        assert items[0].request["turns"][-1][1] == tasks[1].turns[-1].text

    back = ScriptedTeacher(["补回复1"])
    second = run(back)
    assert back.requests[0] == queued, "the outbox sends the request exactly as first built"
    left = len(tasks) - done
    assert len(back.requests) == 1 + (left - 1), "q1 is then labeled from the recorded answer"
    assert (second.outbox_done, second.outbox_pending, second.stopped) == (1, 0, None)
    assert (second.skipped, second.labeled, second.failed) == (done, left, 0)
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert sorted(r["id"] for r in records) == sorted(t.id for t in tasks)
    assert {r["id"]: r["teacher_reply"] for r in records}[tasks[1].id] == "补回复1"
    with store.session() as s:
        assert [i.status for i in s.scalars(select(OutboxItem))] == ["done"]
        assert len(s.scalars(select(TeacherReply)).all()) == len(tasks), "one answer per task"
    store.close()


def outage_service(
    teacher: ScriptedTeacher, now: list[float], store: Store | None = None
) -> TeacherService:
    """A breaker that opens after 2 failures in a row and reads a clock the test moves."""
    breaker = CircuitBreaker(threshold=2, cooldown_s=60.0, clock=lambda: now[0])
    return TeacherService(
        teacher, store, retry=RetryPolicy(attempts=1), breaker=breaker, sleep=lambda s: None
    )


def test_an_outage_pauses_the_run_which_goes_on_when_the_teacher_is_back(tmp_path: Path) -> None:
    """Before, an open circuit breaker failed every remaining task within a second."""
    tasks = read_tasks(write_jsonl(tmp_path / "c.jsonl", 6), "jsonl")
    now, waits, lines = [0.0], [], []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    # q0 is answered, then three calls are refused: the breaker opens after two, so the run
    # pauses two or three times (how the refusals fall between pauses depends on thread timing).
    teacher = ScriptedTeacher(["回复0"] + [TeacherUnavailable("timed out")] * 3)
    store = open_store(f"sqlite:///{tmp_path / 'x.db'}")
    report = label_corpus(
        outage_service(teacher, now, store),
        tasks,
        tmp_path / "l.jsonl",
        progress=lines.append,
        sleep=sleep,
    )
    assert (report.labeled, report.failed, report.stopped) == (len(tasks), 0, None)
    assert waits in ([60.0] * 2, [60.0] * 3), waits
    assert sum("trying again in 60 s" in line for line in lines) == len(waits)
    assert len(done_ids(tmp_path / "l.jsonl")) == len(tasks)
    # The refused requests were queued, and answered after the pause: none is left pending (it
    # would be sent again at the next drain).
    assert report.outbox_pending == 0 and outbox_counts(store)["done"] >= 1


def test_a_teacher_that_stays_down_stops_the_run_with_a_reason(tmp_path: Path) -> None:
    tasks = read_tasks(write_jsonl(tmp_path / "c.jsonl", 3), "jsonl")
    now, waits = [0.0], []
    teacher = ScriptedTeacher([TeacherUnavailable("connection refused")] * 100)
    report = label_corpus(
        outage_service(teacher, now),
        tasks,
        tmp_path / "l.jsonl",
        progress=lambda s: None,
        sleep=lambda s: (waits.append(s), now.__setitem__(0, now[0] + s)),
    )
    assert (report.labeled, report.failed) == (0, 0)
    assert report.stopped is not None
    # The last refusal named: "connection refused" or the open breaker's (thread timing).
    assert report.stopped.startswith("the teacher stayed unavailable (")
    assert report.stopped.endswith("; 4 tasks left: run the same command again to resume")
    assert waits == [60.0] * 3
    assert len(teacher.requests) < 20, "an open breaker fails fast; it does not call"


def test_progress_line_has_eta() -> None:
    assert "ETA" in progress_line(5, 10, 0.0) and "5/10 (50%)" in progress_line(5, 10, 0.0)


@pytest.mark.skipif(not SHARED.is_dir(), reason="the JDDC samples in ../shared/data are not here")
def test_jddc_readers_give_tasks_ending_with_the_customer() -> None:
    t18 = read_tasks(SHARED / "jddc2018", "jddc2018", limit=50)
    t19 = read_tasks(SHARED / "jddc2019" / "chat_0.1per.txt", "jddc2019", limit=50)
    assert len(t18) == 50 and len(t19) == 50
    assert all(t.turns[-1].role == "customer" and t.reference for t in t18 + t19)


def test_corpus_format_is_told_by_the_path(tmp_path: Path) -> None:
    (tmp_path / "jddc").mkdir()
    assert corpus_format(tmp_path / "jddc") == "jddc2018"
    assert corpus_format(tmp_path / "train.enc") == "jddc2018"
    assert corpus_format(tmp_path / "pairs.jsonl") == "jsonl"
    assert corpus_format(tmp_path / "PAIRS.JSONL") == "jsonl"
    assert corpus_format(tmp_path / "chat_0.1per.txt") == "jddc2019"
    assert corpus_format(tmp_path / "chat") == "jddc2019"  # not a directory: a chat file
