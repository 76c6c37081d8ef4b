"""The store's queries for trained versions: adapter versions and the training runs that made
them (``app.evolve``), and matcher versions, the in-domain matchers and the suggestion rankers
(``app.scoring``, ``app.suggest``), as methods of ``Store`` (mixed into ``Repository``). Like the
other repository methods, each runs in the caller's unit of work."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.store.models import (
    AdapterVersion,
    MatcherVersion,
    RunStatus,
    TeacherReply,
    TrainingRun,
    utcnow,
)


class VersionQueries:
    """Mixed into ``Store`` through ``Repository``; holds no state of its own."""

    # --- adapters --------------------------------------------------------------------------------

    def adapter_versions(
        self, session: Session, newest_first: bool = False
    ) -> list[AdapterVersion]:
        order = AdapterVersion.id.desc() if newest_first else AdapterVersion.id
        return list(session.scalars(select(AdapterVersion).order_by(order)))

    def add_adapter_version(self, session: Session, **columns: Any) -> AdapterVersion:
        row = AdapterVersion(**columns)
        session.add(row)
        session.flush()
        return row

    def previous_promoted_adapter(self, session: Session, active_id: int) -> AdapterVersion | None:
        """The version promoted most recently before the active one (``active_id``), now
        retired: what a rollback restores."""
        return session.scalar(
            select(AdapterVersion)
            .where(AdapterVersion.status == "retired")
            .where(AdapterVersion.promoted_at.is_not(None))
            .where(AdapterVersion.id != active_id)
            .order_by(AdapterVersion.promoted_at.desc())
            .limit(1)
        )

    def labels_since(self, session: Session, since: datetime | None) -> int:
        """Labels linked to a draft made after ``since`` (all of them when None)."""
        query = (
            select(func.count()).select_from(TeacherReply).where(TeacherReply.draft_id.is_not(None))
        )
        if since is not None:
            query = query.where(TeacherReply.created_at > since)
        return int(session.scalar(query) or 0)

    # --- training runs ---------------------------------------------------------------------------

    def start_training_run(self, session: Session, config: dict[str, Any], log_path: str) -> int:
        """A training run, running from now on; its id."""
        run = TrainingRun(config=config, status="running", started_at=utcnow(), log_path=log_path)
        session.add(run)
        session.flush()
        return run.id

    def finish_training_run(
        self, session: Session, run_id: int, status: RunStatus, metrics: dict[str, Any]
    ) -> TrainingRun:
        run = session.get(TrainingRun, run_id)
        assert run is not None
        run.status = status
        run.finished_at = utcnow()
        run.metrics = metrics
        return run

    # --- matchers and rankers --------------------------------------------------------------------

    def matcher_versions(self, session: Session, kind: str | None = None) -> list[MatcherVersion]:
        """Every matcher version (of ``kind``), oldest first."""
        query = select(MatcherVersion).order_by(MatcherVersion.id)
        if kind is not None:
            query = query.where(MatcherVersion.kind == kind)
        return list(session.scalars(query))

    def add_matcher_version(
        self, session: Session, version: str, kind: str, path: str, metrics: dict[str, Any]
    ) -> MatcherVersion:
        row = MatcherVersion(version=version, kind=kind, path=path, metrics=metrics)
        session.add(row)
        session.flush()
        return row
