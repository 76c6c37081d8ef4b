"""Cloud teacher: the exact request sent with each teacher reply, and a persistent outbox.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("teacher_replies") as batch:
        batch.add_column(sa.Column("sent_json", sa.Text(), nullable=True))

    op.create_table(
        "teacher_outbox",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("message_id", sa.Integer(), nullable=True),
        sa.Column("draft_id", sa.Integer(), nullable=True),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'done', 'failed')", name=op.f("ck_teacher_outbox_status")
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name="fk_teacher_outbox_message_id_messages",
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["draft_id"],
            ["drafts.id"],
            name="fk_teacher_outbox_draft_id_drafts",
            ondelete="SET NULL",
        ),
    )
    op.create_index("ix_teacher_outbox_status", "teacher_outbox", ["status", "next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_teacher_outbox_status", "teacher_outbox")
    op.drop_table("teacher_outbox")
    with op.batch_alter_table("teacher_replies") as batch:
        batch.drop_column("sent_json")
