"""The store's queries for evolution's candidates and labels (``app.evolve.labels``), as methods
of ``Store`` (mixed into ``Repository``). Like the other repository methods, each runs in the
caller's unit of work. A draft is *labelled* once a teacher reply (or the agent's edit) is linked
to it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from app.store.models import AdapterVersion, Rating, Score, TeacherReply


def _labelled() -> Select[int | None]:
    return select(TeacherReply.draft_id).where(TeacherReply.draft_id.is_not(None))


def _latest_scores() -> Select[int, int]:
    """The id of each draft's latest score."""
    return select(Score.draft_id, func.max(Score.id).label("score_id")).group_by(Score.draft_id)


class EvolutionQueries:
    """Mixed into ``Store`` through ``Repository``; holds no state of its own."""

    def unlabelled_low_scores(self, session: Session, low_score: float) -> set[int]:
        """Unlabelled drafts whose latest Final score is below ``low_score``."""
        latest = _latest_scores().subquery()
        return set(
            session.scalars(
                select(Score.draft_id)
                .join(latest, Score.id == latest.c.score_id)
                .where(Score.final < low_score)
                .where(Score.draft_id.not_in(_labelled()))
            )
        )

    def unlabelled_uncalibrated(
        self, session: Session, low_score: float, calibrated_matching: str
    ) -> set[int]:
        """Unlabelled drafts scored at least ``low_score`` with no reference reply
        (``match_only``) by a matcher whose version does not start ``calibrated_matching``."""
        latest = _latest_scores().subquery()
        return set(
            session.scalars(
                select(Score.draft_id)
                .join(latest, Score.id == latest.c.score_id)
                .where(Score.final >= low_score)
                .where(Score.mode == "match_only")
                .where(
                    Score.matching_scorer_version.is_(None)
                    | Score.matching_scorer_version.not_like(f"{calibrated_matching}%")
                )
                .where(Score.draft_id.not_in(_labelled()))
            )
        )

    def unlabelled_bad_ratings(self, session: Session) -> list[Rating]:
        """Ratings with a thumbs-down or an edit of unlabelled drafts, oldest first."""
        return list(
            session.scalars(
                select(Rating)
                .where(Rating.draft_id.not_in(_labelled()))
                .where((Rating.thumbs_up.is_(False)) | (Rating.edited.is_(True)))
                .order_by(Rating.id)
            )
        )

    def has_label(self, session: Session, draft_id: int) -> bool:
        found = session.scalar(
            select(TeacherReply.id).where(TeacherReply.draft_id == draft_id).limit(1)
        )
        return found is not None

    def draft_labels(self, session: Session) -> list[tuple[int, datetime, int, str, str]]:
        """(label id, made at, draft id, label text, label source) of every usable label linked
        to a draft, oldest first. A label kept but flagged (a placeholder from another
        conversation) has no label text and is left out: never learned."""
        rows = session.execute(
            select(
                TeacherReply.id,
                TeacherReply.created_at,
                TeacherReply.draft_id,
                TeacherReply.label_text,
                TeacherReply.label_source,
            )
            .where(TeacherReply.draft_id.is_not(None))
            .where(TeacherReply.label_text.is_not(None))
            .order_by(TeacherReply.id)
        ).all()
        out: list[tuple[int, datetime, int, str, str]] = []
        for label_id, created, draft_id, text, source in rows:
            assert draft_id is not None and text is not None  # filtered in the query
            out.append((label_id, created, draft_id, text, source))
        return out

    def newest_adapter_time(self, session: Session) -> datetime | None:
        """When the newest adapter version was registered (None before the first)."""
        return session.scalar(select(func.max(AdapterVersion.created_at)))

    def unedited_thumbs(self, session: Session) -> list[tuple[int, bool]]:
        """(draft id, thumbs up) of the ratings with a thumb on drafts not edited, oldest first."""
        rows = session.execute(
            select(Rating.draft_id, Rating.thumbs_up)
            .where(Rating.thumbs_up.is_not(None))
            .where(Rating.edited.is_(False))
            .order_by(Rating.id)
        ).all()
        return [(draft_id, bool(up)) for draft_id, up in rows]
