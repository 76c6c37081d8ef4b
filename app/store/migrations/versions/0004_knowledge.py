"""Shop knowledge: imported sources (past dialogues, FAQs) with their entries and embeddings, and
the suggestion candidates shown for a customer message.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def _kind(table: str) -> tuple[sa.Column[str], sa.CheckConstraint]:
    return (
        sa.Column("kind", sa.String(32), nullable=False),
        sa.CheckConstraint("kind IN ('dialogue', 'faq')", name=op.f(f"ck_{table}_kind")),
    )


def upgrade() -> None:
    op.create_table(
        "knowledge_sources",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        *_kind("knowledge_sources"),
        sa.Column("format", sa.String(32), nullable=False),
        sa.Column("path", sa.String(1024), nullable=True),
        sa.Column("encoder", sa.String(128), nullable=False),
        sa.Column("entries", sa.Integer(), nullable=False),
        sa.Column("imported_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("name", name="uq_knowledge_sources_name"),
    )

    op.create_table(
        "knowledge_entries",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("source_id", sa.Integer(), nullable=False),
        *_kind("knowledge_entries"),
        sa.Column("context", sa.JSON(), nullable=False),
        sa.Column("query", sa.Text(), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("conversation", sa.String(256), nullable=True),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["source_id"],
            ["knowledge_sources.id"],
            name="fk_knowledge_entries_source_id_knowledge_sources",
            ondelete="CASCADE",
        ),
        # Also the index for "the entries of a source".
        sa.UniqueConstraint(
            "source_id", "content_hash", name="uq_knowledge_entries_source_id_content_hash"
        ),
    )

    op.create_table(
        "suggestion_candidates",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("reply_to_id", sa.Integer(), nullable=False),
        sa.Column("draft_id", sa.Integer(), nullable=True),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("knowledge_entry_id", sa.Integer(), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("score", sa.Double(), nullable=True),
        sa.Column("features", sa.JSON(), nullable=False),
        sa.Column("chosen", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint(
            "source IN ('past', 'faq', 'model')", name=op.f("ck_suggestion_candidates_source")
        ),
        sa.ForeignKeyConstraint(
            ["reply_to_id"],
            ["messages.id"],
            name="fk_suggestion_candidates_reply_to_id_messages",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["draft_id"],
            ["drafts.id"],
            name="fk_suggestion_candidates_draft_id_drafts",
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["knowledge_entry_id"],
            ["knowledge_entries.id"],
            name="fk_suggestion_candidates_knowledge_entry_id_knowledge_entries",
            ondelete="SET NULL",
        ),
    )
    op.create_index(
        "ix_suggestion_candidates_reply_to_id", "suggestion_candidates", ["reply_to_id"]
    )
    op.create_index("ix_suggestion_candidates_draft_id", "suggestion_candidates", ["draft_id"])
    # Removing a knowledge source deletes its entries one by one; each delete looks up the
    # candidates pointing at the entry, so that lookup must be indexed.
    op.create_index(
        "ix_suggestion_candidates_knowledge_entry_id",
        "suggestion_candidates",
        ["knowledge_entry_id"],
    )


def downgrade() -> None:
    op.drop_table("suggestion_candidates")
    op.drop_table("knowledge_entries")
    op.drop_table("knowledge_sources")
