"""The store's queries for the shop's knowledge (``app.knowledge``) and for the suggestion
candidates shown to the agent, as methods of ``Store`` (mixed into ``Repository``).

Like the other repository methods, each runs in the caller's unit of work. Entries are written
and read in bulk (an import may hold a million of them), through Core statements rather than one
ORM object per row.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Row, delete, func, insert, select, update
from sqlalchemy.orm import Session

from app.store.models import (
    CandidateSource,
    KnowledgeEntryRow,
    KnowledgeKind,
    KnowledgeSourceRow,
    Message,
    SuggestionCandidate,
    utcnow,
)

_CHUNK = 500
"""Ids per ``IN (…)`` list: well below SQLite's limit on bound parameters."""


@dataclass(frozen=True)
class NewKnowledgeEntry:
    """An entry to insert; ``embedding`` is the query's float32 vector as bytes."""

    kind: KnowledgeKind
    context: Sequence[str]
    query: str
    answer: str
    content_hash: str
    embedding: bytes
    conversation: str | None = None


@dataclass(frozen=True)
class NewCandidate:
    """A candidate reply to record, in the order shown (``rank`` 0 is the one drafted)."""

    rank: int
    source: CandidateSource
    text: str
    score: float | None = None
    knowledge_entry_id: int | None = None
    draft_id: int | None = None
    features: dict[str, Any] = field(default_factory=dict)


