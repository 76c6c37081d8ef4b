"""One active version per kind in matcher_versions: the in-domain matcher ("indomain") and the
suggestion ranker ("ranker") are chosen independently.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.drop_index("uq_matcher_versions_one_active", table_name="matcher_versions")
    op.create_index(
        "uq_matcher_versions_one_active_per_kind",
        "matcher_versions",
        ["kind", "active"],
        unique=True,
        sqlite_where=sa.text("active = 1"),
        postgresql_where=sa.text("active"),
    )


def downgrade() -> None:
    # Before 0005 only one version of any kind could be active: keep the matcher's.
    matchers = sa.table("matcher_versions", sa.column("active", sa.Boolean()), sa.column("kind"))
    op.execute(
        matchers.update()
        .where(matchers.c.active.is_(True), matchers.c.kind != "indomain")
        .values(active=False)
    )
    op.drop_index("uq_matcher_versions_one_active_per_kind", table_name="matcher_versions")
    op.create_index(
        "uq_matcher_versions_one_active",
        "matcher_versions",
        ["active"],
        unique=True,
        sqlite_where=sa.text("active = 1"),
        postgresql_where=sa.text("active"),
    )
