"""Teacher replies: the label as the agent was shown it, and why a reply is not learned.

Before, training restored a teacher's placeholders by redacting the conversation again. Rows from
then get their label here: the reply itself where it holds no placeholder (what training used),
the agent's own text for an edit. A teacher reply with placeholders cannot be restored safely
after the fact (detection may have changed, and the placeholder may have come from an example
dialogue), so it is kept, flagged, and no longer learned.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

# Any typed placeholder, of the firewall's types then or later ([PHONE_1], [ADDRESS_12] …).
_PLACEHOLDER = re.compile(r"\[[A-Z][A-Z_]*_\d+\]")
LEGACY_REASON = (
    "recorded before placeholders were restored from the conversation's own turns; "
    "its placeholders cannot be restored safely now"
)


def upgrade() -> None:
    with op.batch_alter_table("teacher_replies") as batch:
        batch.add_column(sa.Column("label_text", sa.Text(), nullable=True))
        batch.add_column(sa.Column("unusable_reason", sa.Text(), nullable=True))
    conn = op.get_bind()
    table = sa.table(
        "teacher_replies",
        sa.column("id", sa.Integer()),
        sa.column("reply_text", sa.Text()),
        sa.column("label_source", sa.String()),
        sa.column("label_text", sa.Text()),
        sa.column("unusable_reason", sa.Text()),
    )
    rows = conn.execute(sa.select(table.c.id, table.c.reply_text, table.c.label_source)).all()
    for row_id, reply, source in rows:
        if source == "teacher" and _PLACEHOLDER.search(reply or ""):
            values = {"label_text": None, "unusable_reason": LEGACY_REASON}
        else:
            values = {"label_text": reply, "unusable_reason": None}
        conn.execute(sa.update(table).where(table.c.id == row_id).values(**values))


def downgrade() -> None:
    with op.batch_alter_table("teacher_replies") as batch:
        batch.drop_column("unusable_reason")
        batch.drop_column("label_text")
