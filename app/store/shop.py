"""The store's queries for team mode (``app.team``) on the shop's database: published adapters,
the job queue's state and progress events, and the team's roles, as methods of ``Store`` (mixed
into ``Repository``). Like the other repository methods, each runs in the caller's unit of
work."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from app.store.models import JobEvent, PublishedAdapter, TeamRole


class ShopQueries:
    """Mixed into ``Store`` through ``Repository``; holds no state of its own."""

    # --- published adapters ----------------------------------------------------------------------

    def published_adapter(
        self, session: Session, adapter_version_id: int
    ) -> PublishedAdapter | None:
        return session.scalar(
            select(PublishedAdapter).where(
                PublishedAdapter.adapter_version_id == adapter_version_id
            )
        )

    def add_published_adapter(
        self, session: Session, adapter_version_id: int, sha256: str, packing: str, data: bytes
    ) -> PublishedAdapter:
        row = PublishedAdapter(
            adapter_version_id=adapter_version_id,
            sha256=sha256,
            packing=packing,
            size=len(data),
            data=data,
        )
        session.add(row)
        session.flush()
        return row

    def notify(self, session: Session, channel: str, payload: str) -> None:
        """PostgreSQL's NOTIFY on ``channel``, sent when the unit of work commits (nothing on
        SQLite, which has no listeners)."""
        if session.get_bind().dialect.name == "postgresql":
            session.execute(
                text("SELECT pg_notify(:channel, :v)"), {"channel": channel, "v": payload}
            )

    # --- the job queue ---------------------------------------------------------------------------

    def queued_job(self, session: Session, job_id: int) -> tuple[str, str] | None:
        """(task name, status) of a job in procrastinate's queue, None when there is none."""
        found = session.execute(
            text("SELECT task_name, status FROM procrastinate_jobs WHERE id = :id"), {"id": job_id}
        ).first()
        return None if found is None else (str(found[0]), str(found[1]))

    def job_events(
        self, session: Session, job_id: int, after: int = 0
    ) -> list[tuple[int, dict[str, Any]]]:
        """(event id, event) of a job's progress events after event id ``after``, in order."""
        rows = session.execute(
            select(JobEvent.id, JobEvent.event)
            .where(JobEvent.job_id == job_id, JobEvent.id > after)
            .order_by(JobEvent.id)
        ).all()
        return [(int(i), dict(e)) for i, e in rows]

    def add_job_event(self, session: Session, job_id: int, event: dict[str, Any]) -> None:
        session.add(JobEvent(job_id=job_id, event=event))

    # --- roles -----------------------------------------------------------------------------------

    def team_role(self, session: Session, role: str, for_update: bool = False) -> TeamRole | None:
        return session.get(TeamRole, role, with_for_update=for_update)

    def add_team_role(self, session: Session, role: str, secret_hash: str) -> TeamRole:
        row = TeamRole(role=role, secret_hash=secret_hash)
        session.add(row)
        session.flush()
        return row
