"""Asking the teacher: privacy firewall, prompt, cache, retries, circuit breaker, outbox, records.

Providers only speak their API; everything that must hold for every provider happens here, once:
nothing personal leaves for a non-local teacher, a failed request is kept in the outbox until it
succeeds, a malformed answer is never used as a label, and every answer is recorded with exactly
what was sent, its tokens and its cost.

Placeholders in the teacher's reply are restored here, once, from the conversation's own turns
only: the example dialogues in the prompt share the placeholder numbering, and a teacher that
copies an example's ``[ADDRESS_2]`` must not put another customer's address in front of the agent
or into a label. Such a reply is kept and flagged (``unusable``), never learned; the label stored
with it is exactly the text the agent was shown.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from app.cloud.prompt import ExampleBank, ExampleMode, PromptExample, build_request, prompt_hash
from app.cloud.redact import PLACEHOLDER, Redaction, Redactor
from app.cloud.teacher import (
    CloudTeacher,
    TeacherAnswer,
    TeacherRejected,
    TeacherRequest,
    TeacherUnavailable,
    Usage,
)
from app.engine.conversation import Turn, clean_for_model
from app.store import Store, TeacherReply
from app.store.models import OutboxStatus

MAX_REPLY_CHARS = 1000
_ROLE_PREFIX = ("客服：", "客服:", "回复：", "回复:", "Agent:", "Reply:", "assistant:")


@dataclass
class RetryPolicy:
    """Exponential backoff with full jitter, for TeacherUnavailable only."""

    attempts: int = 4
    base_s: float = 0.5
    max_s: float = 8.0

    def delay(self, attempt: int) -> float:
        return random.uniform(0, min(self.max_s, self.base_s * 2**attempt))


@dataclass
class CircuitBreaker:
    """After ``threshold`` failures in a row, fail fast for ``cooldown_s``; then let one call try."""

    threshold: int = 5
    cooldown_s: float = 60.0
    clock: Callable[[], float] = time.monotonic
    _failures: int = 0
    _opened_at: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def check(self) -> None:
        with self._lock:
            if self._opened_at is None:
                return
            if self.clock() - self._opened_at < self.cooldown_s:
                raise TeacherUnavailable(
                    f"the teacher failed {self._failures} times in a row; pausing calls for "
                    f"{self.cooldown_s:.0f} s"
                )
            self._opened_at = None  # half-open: this call is the trial

    def record(self, ok: bool) -> None:
        with self._lock:
            if ok:
                self._failures = 0
                self._opened_at = None
            else:
                self._failures += 1
                if self._failures >= self.threshold:
                    self._opened_at = self.clock()


def clean_reply(text: str) -> str:
    """The teacher's reply as a label, or TeacherRejected when it is not usable as one."""
    reply = clean_for_model(text)
    for prefix in _ROLE_PREFIX:
        if reply.startswith(prefix):
            reply = reply[len(prefix) :].strip()
    if not reply:
        raise TeacherRejected("the teacher's reply is empty")
    if not PLACEHOLDER.sub("", reply).strip(" ，。,.!！?？"):
        raise TeacherRejected("the teacher's reply holds nothing but placeholders")
    if len(reply) > MAX_REPLY_CHARS:
        raise TeacherRejected(f"the teacher's reply is {len(reply)} characters long; refusing it")
    return reply


@dataclass(frozen=True)
class Restored:
    """A teacher's reply with the conversation's own values put back."""

    text: str
    foreign: tuple[str, ...]
    """Placeholders the conversation's turns do not hold (copied from an example, or made up):
    left as they are, and they make the reply unusable as a label."""

    @property
    def unusable(self) -> str | None:
        """Why the reply must not be learned, or None when it may be."""
        if not self.foreign:
            return None
        return (
            f"the teacher used placeholders that are not in this conversation "
            f"({', '.join(self.foreign)}): copied from an example dialogue or made up"
        )