class KnowledgeQueries:
    """Mixed into ``Store`` through ``Repository``; holds no state of its own."""

    # --- sources ---------------------------------------------------------------------------------

    def knowledge_sources(self, session: Session) -> list[KnowledgeSourceRow]:
        return list(session.scalars(select(KnowledgeSourceRow).order_by(KnowledgeSourceRow.name)))

    def knowledge_source(self, session: Session, name: str) -> KnowledgeSourceRow | None:
        return session.scalar(select(KnowledgeSourceRow).where(KnowledgeSourceRow.name == name))

    def knowledge_source_by_id(self, session: Session, source_id: int) -> KnowledgeSourceRow | None:
        return session.get(KnowledgeSourceRow, source_id)

    def add_knowledge_source(
        self,
        session: Session,
        name: str,
        *,
        kind: KnowledgeKind,
        format: str,
        path: str | None,
        encoder: str,
    ) -> KnowledgeSourceRow:
        source = KnowledgeSourceRow(
            name=name, kind=kind, format=format, path=path, encoder=encoder, entries=0
        )
        session.add(source)
        session.flush()
        return source

    def refresh_knowledge_source(
        self, session: Session, source_id: int, **changes: Any
    ) -> KnowledgeSourceRow:
        """Recount the source's entries, set ``updated_at`` and any other ``changes``."""
        source = session.get(KnowledgeSourceRow, source_id)
        if source is None:
            raise LookupError(f"knowledge source {source_id} does not exist")
        for key, value in changes.items():
            setattr(source, key, value)
        source.entries = (
            session.scalar(select(func.count()).where(KnowledgeEntryRow.source_id == source_id))
            or 0
        )
        source.updated_at = utcnow()
        session.flush()
        return source

    def remove_knowledge_source(self, session: Session, name: str) -> list[int]:
        """Delete a source and its entries; returns the ids of the entries deleted."""
        source = self.knowledge_source(session, name)
        if source is None:
            raise LookupError(f"no knowledge source named {name!r}")
        ids = list(
            session.scalars(
                select(KnowledgeEntryRow.id).where(KnowledgeEntryRow.source_id == source.id)
            )
        )
        session.execute(delete(KnowledgeEntryRow).where(KnowledgeEntryRow.source_id == source.id))
        session.execute(delete(KnowledgeSourceRow).where(KnowledgeSourceRow.id == source.id))
        return ids

    # --- entries ---------------------------------------------------------------------------------

    def knowledge_hashes(self, session: Session, source_id: int) -> dict[str, int]:
        """content hash → entry id, for every entry of the source."""
        rows = session.execute(
            select(KnowledgeEntryRow.content_hash, KnowledgeEntryRow.id).where(
                KnowledgeEntryRow.source_id == source_id
            )
        )
        return {h: i for h, i in rows}

    def add_knowledge_entries(
        self, session: Session, source_id: int, entries: Sequence[NewKnowledgeEntry]
    ) -> list[int]:
        """Insert entries in one statement; returns their ids in the order given."""
        if not entries:
            return []
        rows = [
            {
                "source_id": source_id,
                "kind": e.kind,
                "context": list(e.context),
                "query": e.query,
                "answer": e.answer,
                "conversation": e.conversation,
                "content_hash": e.content_hash,
                "embedding": e.embedding,
            }
            for e in entries
        ]
        result = session.execute(
            insert(KnowledgeEntryRow).returning(KnowledgeEntryRow.id, sort_by_parameter_order=True),
            rows,
        )
        return [int(i) for i in result.scalars()]

    def delete_knowledge_entries(self, session: Session, ids: Iterable[int]) -> int:
        ids = list(ids)
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            session.execute(delete(KnowledgeEntryRow).where(KnowledgeEntryRow.id.in_(chunk)))
        return len(ids)

    def knowledge_entries_by_id(self, session: Session, ids: Sequence[int]) -> dict[int, Row[Any]]:
        """The entries with these ids (those that still exist), by id, as rows of ``id, source``
        (the source's name), ``kind, context, query, answer, conversation``."""
        found: dict[int, Row[Any]] = {}
        for start in range(0, len(ids), _CHUNK):
            chunk = list(ids[start : start + _CHUNK])
            for row in session.execute(_entry_columns().where(KnowledgeEntryRow.id.in_(chunk))):
                found[row.id] = row
        return found

    def knowledge_entries_page(
        self, session: Session, after_id: int = 0, limit: int = 1000, source: str | None = None
    ) -> list[Row[Any]]:
        """Up to ``limit`` entries (of one source, by name) with ids above ``after_id``, by id, as
        ``knowledge_entries_by_id`` gives them. Paging keeps each unit of work short."""
        statement = (
            _entry_columns()
            .where(KnowledgeEntryRow.id > after_id)
            .order_by(KnowledgeEntryRow.id)
            .limit(limit)
        )
        if source is not None:
            statement = statement.where(KnowledgeSourceRow.name == source)
        return list(session.execute(statement))

    def knowledge_ids(self, session: Session, kind: KnowledgeKind) -> list[int]:
        """The ids of every entry of one kind, ascending."""
        return list(
            session.scalars(
                select(KnowledgeEntryRow.id)
                .where(KnowledgeEntryRow.kind == kind)
                .order_by(KnowledgeEntryRow.id)
            )
        )

    def knowledge_count(self, session: Session) -> int:
        return session.scalar(select(func.count()).select_from(KnowledgeEntryRow)) or 0

    def knowledge_embeddings_page(
        self, session: Session, kind: KnowledgeKind, after_id: int = 0, limit: int = 20_000
    ) -> list[tuple[int, bytes]]:
        """(entry id, embedding bytes) of up to ``limit`` entries of one kind with ids above
        ``after_id``, by id."""
        rows = session.execute(
            select(KnowledgeEntryRow.id, KnowledgeEntryRow.embedding)
            .where(KnowledgeEntryRow.kind == kind, KnowledgeEntryRow.id > after_id)
            .order_by(KnowledgeEntryRow.id)
            .limit(limit)
        )
        return [(int(i), bytes(e)) for i, e in rows]

    def knowledge_embeddings_by_id(self, session: Session, ids: Sequence[int]) -> dict[int, bytes]:
        found: dict[int, bytes] = {}
        for start in range(0, len(ids), _CHUNK):
            chunk = list(ids[start : start + _CHUNK])
            rows = session.execute(
                select(KnowledgeEntryRow.id, KnowledgeEntryRow.embedding).where(
                    KnowledgeEntryRow.id.in_(chunk)
                )
            )
            found.update((int(i), bytes(e)) for i, e in rows)
        return found

    def stale_knowledge_sources(self, session: Session, encoder: str) -> list[KnowledgeSourceRow]:
        """Sources whose embeddings another encoder made (they must be embedded again)."""
        return list(
            session.scalars(select(KnowledgeSourceRow).where(KnowledgeSourceRow.encoder != encoder))
        )

    def set_knowledge_embeddings(self, session: Session, embeddings: dict[int, bytes]) -> None:
        if embeddings:
            session.execute(
                update(KnowledgeEntryRow),
                [{"id": i, "embedding": e} for i, e in embeddings.items()],
            )

    # --- suggestion candidates --------------------------------------------------------------

    def record_candidates(
        self, session: Session, reply_to_id: int, candidates: Sequence[NewCandidate]
    ) -> list[SuggestionCandidate]:
        """The candidates shown for customer message ``reply_to_id``, in their order."""
        rows = [
            SuggestionCandidate(
                reply_to_id=reply_to_id,
                draft_id=c.draft_id,
                rank=c.rank,
                source=c.source,
                knowledge_entry_id=c.knowledge_entry_id,
                text=c.text,
                score=c.score,
                features=dict(c.features),
            )
            for c in candidates
        ]
        session.add_all(rows)
        session.flush()
        return rows

    def candidates_for(self, session: Session, reply_to_id: int) -> list[SuggestionCandidate]:
        """The candidates recorded for a customer message, best rank first (every time they were
        shown, oldest first within a rank)."""
        return list(
            session.scalars(
                select(SuggestionCandidate)
                .where(SuggestionCandidate.reply_to_id == reply_to_id)
                .order_by(SuggestionCandidate.rank, SuggestionCandidate.id)
            )
        )

    def choose_candidate(
        self, session: Session, candidate_id: int, draft_id: int | None = None
    ) -> SuggestionCandidate:
        """Mark the candidate the agent sent (the others for that message are not chosen) and,
        when given, the draft row made for it."""
        chosen = session.get(SuggestionCandidate, candidate_id)
        if chosen is None:
            raise LookupError(f"suggestion candidate {candidate_id} does not exist")
        session.execute(
            update(SuggestionCandidate)
            .where(
                SuggestionCandidate.reply_to_id == chosen.reply_to_id,
                SuggestionCandidate.id != candidate_id,
            )
            .values(chosen=False)
        )
        chosen.chosen = True
        if draft_id is not None:
            chosen.draft_id = draft_id
        session.flush()
        return chosen

    def sent_replies(self, session: Session, limit: int) -> list[tuple[list[str], str]]:
        """The agents' replies sent in the app, newest first: (the conversation's turns up to the
        customer's message it answered, the reply as sent). At most ``limit``."""
        newest = (
            select(Message.id)
            .where(Message.role == "agent")
            .order_by(Message.id.desc())
            .limit(limit)
            .subquery()
        )
        conversations = select(Message.conversation_id).where(Message.id.in_(select(newest)))
        rows = session.execute(
            select(Message.id, Message.conversation_id, Message.role, Message.text)
            .where(Message.conversation_id.in_(conversations))
            .order_by(Message.conversation_id, Message.sent_at, Message.id)
        ).all()
        wanted = set(session.scalars(select(newest.c.id)))
        out: list[tuple[int, list[str], str]] = []
        turns: list[str] = []
        last_role, last_conversation = "", None
        for message_id, conversation_id, role, text in rows:
            if conversation_id != last_conversation:
                turns, last_role, last_conversation = [], "", conversation_id
            if role == "agent" and last_role == "customer" and message_id in wanted:
                out.append((message_id, list(turns), text))
            if text.strip():
                turns.append(text)
                last_role = role
        out.sort(key=lambda item: -item[0])
        return [(context, reply) for _id, context, reply in out]


def _entry_columns() -> Any:
    """An entry's fields with its source's name (``source``), without the embedding."""
    c = KnowledgeEntryRow
    return select(
        c.id,
        KnowledgeSourceRow.name.label("source"),
        c.kind,
        c.context,
        c.query,
        c.answer,
        c.conversation,
    ).join(KnowledgeSourceRow, KnowledgeSourceRow.id == c.source_id)
