"""The tables, as typed declarative models.

These classes describe the schema for the ORM and for writing new migrations; the schema itself is
only ever created or changed by the Alembic revisions in ``migrations/versions``. A test checks
that the two agree.

Times are aware ``datetime`` values in UTC; naive values are refused on write because their zone
would be a guess. JSON columns are plain dicts: assign a new dict to change one (in-place edits are
not tracked).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal, get_args

from sqlalchemy import (
    JSON,
    DateTime,
    Dialect,
    Enum,
    ForeignKey,
    Index,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

MessageRole = Literal["customer", "agent", "system"]
ConversationStatus = Literal["open", "closed"]
ScoreMode = Literal["full", "fallback", "match_only"]
LabelSource = Literal["teacher", "agent_edit"]
AdapterMethod = Literal["lora", "prefix", "ptuning-v2"]
AdapterStatus = Literal["candidate", "active", "retired", "rejected"]
RunStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
OutboxStatus = Literal["pending", "done", "failed"]
KnowledgeKind = Literal["dialogue", "faq"]
CandidateSource = Literal["past", "faq", "model"]


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_uid() -> str:
    """An id made where the record is made (a desktop), unique across every desktop of a shop."""
    return str(uuid.uuid4())


UID_HELP = (
    "Made on the desktop: the record's identity in the shop's database (team mode), so a sync "
    "that is retried never stores it twice."
)


def uid_column() -> Mapped[str]:
    return mapped_column(String(36), default=new_uid, doc=UID_HELP)


class UTCDateTime(TypeDecorator[datetime]):
    """Stored as naive UTC (SQLite has no time zones), read back as aware UTC."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass an aware one, e.g. datetime.now(UTC)")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def choice(values: Any, name: str) -> Enum:
    """A string column limited to a Literal's values (a CHECK constraint in SQLite)."""
    return Enum(
        *get_args(values),
        name=name,
        native_enum=False,
        create_constraint=True,
        validate_strings=True,
        length=32,  # room for values added later
    )


# Fixed constraint names, so later batch migrations can refer to them.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
    }


class Customer(Base):
    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(primary_key=True)
    masked_id: Mapped[str] = mapped_column(String(128), unique=True)
    """The shop platform's buyer id after masking; the raw id never reaches the database."""
    display_name: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    conversations: Mapped[list[Conversation]] = relationship(
        back_populates="customer", cascade="all, delete-orphan", passive_deletes=True
    )


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (Index("uq_conversations_uid", "uid", unique=True),)

    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = uid_column()
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    channel: Mapped[str] = mapped_column(String(32))
    """Where the chat happens, e.g. "taobao", "jd", "manual"."""
    status: Mapped[ConversationStatus] = mapped_column(
        choice(ConversationStatus, "status"), default="open", index=True
    )
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None]

    customer: Mapped[Customer] = relationship(back_populates="conversations")
    messages: Mapped[list[Message]] = relationship(
        back_populates="conversation",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="Message.sent_at",
    )
    drafts: Mapped[list[Draft]] = relationship(
        back_populates="conversation",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="Draft.created_at",
    )


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_conversation_id_sent_at", "conversation_id", "sent_at"),
        Index("uq_messages_uid", "uid", unique=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = uid_column()
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    role: Mapped[MessageRole] = mapped_column(choice(MessageRole, "role"))
    text: Mapped[str] = mapped_column(Text)
    sent_at: Mapped[datetime] = mapped_column(default=utcnow)

    conversation: Mapped[Conversation] = relationship(back_populates="messages")


class Draft(Base):
    """A reply the end model wrote for the agent to send, edit or discard."""

    __tablename__ = "drafts"
    __table_args__ = (
        Index("ix_drafts_conversation_id_created_at", "conversation_id", "created_at"),
        Index("uq_drafts_uid", "uid", unique=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = uid_column()
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    reply_to_id: Mapped[int] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), index=True
    )
    """The customer message this draft answers."""
    text: Mapped[str] = mapped_column(Text)
    model_profile: Mapped[str] = mapped_column(String(128))
    # RESTRICT: an adapter that wrote drafts is retired, never deleted, so drafts keep provenance.
    adapter_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("adapter_versions.id", ondelete="RESTRICT"), index=True
    )
    latency_ms: Mapped[int]
    prompt_tokens: Mapped[int]
    completion_tokens: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    conversation: Mapped[Conversation] = relationship(back_populates="drafts")
    reply_to: Mapped[Message] = relationship()
    adapter_version: Mapped[AdapterVersion | None] = relationship()
    ratings: Mapped[list[Rating]] = relationship(
        back_populates="draft",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="Rating.rated_at",
    )
    scores: Mapped[list[Score]] = relationship(
        back_populates="draft",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="Score.created_at",
    )