def restore_reply(reply: str, own: Mapping[str, str]) -> Restored:
    """Put back the values of ``own`` (placeholder → real value of this conversation's turns);
    every other placeholder stays as it is and is listed in ``foreign``."""
    foreign: list[str] = []

    def put_back(match: re.Match[str]) -> str:
        tag = match.group(0)
        if tag in own:
            return own[tag]
        if tag not in foreign:
            foreign.append(tag)
        return tag

    return Restored(PLACEHOLDER.sub(put_back, reply), tuple(foreign))


def own_placeholders(redactions: Sequence[Redaction]) -> dict[str, str]:
    """placeholder → real value for the placeholders that occur in these redacted turns."""
    own: dict[str, str] = {}
    for redaction in redactions:
        for match in PLACEHOLDER.finditer(redaction.redacted):
            tag = match.group(0)
            if tag in redaction.mapping:
                own[tag] = redaction.mapping[tag]
    return own


@dataclass(frozen=True)
class TeacherResult:
    reply: str
    """What the agent is shown: the conversation's own values restored where the teacher echoed
    its placeholders; any other placeholder left as it is."""
    answer: TeacherAnswer
    sent: TeacherRequest
    """Exactly what went to the provider."""
    prompt_hash: str
    cached: bool
    cost: float
    unusable: str | None = None
    """Why this reply must not be learned (it holds a placeholder not from this conversation);
    None when it is a usable label."""

    @property
    def label(self) -> str | None:
        """The reply as a training label (the very text shown), or None when it is unusable."""
        return None if self.unusable else self.reply


