"""Initial schema: conversations, drafts and their ratings and scores, teacher labels, adapters,
training runs and matchers.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def _id() -> sa.Column[int]:
    return sa.Column("id", sa.Integer(), primary_key=True)


def _time(name: str, nullable: bool = False) -> sa.Column[datetime]:
    """Naive UTC (app.store.models.UTCDateTime adds the zone back on read)."""
    return sa.Column(name, sa.DateTime(), nullable=nullable)


def _choice(table: str, column: str, *values: str) -> tuple[sa.Column[str], sa.CheckConstraint]:
    allowed = ", ".join(f"'{v}'" for v in values)
    return (
        sa.Column(column, sa.String(32), nullable=False),
        # op.f: the final name, not one for the naming convention to wrap again.
        sa.CheckConstraint(f"{column} IN ({allowed})", name=op.f(f"ck_{table}_{column}")),
    )


def _fk(table: str, column: str, target: str, ondelete: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=f"fk_{table}_{column}_{target}", ondelete=ondelete
    )


def upgrade() -> None:
    op.create_table(
        "adapter_versions",
        _id(),
        sa.Column("version", sa.String(64), nullable=False),
        *_choice("adapter_versions", "method", "lora", "prefix", "ptuning-v2"),
        sa.Column("base_model", sa.String(128), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        *_choice("adapter_versions", "status", "candidate", "active", "retired", "rejected"),
        _time("created_at"),
        _time("promoted_at", nullable=True),
        _fk("adapter_versions", "parent_id", "adapter_versions", "RESTRICT"),
        sa.UniqueConstraint("version", name="uq_adapter_versions_version"),
    )
    op.create_index("ix_adapter_versions_status", "adapter_versions", ["status"])
    op.create_index(
        "uq_adapter_versions_one_active",
        "adapter_versions",
        ["status"],
        unique=True,
        sqlite_where=sa.text("status = 'active'"),
        postgresql_where=sa.text("status = 'active'"),
    )

    op.create_table(
        "customers",
        _id(),
        sa.Column("masked_id", sa.String(128), nullable=False),
        sa.Column("display_name", sa.String(128), nullable=True),
        _time("created_at"),
        sa.UniqueConstraint("masked_id", name="uq_customers_masked_id"),
    )

    op.create_table(
        "matcher_versions",
        _id(),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        _time("created_at"),
        sa.UniqueConstraint("version", name="uq_matcher_versions_version"),
    )
    op.create_index(
        "uq_matcher_versions_one_active",
        "matcher_versions",
        ["active"],
        unique=True,
        sqlite_where=sa.text("active = 1"),
        postgresql_where=sa.text("active"),
    )

    op.create_table(
        "conversations",
        _id(),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        *_choice("conversations", "status", "open", "closed"),
        _time("opened_at"),
        _time("closed_at", nullable=True),
        _fk("conversations", "customer_id", "customers", "CASCADE"),
    )
    op.create_index("ix_conversations_customer_id", "conversations", ["customer_id"])
    op.create_index("ix_conversations_status", "conversations", ["status"])

    op.create_table(
        "training_runs",
        _id(),
        sa.Column("adapter_version_id", sa.Integer(), nullable=True),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("log_path", sa.String(1024), nullable=True),
        *_choice(
            "training_runs", "status", "queued", "running", "succeeded", "failed", "cancelled"
        ),
        _time("started_at", nullable=True),
        _time("finished_at", nullable=True),
        _fk("training_runs", "adapter_version_id", "adapter_versions", "SET NULL"),
    )
    op.create_index("ix_training_runs_adapter_version_id", "training_runs", ["adapter_version_id"])
    op.create_index("ix_training_runs_status", "training_runs", ["status"])

    op.create_table(
        "messages",
        _id(),
        sa.Column("conversation_id", sa.Integer(), nullable=False),
        *_choice("messages", "role", "customer", "agent", "system"),
        sa.Column("text", sa.Text(), nullable=False),
        _time("sent_at"),
        _fk("messages", "conversation_id", "conversations", "CASCADE"),
    )
    op.create_index(
        "ix_messages_conversation_id_sent_at", "messages", ["conversation_id", "sent_at"]
    )

    op.create_table(
        "drafts",
        _id(),
        sa.Column("conversation_id", sa.Integer(), nullable=False),
        sa.Column("reply_to_id", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("model_profile", sa.String(128), nullable=False),
        sa.Column("adapter_version_id", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Integer(), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        _time("created_at"),
        _fk("drafts", "conversation_id", "conversations", "CASCADE"),
        _fk("drafts", "reply_to_id", "messages", "CASCADE"),
        _fk("drafts", "adapter_version_id", "adapter_versions", "RESTRICT"),
    )
    op.create_index(
        "ix_drafts_conversation_id_created_at", "drafts", ["conversation_id", "created_at"]
    )
    op.create_index("ix_drafts_reply_to_id", "drafts", ["reply_to_id"])
    op.create_index("ix_drafts_adapter_version_id", "drafts", ["adapter_version_id"])

    op.create_table(
        "ratings",
        _id(),
        sa.Column("draft_id", sa.Integer(), nullable=False),
        sa.Column("thumbs_up", sa.Boolean(), nullable=True),
        sa.Column("sent_text", sa.Text(), nullable=True),
        sa.Column("edited", sa.Boolean(), nullable=False),
        _time("rated_at"),
        _fk("ratings", "draft_id", "drafts", "CASCADE"),
    )
    op.create_index("ix_ratings_draft_id", "ratings", ["draft_id"])

    op.create_table(
        "scores",
        _id(),
        sa.Column("draft_id", sa.Integer(), nullable=False),
        sa.Column("similarity", sa.Double(), nullable=True),
        sa.Column("matching", sa.Double(), nullable=True),
        sa.Column("final", sa.Double(), nullable=False),
        sa.Column("alpha", sa.Double(), nullable=False),
        sa.Column("theta", sa.Double(), nullable=False),
        sa.Column("similarity_scorer_version", sa.String(64), nullable=True),
        sa.Column("matching_scorer_version", sa.String(64), nullable=True),
        sa.Column("fallback_applied", sa.Boolean(), nullable=False),
        *_choice("scores", "mode", "full", "fallback", "match_only"),
        _time("created_at"),
        _fk("scores", "draft_id", "drafts", "CASCADE"),
    )
    op.create_index("ix_scores_draft_id", "scores", ["draft_id"])

    op.create_table(
        "teacher_replies",
        _id(),
        sa.Column("message_id", sa.Integer(), nullable=True),
        sa.Column("draft_id", sa.Integer(), nullable=True),
        sa.Column("provider", sa.String(64), nullable=True),
        sa.Column("model", sa.String(128), nullable=True),
        sa.Column("query_text", sa.Text(), nullable=False),
        sa.Column("reply_text", sa.Text(), nullable=False),
        sa.Column("prompt_hash", sa.String(64), nullable=True),
        sa.Column("input_tokens", sa.Integer(), nullable=False),
        sa.Column("output_tokens", sa.Integer(), nullable=False),
        sa.Column("cost", sa.Double(), nullable=True),
        *_choice("teacher_replies", "label_source", "teacher", "agent_edit"),
        _time("created_at"),
        _fk("teacher_replies", "message_id", "messages", "SET NULL"),
        _fk("teacher_replies", "draft_id", "drafts", "SET NULL"),
    )
    op.create_index("ix_teacher_replies_message_id", "teacher_replies", ["message_id"])
    op.create_index("ix_teacher_replies_draft_id", "teacher_replies", ["draft_id"])
    op.create_index("ix_teacher_replies_prompt_hash", "teacher_replies", ["prompt_hash"])


def downgrade() -> None:
    for table in (
        "teacher_replies",
        "scores",
        "ratings",
        "drafts",
        "messages",
        "training_runs",
        "conversations",
        "matcher_versions",
        "customers",
        "adapter_versions",
    ):
        op.drop_table(table)