class Rating(Base):
    """What the agent did with a draft; append-only, the latest row per draft counts."""

    __tablename__ = "ratings"
    __table_args__ = (Index("uq_ratings_uid", "uid", unique=True),)

    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = uid_column()
    draft_id: Mapped[int] = mapped_column(ForeignKey("drafts.id", ondelete="CASCADE"), index=True)
    thumbs_up: Mapped[bool | None]
    """True for thumbs up, False for thumbs down, None when the agent gave neither."""
    sent_text: Mapped[str | None] = mapped_column(Text)
    """The text the agent actually sent (None if not sent); ``edited`` says if it differs."""
    edited: Mapped[bool] = mapped_column(default=False)
    rated_at: Mapped[datetime] = mapped_column(default=utcnow)

    draft: Mapped[Draft] = relationship(back_populates="ratings")


class SyncedRecord(Base):
    """A record of this desktop's that the shop's database has (team mode, ``app.store.team``).

    A rating, score or teacher reply of this desktop's with no row here is still to be sent: the local database is the
    journal, and a sync that is retried skips what is here and never duplicates the rest (the
    shop's database ignores a ``uid`` it already has).
    """

    __tablename__ = "synced_records"

    uid: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    """Which table the record is in: "rating", "score" or "teacher_reply"."""
    synced_at: Mapped[datetime] = mapped_column(default=utcnow)


