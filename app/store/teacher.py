"""The store's queries for the teacher (``app.cloud.service``): its recorded replies (the cache and
the accounting) and the outbox of requests not answered yet, as methods of ``Store`` (mixed into
``Repository``). Like the other repository methods, each runs in the caller's unit of work."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from app.store.models import OutboxItem, OutboxStatus, TeacherReply, utcnow


def _same(column: InstrumentedAttribute[int | None], value: int | None) -> ColumnElement[bool]:
    return column.is_(None) if value is None else column == value


class TeacherQueries:
    """Mixed into ``Store`` through ``Repository``; holds no state of its own."""

    # --- replies ---------------------------------------------------------------------------------

    def cached_teacher_reply(
        self, session: Session, prompt_hash: str, provider: str, model: str
    ) -> TeacherReply | None:
        """The latest reply recorded for this prompt from this provider and model, detached
        from the session (readable after it ends)."""
        row = session.scalars(
            select(TeacherReply)
            .where(TeacherReply.prompt_hash == prompt_hash)
            .where(TeacherReply.provider == provider)
            .where(TeacherReply.model == model)
            .order_by(TeacherReply.id.desc())
            .limit(1)
        ).first()
        if row is not None:
            session.expunge(row)
        return row

    def add_teacher_reply(self, session: Session, **columns: Any) -> TeacherReply:
        reply = TeacherReply(**columns)
        session.add(reply)
        session.flush()
        return reply

    def teacher_usage(self, session: Session) -> list[tuple[str, str, int, int, int, float]]:
        """(provider, model, calls, input tokens, output tokens, cost) per provider and model of
        the teacher's own replies (not the agents' corrections)."""
        rows = session.execute(
            select(
                TeacherReply.provider,
                TeacherReply.model,
                func.count(),
                func.sum(TeacherReply.input_tokens),
                func.sum(TeacherReply.output_tokens),
                func.sum(TeacherReply.cost),
            )
            .where(TeacherReply.label_source == "teacher")
            .group_by(TeacherReply.provider, TeacherReply.model)
        ).all()
        return [
            (str(p), str(m), int(n), int(tin or 0), int(tout or 0), float(cost or 0.0))
            for p, m, n, tin, tout, cost in rows
        ]

    # --- the outbox ------------------------------------------------------------------------------

    def pending_outbox_twins(
        self,
        session: Session,
        request: dict[str, Any],
        message_id: int | None,
        draft_id: int | None,
    ) -> list[OutboxItem]:
        """The pending outbox items holding this same request for this message and draft."""
        pending = session.scalars(
            select(OutboxItem)
            .where(OutboxItem.status == "pending")
            .where(_same(OutboxItem.message_id, message_id))
            .where(_same(OutboxItem.draft_id, draft_id))
        )
        return [item for item in pending if item.request == request]

    def enqueue_teacher_request(
        self,
        session: Session,
        request: dict[str, Any],
        message_id: int | None,
        draft_id: int | None,
        error: str,
        retry_at: datetime,
    ) -> None:
        """Keep a failed request for later; the same request failing again is one item."""
        for item in self.pending_outbox_twins(session, request, message_id, draft_id):
            item.attempts += 1
            item.last_error = error
            item.next_attempt_at = retry_at
            return
        session.add(
            OutboxItem(
                message_id=message_id,
                draft_id=draft_id,
                request=request,
                attempts=1,
                last_error=error,
                next_attempt_at=retry_at,
            )
        )

    def settle_teacher_request(
        self,
        session: Session,
        request: dict[str, Any],
        message_id: int | None,
        draft_id: int | None,
    ) -> None:
        """A request answered after all: its queued twins are done."""
        for item in self.pending_outbox_twins(session, request, message_id, draft_id):
            item.status = "done"
            item.last_error = None

    def finish_outbox_item(
        self,
        session: Session,
        item_id: int,
        status: OutboxStatus,
        error: str | None,
        max_wait_s: float,
    ) -> None:
        """Record how sending a taken item went; one still ``pending`` waits longer each time
        (``max_wait_s`` × 2^attempts, at most an hour)."""
        item = session.get(OutboxItem, item_id)
        assert item is not None
        item.status = status
        item.last_error = error
        if status == "pending":
            item.attempts += 1
            wait = min(3600.0, max_wait_s * 2 ** min(item.attempts, 9))
            item.next_attempt_at = utcnow() + timedelta(seconds=wait)

    def give_back_outbox_items(self, session: Session, item_ids: Sequence[int]) -> None:
        """Taken items not tried: due again now."""
        for item_id in item_ids:
            item = session.get(OutboxItem, item_id)
            if item is not None and item.status == "pending":
                item.next_attempt_at = utcnow()

    def outbox_counts(self, session: Session) -> dict[str, int]:
        """Outbox items by status: pending (still to send), done, failed (the teacher refused)."""
        rows = session.execute(
            select(OutboxItem.status, func.count()).group_by(OutboxItem.status)
        ).all()
        counts = {"pending": 0, "done": 0, "failed": 0}
        counts.update({str(status): int(n) for status, n in rows})
        return counts
