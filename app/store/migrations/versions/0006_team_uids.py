"""Team mode: ids made on the desktop for conversations, messages, drafts and ratings, and the
records the shop's database already has.

Existing rows get a random id each (32 hex digits, a UUID without its dashes), made in SQL so a
large file is done in one statement per table.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None

TABLES = ("conversations", "messages", "drafts", "ratings")


def _random_uid() -> str:
    if op.get_bind().dialect.name == "postgresql":
        return "md5(random()::text || clock_timestamp()::text || id::text)"
    return "lower(hex(randomblob(16)))"


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("uid", sa.String(36), nullable=True))
        op.execute(f"UPDATE {table} SET uid = {_random_uid()}")
        with op.batch_alter_table(table) as batch:
            batch.alter_column("uid", existing_type=sa.String(36), nullable=False)
        op.create_index(f"uq_{table}_uid", table, ["uid"], unique=True)

    op.create_table(
        "synced_records",
        sa.Column("uid", sa.String(36), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("synced_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("uid", name="pk_synced_records"),
    )


def downgrade() -> None:
    op.drop_table("synced_records")
    for table in reversed(TABLES):
        op.drop_index(f"uq_{table}_uid", table_name=table)
        with op.batch_alter_table(table) as batch:
            batch.drop_column("uid")
