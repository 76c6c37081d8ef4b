"""Batch labeling (ECC paper, Section IV-A): the customer side of a corpus goes to the teacher and
its replies become a cloud-generated dataset.

Resumable: every finished record is one appended, flushed JSON line, and a restart skips the ids
already written (a line cut short by a kill is dropped and redone).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from app.cloud.prompt import ExampleBank, PromptExample
from app.cloud.service import TeacherService, outbox_counts
from app.cloud.teacher import TeacherError, TeacherUnavailable
from app.engine.conversation import Turn
from app.fsio import loads_json
from app.scoring import corpus

CorpusFormat = Literal["jddc2018", "jddc2019", "ecd", "jsonl"]
MAX_PAUSES = 3
"""Pauses in a row (each the circuit breaker's cooldown) before a labeling run gives up."""


@dataclass(frozen=True)
class LabelTask:
    id: str
    turns: tuple[Turn, ...]
    """Ends with the customer's message."""
    reference: str | None
    """The human agent's reply, when the corpus has one."""


def _turns(context: Sequence[str]) -> tuple[Turn, ...]:
    """Context turns alternate customer/agent and end with the customer (JDDC/ECD shape)."""
    n = len(context)
    return tuple(
        Turn("customer" if (n - 1 - i) % 2 == 0 else "agent", text)
        for i, text in enumerate(context)
    )


def read_tasks(path: Path, fmt: CorpusFormat, limit: int | None = None) -> list[LabelTask]:
    """Labeling tasks from a corpus; duplicates (same context) are dropped."""
    tasks: Iterator[LabelTask]
    if fmt == "jddc2018":
        enc = path if path.suffix == ".enc" else path / "train.enc"
        pairs = corpus.read_jddc2018(enc, enc.with_suffix(".dec"))
        tasks = (
            LabelTask(f"jddc2018:{i}", _turns(p.context), p.reply) for i, p in enumerate(pairs)
        )
    elif fmt == "jddc2019":
        tasks = (
            LabelTask(f"jddc2019:{p.conversation}:{i}", _turns(p.context), p.reply)
            for i, p in enumerate(corpus.read_jddc2019(path))
        )
    elif fmt == "ecd":
        tasks = (
            LabelTask(f"ecd:{i}", _turns(g.context), g.true_reply)
            for i, g in enumerate(corpus.read_ecd(path))
        )
    elif fmt == "jsonl":
        tasks = _read_jsonl(path)
    else:
        raise ValueError(f"Unknown corpus format {fmt!r}")
    seen: set[tuple[str, ...]] = set()
    out = []
    for task in tasks:
        key = tuple(t.text for t in task.turns)
        if not task.turns or not task.turns[-1].text.strip() or key in seen:
            continue
        seen.add(key)
        out.append(task)
        if limit is not None and len(out) >= limit:
            break
    return out


def corpus_format(path: Path) -> CorpusFormat:
    """The format of a corpus told by its path alone: a directory or an ``.enc`` file is JDDC 2018
    (its ``.dec`` beside it), a ``.jsonl`` file holds JSON lines, anything else is taken for a
    JDDC 2019 chat file. ECD is never guessed: name it."""
    if path.is_dir() or path.suffix.lower() == ".enc":
        return "jddc2018"
    if path.suffix.lower() == ".jsonl":
        return "jsonl"
    return "jddc2019"


def example_bank(path: Path, fmt: CorpusFormat | None = None) -> ExampleBank:
    """The shop's past customer → agent pairs as the teacher's example dialogues (``--examples``)
    and the end model's shots; ``fmt`` None: told by the path (``corpus_format``). Their query
    embeddings are cached in the data dir."""
    from app.paths import data_dir

    tasks = read_tasks(path, fmt or corpus_format(path))
    pairs = [PromptExample(t.turns[-1].text, t.reference) for t in tasks if t.reference]
    return ExampleBank(pairs, cache_dir=data_dir() / "cache")


def _read_jsonl(path: Path) -> Iterator[LabelTask]:
    """Lines of ``{"id"?: …, "context": [turns…]}`` or ``{"query": …}``; ``reference`` optional."""
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            line = raw.decode("utf-8", errors="replace").strip()
            if not line:
                continue
            try:
                record = loads_json(line)
                context = record.get("context") or [record["query"]]
                if not all(isinstance(t, str) for t in context):
                    raise TypeError("context turns must be strings")
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise ValueError(f"{path}:{number}: not a labeling record ({exc})") from exc
            turns = _turns([corpus.normalize_turn(t) for t in context])
            yield LabelTask(
                str(record.get("id", f"jsonl:{number}")), turns, record.get("reference")
            )


def done_ids(out: Path) -> set[str]:
    """Ids already labeled in ``out``; a last line cut short by a kill is removed first."""
    if not out.exists():
        return set()
    data = out.read_bytes()
    if data and not data.endswith(b"\n"):
        data = data[: data.rfind(b"\n") + 1]
        with out.open("r+b") as fh:
            fh.truncate(len(data))
    ids = set()
    for line in data.decode("utf-8", errors="replace").splitlines():
        try:
            ids.add(loads_json(line)["id"])
        except (ValueError, KeyError, TypeError):
            continue
    return ids


class RateLimiter:
    """At most ``per_minute`` starts a minute, spaced evenly."""

    def __init__(self, per_minute: float | None) -> None:
        self.interval = 60.0 / per_minute if per_minute else 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        time.sleep(max(0.0, start - now))


@dataclass
class LabelReport:
    total: int
    skipped: int
    labeled: int
    failed: int
    seconds: float
    unusable: int = 0
    """Answered, but not usable as labels (a placeholder not from the task's conversation):
    written with ``teacher_reply`` null and the reason in ``unusable``."""
    outbox_done: int = 0
    """Queued requests (of this or an earlier run) answered before labeling began."""
    outbox_pending: int = 0
    """Requests still queued after the run: the teacher was unavailable for them."""
    stopped: str | None = None
    """Why the run stopped before the end (the teacher stayed unavailable); run it again to
    resume."""

    @property
    def per_minute(self) -> float:
        return self.labeled / self.seconds * 60 if self.seconds > 0 else 0.0


def progress_line(done: int, total: int, started: float) -> str:
    elapsed = time.monotonic() - started
    eta = elapsed / done * (total - done) if done else 0.0
    percent = done * 100 // max(total, 1)
    return f"label: {done}/{total} ({percent}%) elapsed {elapsed:,.0f} s, ETA {eta:,.0f} s"


def label_corpus(
    service: TeacherService,
    tasks: Sequence[LabelTask],
    out: Path,
    concurrency: int = 1,
    per_minute: float | None = None,
    progress: Callable[[str], None] | None = None,
    max_pauses: int = MAX_PAUSES,
    sleep: Callable[[float], None] = time.sleep,
) -> LabelReport:
    """Label every task not yet in ``out``; appends one JSON line per labeled task.

    First the outbox is drained: requests that found the teacher unavailable before (in an earlier
    run, or in the app) are sent again, so their answers are recorded and a task among them is
    labeled from the cache instead of being asked twice.

    When the teacher becomes unavailable (its retries spent, the circuit breaker open), the run
    pauses for the breaker's cooldown and tries the same tasks again, rather than failing every
    remaining task at once; after ``max_pauses`` pauses in a row without a label it stops, and
    says so in ``stopped``.
    """
    report = progress or (lambda line: print("\r" + line, end="", file=sys.stderr, flush=True))
    say = progress or (lambda line: print(line, file=sys.stderr, flush=True))
    queued = outbox_counts(service.store)["pending"] if service.store is not None else 0
    if queued:
        say(f"outbox: sending {queued} queued requests first, one at a time")
    drained = service.drain_outbox()
    if drained["done"] or drained["failed"]:
        say(
            f"outbox: {drained['done']} queued requests answered, {drained['failed']} refused, "
            f"{drained['pending']} still queued"
        )
    started = time.monotonic()
    already = done_ids(out)
    todo = [t for t in tasks if t.id not in already]
    limiter = RateLimiter(per_minute)
    lock = threading.Lock()
    labeled = failed = unusable = 0
    out.parent.mkdir(parents=True, exist_ok=True)

    def work(task: LabelTask) -> dict[str, Any]:
        limiter.wait()
        result = service.ask(task.turns)
        record = {
            "id": task.id,
            "context": [t.text for t in task.turns],
            "query": task.turns[-1].text,
            # None when the reply holds a placeholder not from this conversation: the task is
            # done (kept, with the reason) but `xiaoer train` finds no label in it.
            "teacher_reply": result.label,
            "reference": task.reference,
            "provider": service.teacher.provider,
            "model": service.teacher.model,
            "prompt_hash": result.prompt_hash,
        }
        if result.unusable:
            record["unusable"] = result.unusable
        return record

    queue = iter(todo)
    again: list[LabelTask] = []  # tasks the teacher was unavailable for, to try after a pause
    outage: TeacherUnavailable | None = None
    pauses = 0
    stopped = None
    with out.open("ab") as sink, ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        running: dict[Future[dict[str, Any]], LabelTask] = {}

        def submit_more() -> None:
            while len(running) < concurrency * 2:
                task = again.pop(0) if again else next(queue, None)
                if task is None:
                    return
                running[pool.submit(work, task)] = task

        submit_more()
        while running:
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in finished:
                task = running.pop(fut)
                try:
                    record = fut.result()
                except TeacherUnavailable as exc:
                    outage = exc
                    again.append(task)
                    continue
                except (TeacherError, ValueError) as exc:
                    failed += 1
                    report(f"label: a record failed: {exc}")
                else:
                    line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
                    with lock:
                        sink.write(line)
                        sink.flush()
                        os.fsync(sink.fileno())
                    if record["teacher_reply"] is None:
                        unusable += 1
                        report(f"label: {task.id} is not a usable label: {record['unusable']}")
                    else:
                        labeled += 1
                    pauses = 0
                report(progress_line(labeled + unusable + failed, len(todo), started))
            if outage is None:
                submit_more()
            elif not running:  # every call in flight has come back: pause, then try again
                if pauses == max_pauses:
                    stopped = (
                        f"the teacher stayed unavailable ({outage}); "
                        f"{len(todo) - labeled - unusable - failed}"
                        " tasks left: run the same command again to resume"
                    )
                    break
                pauses += 1
                wait_s = service.breaker.cooldown_s
                say(f"label: the teacher is unavailable ({outage}); trying again in {wait_s:.0f} s")
                sleep(wait_s)
                outage = None
                submit_more()
    if stopped:
        say(f"label: stopped: {stopped}")
    if progress is None:
        print(file=sys.stderr)
    still_queued = outbox_counts(service.store)["pending"] if service.store is not None else 0
    return LabelReport(
        len(tasks),
        len(tasks) - len(todo),
        labeled,
        failed,
        time.monotonic() - started,
        unusable,
        drained["done"],
        still_queued,
        stopped,
    )
