"""Team mode: the job queue (procrastinate's tables, PostgreSQL only), jobs' progress events,
adapters published into the shop's database, and the manager role's secret hash.

procrastinate's schema is the one of the pinned version (3.10); a later procrastinate brings its
own migration files, applied in a later revision.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "published_adapters",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("adapter_version_id", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("packing", sa.String(16), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("published_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["adapter_version_id"],
            ["adapter_versions.id"],
            name="fk_published_adapters_adapter_version_id_adapter_versions",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("adapter_version_id", name="uq_published_adapters_adapter_version_id"),
    )
    op.create_table(
        "job_events",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("event", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_job_events_job_id", "job_events", ["job_id"])
    op.create_table(
        "team_roles",
        sa.Column("role", sa.String(32), primary_key=True),
        sa.Column("secret_hash", sa.String(256), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        from procrastinate.schema import SchemaManager

        # Through psycopg itself: no parameters, so the script's '%' and ':' stay as they are
        # and its statements run as one script (the simple query protocol).
        bind.connection.driver_connection.execute(SchemaManager.get_schema())  # type: ignore[union-attr]


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        for table in (
            "procrastinate_events",
            "procrastinate_periodic_defers",
            "procrastinate_jobs",
            "procrastinate_workers",
        ):
            op.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
        names = bind.exec_driver_sql(
            "SELECT p.oid::regprocedure::text FROM pg_proc p "
            "JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = current_schema() AND p.proname LIKE 'procrastinate%%'"
        ).scalars()
        for name in list(names):
            op.execute(f"DROP FUNCTION IF EXISTS {name} CASCADE")
        for kind in (
            "procrastinate_job_to_defer_v1",
            "procrastinate_job_status",
            "procrastinate_job_event_type",
        ):
            op.execute(f"DROP TYPE IF EXISTS {kind} CASCADE")
    op.drop_table("team_roles")
    op.drop_index("ix_job_events_job_id", "job_events")
    op.drop_table("job_events")
    op.drop_table("published_adapters")
