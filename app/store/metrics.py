"""The store's queries behind the evolution panel's charts (``app.ui.metrics``), as methods of
``Store`` (mixed into ``Repository``): each reads one column set of all rows, the charts group
them by day."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.store.models import Draft, Rating, Score, TeacherReply


class MetricsQueries:
    """Mixed into ``Store`` through ``Repository``; holds no state of its own."""

    def draft_times(self, session: Session) -> list[tuple[int, datetime]]:
        """(draft id, when it was written) of every draft."""
        return [(i, t) for i, t in session.execute(select(Draft.id, Draft.created_at))]

    def latest_finals(self, session: Session) -> dict[int, float]:
        """draft id → the Final score of its latest score."""
        latest = select(func.max(Score.id)).group_by(Score.draft_id).scalar_subquery()
        rows = session.execute(select(Score.draft_id, Score.final).where(Score.id.in_(latest)))
        return {draft_id: final for draft_id, final in rows}

    def rating_outcomes(
        self, session: Session
    ) -> list[tuple[int, bool | None, str | None, bool | None]]:
        """(draft id, thumbs up, text sent, edited) of every rating, oldest first."""
        rows = session.execute(
            select(Rating.draft_id, Rating.thumbs_up, Rating.sent_text, Rating.edited).order_by(
                Rating.id
            )
        )
        return [(d, t, s, e) for d, t, s, e in rows]

    def teacher_call_costs(self, session: Session) -> list[tuple[datetime, float | None]]:
        """(when, cost) of every answer the teacher gave (not the agents' corrections)."""
        rows = session.execute(
            select(TeacherReply.created_at, TeacherReply.cost).where(
                TeacherReply.label_source == "teacher"
            )
        )
        return [(c, cost) for c, cost in rows]