class Score(Base):
    __tablename__ = "scores"
    __table_args__ = (Index("uq_scores_uid", "uid", unique=True),)

    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = uid_column()
    draft_id: Mapped[int] = mapped_column(ForeignKey("drafts.id", ondelete="CASCADE"), index=True)
    similarity: Mapped[float | None]
    """Similarity to the reference reply; None when there was none (mode "match_only", which is
    also the mode when the reference only repeats the customer)."""
    matching: Mapped[float | None]
    """The matcher's score; None when the matcher was unavailable."""
    final: Mapped[float]
    alpha: Mapped[float]
    theta: Mapped[float]
    similarity_scorer_version: Mapped[str | None] = mapped_column(String(64))
    matching_scorer_version: Mapped[str | None] = mapped_column(String(64))
    fallback_applied: Mapped[bool] = mapped_column(default=False)
    mode: Mapped[ScoreMode] = mapped_column(choice(ScoreMode, "mode"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    draft: Mapped[Draft] = relationship(back_populates="scores")


class TeacherReply(Base):
    """A pseudo-label: a reference reply from the cloud teacher, or an agent's edit of a draft."""

    __tablename__ = "teacher_replies"
    __table_args__ = (Index("uq_teacher_replies_uid", "uid", unique=True),)

    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = uid_column()
    # SET NULL: labels stay usable for training after their conversation is deleted.
    message_id: Mapped[int | None] = mapped_column(
        ForeignKey("messages.id", ondelete="SET NULL"), index=True
    )
    draft_id: Mapped[int | None] = mapped_column(
        ForeignKey("drafts.id", ondelete="SET NULL"), index=True
    )
    provider: Mapped[str | None] = mapped_column(String(64))
    model: Mapped[str | None] = mapped_column(String(128))
    query_text: Mapped[str] = mapped_column(Text)
    """The redacted text that was actually sent to the cloud."""
    reply_text: Mapped[str] = mapped_column(Text)
    prompt_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    input_tokens: Mapped[int] = mapped_column(default=0)
    output_tokens: Mapped[int] = mapped_column(default=0)
    cost: Mapped[float | None]
    """What the call cost, in the provider's billing currency; None when unknown."""
    label_source: Mapped[LabelSource] = mapped_column(choice(LabelSource, "label_source"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_json: Mapped[str | None] = mapped_column(Text)
    """Exactly what went to the provider (all messages, redacted), as JSON."""
    label_text: Mapped[str | None] = mapped_column(Text)
    """The label training learns: the text the agent was shown (the teacher's reply with this
    conversation's own values restored, or the agent's edit); None when it is not one."""
    unusable_reason: Mapped[str | None] = mapped_column(Text)
    """Why this reply is kept but never learned (a placeholder not from its conversation)."""

    message: Mapped[Message | None] = relationship()
    draft: Mapped[Draft | None] = relationship()


class OutboxItem(Base):
    """A teacher request that has not been answered yet; retried until done, never lost.

    ``request`` holds the conversation as typed on the device (redaction happens at send time).
    """

    __tablename__ = "teacher_outbox"
    __table_args__ = (Index("ix_teacher_outbox_status", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
    draft_id: Mapped[int | None] = mapped_column(ForeignKey("drafts.id", ondelete="SET NULL"))
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[OutboxStatus] = mapped_column(choice(OutboxStatus, "status"), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AdapterVersion(Base):
    __tablename__ = "adapter_versions"
    __table_args__ = (
        # At most one active adapter, enforced by the database itself.
        Index(
            "uq_adapter_versions_one_active",
            "status",
            unique=True,
            sqlite_where=text("status = 'active'"),
            postgresql_where=text("status = 'active'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[str] = mapped_column(String(64), unique=True)
    method: Mapped[AdapterMethod] = mapped_column(choice(AdapterMethod, "method"))
    base_model: Mapped[str] = mapped_column(String(128))
    """The model profile the adapter was trained on; it only fits that base."""
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("adapter_versions.id", ondelete="RESTRICT")
    )
    path: Mapped[str] = mapped_column(String(1024))
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[AdapterStatus] = mapped_column(
        choice(AdapterStatus, "status"), default="candidate", index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    promoted_at: Mapped[datetime | None]

    parent: Mapped[AdapterVersion | None] = relationship(remote_side="AdapterVersion.id")


class TrainingRun(Base):
    __tablename__ = "training_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    # SET NULL: the run stays in the history even if the candidate it made is removed.
    adapter_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("adapter_versions.id", ondelete="SET NULL"), index=True
    )
    config: Mapped[dict[str, Any]]
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    log_path: Mapped[str | None] = mapped_column(String(1024))
    status: Mapped[RunStatus] = mapped_column(
        choice(RunStatus, "status"), default="queued", index=True
    )
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    adapter_version: Mapped[AdapterVersion | None] = relationship()


class MatcherVersion(Base):
    __tablename__ = "matcher_versions"
    __table_args__ = (
        # One active version per kind (Store.set_active_matcher also keeps one active matcher
        # across the matcher kinds; the suggestion ranker is chosen on its own).
        Index(
            "uq_matcher_versions_one_active_per_kind",
            "kind",
            "active",
            unique=True,
            sqlite_where=text("active = 1"),
            postgresql_where=text("active"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    path: Mapped[str] = mapped_column(String(1024))
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    active: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class KnowledgeSourceRow(Base):
    """One imported file of the shop's knowledge: past dialogues or an FAQ (``app.knowledge``)."""

    __tablename__ = "knowledge_sources"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    kind: Mapped[KnowledgeKind] = mapped_column(choice(KnowledgeKind, "kind"))
    format: Mapped[str] = mapped_column(String(32))
    """How the file was read: jddc2018, jddc2019, jsonl, csv, faq, or "pairs" (given in memory)."""
    path: Mapped[str | None] = mapped_column(String(1024))
    encoder: Mapped[str] = mapped_column(String(128))
    """The sentence encoder (and version) that made the entries' embeddings."""
    entries: Mapped[int] = mapped_column(default=0)
    imported_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class KnowledgeEntryRow(Base):
    """A customer question with the shop's answer to it, and the embedding of the question."""

    __tablename__ = "knowledge_entries"
    __table_args__ = (UniqueConstraint("source_id", "content_hash"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("knowledge_sources.id", ondelete="CASCADE"))
    kind: Mapped[KnowledgeKind] = mapped_column(choice(KnowledgeKind, "kind"))
    context: Mapped[list[str]] = mapped_column(JSON)
    """The turns before the answer, customer first and alternating; an FAQ entry: [question]."""
    query: Mapped[str] = mapped_column(Text)
    answer: Mapped[str] = mapped_column(Text)
    conversation: Mapped[str | None] = mapped_column(String(256))
    """The conversation a past dialogue came from (so evaluations can hold whole chats out)."""
    content_hash: Mapped[str] = mapped_column(String(64))
    """Identifies the entry within its source, so a re-import adds and removes only changes."""
    embedding: Mapped[bytes] = mapped_column(LargeBinary)
    """The query's sentence vector, float32, little-endian."""


class SuggestionCandidate(Base):
    """One reply offered to the agent for a customer message, in the order it was shown."""

    __tablename__ = "suggestion_candidates"

    id: Mapped[int] = mapped_column(primary_key=True)
    reply_to_id: Mapped[int] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), index=True
    )
    draft_id: Mapped[int | None] = mapped_column(
        ForeignKey("drafts.id", ondelete="SET NULL"), index=True
    )
    """The draft row made for it: the model's own draft, or any candidate once it was sent."""
    rank: Mapped[int]
    source: Mapped[CandidateSource] = mapped_column(choice(CandidateSource, "source"))
    knowledge_entry_id: Mapped[int | None] = mapped_column(
        ForeignKey("knowledge_entries.id", ondelete="SET NULL"), index=True
    )
    text: Mapped[str] = mapped_column(Text)
    score: Mapped[float | None]
    features: Mapped[dict[str, Any]] = mapped_column(default=dict)
    chosen: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PublishedAdapter(Base):
    """An adapter version's served files, kept in the shop's database so every desktop can fetch
    them (team mode, ``app.team.adapters``): a LoRA's GGUF file as it is, a peft folder as a zip."""

    __tablename__ = "published_adapters"

    id: Mapped[int] = mapped_column(primary_key=True)
    adapter_version_id: Mapped[int] = mapped_column(
        ForeignKey("adapter_versions.id", ondelete="CASCADE"), unique=True
    )
    sha256: Mapped[str] = mapped_column(String(64))
    """The hash of the served files (``promotion.sha256_of``), as recorded at export."""
    packing: Mapped[str] = mapped_column(String(16))
    """``file`` (the bytes are the served file) or ``zip`` (a folder)."""
    size: Mapped[int]
    data: Mapped[bytes] = mapped_column(LargeBinary)
    published_at: Mapped[datetime] = mapped_column(default=utcnow)

    adapter_version: Mapped[AdapterVersion] = relationship()


class JobEvent(Base):
    """One progress event of a job in the shop's queue (a procrastinate job id), as the worker
    reported it; the desktop that enqueued the job reads them to show its progress."""

    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(index=True)
    event: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TeamRole(Base):
    """A role in the shop (``manager``): only a salted hash of its secret is kept here; the
    secret itself lives in the OS keyring of the desktops that hold the role."""

    __tablename__ = "team_roles"

    role: Mapped[str] = mapped_column(String(32), primary_key=True)
    secret_hash: Mapped[str] = mapped_column(String(256))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