class TeacherService:
    def __init__(
        self,
        teacher: CloudTeacher,
        store: Store | None = None,
        examples: ExampleBank | None = None,
        mode: ExampleMode = "retrieved",
        k: int = 8,
        n_fixed: int = 500,
        lang: str = "zh",
        max_tokens: int = 256,
        retry: RetryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
        max_concurrency: int = 4,
        cost_fn: Callable[[Usage], float] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.teacher = teacher
        self.store = store
        self.examples = examples
        self.mode = mode
        self.k = k
        self.n_fixed = n_fixed
        self.lang = lang
        self.max_tokens = max_tokens
        self.retry = retry or RetryPolicy()
        self.breaker = breaker or CircuitBreaker()
        self._slots = threading.BoundedSemaphore(max_concurrency)
        self._cost_fn = cost_fn or (lambda usage: 0.0)
        self._sleep = sleep

    # --- one request --------------------------------------------------------------------------

    def examples_for(self, conversation: Sequence[Turn]) -> list[PromptExample]:
        """The example pairs the prompt for ``conversation`` shows (unredacted, as in the corpus)."""
        if self.examples is None or not conversation:
            return []
        if self.mode == "fixed":
            return self.examples.fixed(self.n_fixed)
        return self.examples.retrieve(conversation[-1].text, self.k)

    def prepare(
        self, conversation: Sequence[Turn], examples: Sequence[PromptExample] | None = None
    ) -> tuple[TeacherRequest, dict[str, str]]:
        """The request as it will be sent, and the conversation's own placeholders (placeholder →
        real value) that may be restored in the reply.

        ``examples`` defaults to ``examples_for(conversation)``; the outbox passes the ones the
        first attempt chose, so a retry sends the same prompt.
        """
        chosen = self.examples_for(conversation) if examples is None else examples
        return self._build(conversation, chosen, self.lang, self.max_tokens)

    def _build(
        self,
        conversation: Sequence[Turn],
        examples: Sequence[PromptExample],
        lang: str,
        max_tokens: int,
    ) -> tuple[TeacherRequest, dict[str, str]]:
        turns = [
            Turn(t.role, clean_for_model(t.text)) for t in conversation if clean_for_model(t.text)
        ]
        if not turns or turns[-1].role != "customer":
            raise ValueError("The teacher needs a conversation that ends with a customer message")
        chosen = list(examples)
        own: dict[str, str] = {}
        if not self.teacher.is_local:
            # One redactor for turns and examples: a value in both gets one placeholder. Only the
            # placeholders in the turns are this conversation's to restore.
            redactor = Redactor()
            redacted = [redactor.redact(t.text) for t in turns]
            own = own_placeholders(redacted)
            turns = [Turn(t.role, r.redacted) for t, r in zip(turns, redacted, strict=True)]
            chosen = [
                PromptExample(redactor.redact(e.query).redacted, redactor.redact(e.reply).redacted)
                for e in chosen
            ]
        return build_request(turns, chosen, lang, max_tokens), own

    def ask(
        self,
        conversation: Sequence[Turn],
        message_id: int | None = None,
        draft_id: int | None = None,
    ) -> TeacherResult:
        """Ask the teacher for a reference reply. On TeacherUnavailable (after retries) the request
        is kept in the outbox, when there is a store, and the error is raised."""
        examples = self.examples_for(conversation)
        request, own = self.prepare(conversation, examples)
        digest = prompt_hash(request, self.teacher.provider, self.teacher.model)
        cached = self._cached(digest)
        if cached is not None:
            restored = restore_reply(cached.reply_text, own)
            return TeacherResult(
                restored.text,
                _answer(cached),
                request,
                digest,
                True,
                cached.cost or 0.0,
                restored.unusable,
            )
        payload = self._payload(conversation, examples)
        try:
            answer = self._call(request)
        except TeacherUnavailable as exc:
            self._enqueue(payload, message_id, draft_id, str(exc))
            raise
        reply = clean_reply(answer.text)
        restored = restore_reply(reply, own)
        cost = self._cost_fn(answer.usage)
        self._record(request, digest, answer, reply, restored, cost, message_id, draft_id)
        self._settle(payload, message_id, draft_id)
        return TeacherResult(restored.text, answer, request, digest, False, cost, restored.unusable)

    def _call(self, request: TeacherRequest) -> TeacherAnswer:
        last: TeacherUnavailable | None = None
        for attempt in range(self.retry.attempts):
            self.breaker.check()
            try:
                with self._slots:
                    answer = self.teacher.complete(request)
            except TeacherUnavailable as exc:
                self.breaker.record(False)
                last = exc
                if attempt + 1 < self.retry.attempts:
                    self._sleep(self.retry.delay(attempt))
                continue
            except TeacherRejected:
                self.breaker.record(True)  # the service answered; the request was the problem
                raise
            self.breaker.record(True)
            return answer
        assert last is not None
        raise last

    # --- the store: cache, records, outbox ----------------------------------------------------

    def _cached(self, digest: str) -> TeacherReply | None:
        if self.store is None:
            return None
        with self.store.session() as session:
            return self.store.cached_teacher_reply(
                session, digest, self.teacher.provider, self.teacher.model
            )

    def _record(
        self,
        request: TeacherRequest,
        digest: str,
        answer: TeacherAnswer,
        reply: str,
        restored: Restored,
        cost: float,
        message_id: int | None,
        draft_id: int | None,
    ) -> None:
        if self.store is None:
            return
        with self.store.session() as session:
            self.store.add_teacher_reply(
                session,
                message_id=message_id,
                draft_id=draft_id,
                provider=self.teacher.provider,
                model=self.teacher.model,
                query_text=request.messages[-1][1],
                reply_text=reply,  # as the teacher wrote it: placeholders, not real values
                # The label is what the agent is shown, restored once, here: training never
                # redacts again to restore (detection may have changed since).
                label_text=None if restored.unusable else restored.text,
                unusable_reason=restored.unusable,
                prompt_hash=digest,
                input_tokens=answer.usage.input_tokens,
                output_tokens=answer.usage.output_tokens,
                cost=cost,
                label_source="teacher",
                sent_json=json.dumps(request.messages, ensure_ascii=False),
            )

    def _payload(
        self, conversation: Sequence[Turn], examples: Sequence[PromptExample]
    ) -> dict[str, Any]:
        """What it takes to send the same prompt again: the conversation and examples as they are
        on the device (redaction happens at send time, for whichever teacher it goes to then)."""
        return {
            "turns": [[t.role, t.text] for t in conversation],
            "examples": [[e.query, e.reply] for e in examples],
            "lang": self.lang,
            "max_tokens": self.max_tokens,
        }

    def _enqueue(
        self, payload: dict[str, Any], message_id: int | None, draft_id: int | None, error: str
    ) -> None:
        if self.store is None:
            return
        retry_at = datetime.now(UTC) + timedelta(seconds=self.retry.max_s)
        with self.store.session() as session:
            # The same request failing again (a relabeling run, a second click) is one item.
            self.store.enqueue_teacher_request(
                session, payload, message_id, draft_id, error, retry_at
            )

    def _settle(
        self, payload: dict[str, Any], message_id: int | None, draft_id: int | None
    ) -> None:
        """A request answered after all (a second try, a later run) is no longer queued. Only a
        fresh answer can have a queued twin: one answered from the cache was answered before."""
        if self.store is None:
            return
        with self.store.session() as session:
            self.store.settle_teacher_request(session, payload, message_id, draft_id)

    def _replay(self, payload: dict[str, Any]) -> tuple[TeacherRequest, str, dict[str, str]]:
        """The queued request rebuilt as first built (older items hold only the turns), its hash,
        and the conversation's own placeholders."""
        turns = [Turn(role, text) for role, text in payload["turns"]]
        if "examples" in payload:
            examples = [PromptExample(query, reply) for query, reply in payload["examples"]]
        else:
            examples = self.examples_for(turns)
        request, own = self._build(
            turns,
            examples,
            str(payload.get("lang", self.lang)),
            int(payload.get("max_tokens", self.max_tokens)),
        )
        return request, prompt_hash(request, self.teacher.provider, self.teacher.model), own

    def drain_outbox(self, limit: int | None = None) -> dict[str, int]:
        """Send the queued requests whose time has come, oldest first, and record the answers.

        Stops at the first request the teacher is still unavailable for (the rest wait for the next
        drain). Returns how many were answered (``done``), given up on because the teacher refused
        them (``failed``), and how many are still queued (``pending``, due or not).
        """
        counts = {"done": 0, "failed": 0, "pending": 0}
        if self.store is None:
            return counts
        with self.store.session() as session:
            # Taken: another drain (another worker on the shop's database) passes them over.
            due = self.store.take_outbox_items(session, limit=limit)
            jobs = [(item.id, item.request, item.message_id, item.draft_id) for item in due]
        for n, (item_id, payload, message_id, draft_id) in enumerate(jobs):
            status: OutboxStatus = "done"
            error: str | None = None
            try:
                request, digest, own = self._replay(payload)
                if self._cached(digest) is None:
                    answer = self._call(request)
                    reply = clean_reply(answer.text)
                    self._record(
                        request,
                        digest,
                        answer,
                        reply,
                        restore_reply(reply, own),
                        self._cost_fn(answer.usage),
                        message_id,
                        draft_id,
                    )
            except TeacherUnavailable as exc:
                status, error = "pending", str(exc)
            except (TeacherRejected, ValueError, KeyError, TypeError) as exc:
                status, error = "failed", str(exc)
            with self.store.session() as session:
                self.store.finish_outbox_item(session, item_id, status, error, self.retry.max_s)
            if status == "pending":
                self._give_back([job[0] for job in jobs[n + 1 :]])
                break
            counts[status] += 1
        counts["pending"] = outbox_counts(self.store)["pending"]
        return counts

    def _give_back(self, item_ids: Sequence[int]) -> None:
        """Taken items not tried (the teacher went away first): due again at the next drain."""
        if self.store is None or not item_ids:
            return
        with self.store.session() as session:
            self.store.give_back_outbox_items(session, item_ids)


def outbox_counts(store: Store) -> dict[str, int]:
    """Outbox items by status: pending (still to send), done, failed (the teacher refused them)."""
    with store.session() as session:
        return store.outbox_counts(session)


def _answer(row: TeacherReply) -> TeacherAnswer:
    return TeacherAnswer(
        row.reply_text,
        row.provider or "",
        row.model or "",
        Usage(row.input_tokens, row.output_tokens),
    )


def usage_by_provider(store: Store) -> dict[str, dict[str, Any]]:
    """Calls, tokens and cost per provider and model, for the accounting view."""
    with store.session() as session:
        rows = store.teacher_usage(session)
    return {
        f"{provider}/{model}": {
            "calls": calls,
            "input_tokens": tin,
            "output_tokens": tout,
            "cost": cost,
        }
        for provider, model, calls, tin, tout, cost in rows
    }
