"""The agent's workspace as plain Python over the store: what the window shows and records.

No Qt here: the widgets call these methods (on a worker thread where they may wait for the
database) and show what they return. Every draft, rating (with the text actually sent) and score
goes to the store through its repository helpers.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from app.engine.conversation import Turn
from app.store import Message, Rating, Store
from app.store.knowledge import NewCandidate


@dataclass(frozen=True)
class MessageView:
    id: int
    role: str
    text: str
    sent_at: datetime


@dataclass(frozen=True)
class ConversationSummary:
    id: int
    customer: str
    channel: str
    status: str
    last_text: str
    waiting_since: datetime | None
    """When the oldest unanswered customer message arrived; None when nothing is unanswered."""
    unanswered: int
    """Customer messages since the shop's last reply."""


@dataclass(frozen=True)
class ScoreView:
    final: float
    similarity: float | None
    matching: float | None
    mode: str
    fallback: bool


@dataclass(frozen=True)
class DraftRecord:
    """What the model worker knows about a finished draft, for the store."""

    reply_to_id: int
    text: str
    model_profile: str
    latency_ms: int
    prompt_tokens: int
    completion_tokens: int
    adapter: str | None


@dataclass(frozen=True)
class SentCandidates:
    """The candidates a reply was picked from, for the store (the ranker learns from them)."""

    reply_to_id: int
    ranking: Sequence[Any]
    """``app.suggest``'s ``Suggestion`` objects, best first, as the agent last saw them."""
    chosen: int | None
    """The index in ``ranking`` of the candidate sent (edited or not); None: the agent's own."""
    draft_ids: dict[int, int]
    """Index in ``ranking`` → the draft row of that candidate, where it has one."""


KNOWLEDGE_PROFILE = "knowledge:{0}"
"""The draft row of a retrieved candidate: ``knowledge:past`` or ``knowledge:faq``."""


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "＝", "＋", "－", "＠")
"""What makes a spreadsheet read a cell as a formula (OWASP's list, plus the full-width forms
that Chinese input produces and some spreadsheets accept)."""


def spreadsheet_safe(cell: object) -> object:
    """A CSV cell a spreadsheet shows as text: one starting like a formula gets a leading ``'``
    (OWASP's advice against CSV injection); a customer's message can't run anything."""
    if isinstance(cell, str) and cell.startswith(FORMULA_STARTS):
        return "'" + cell
    return cell


class Workspace:
    def __init__(self, store: Store, on_rated: Callable[[], None] | None = None) -> None:
        self.store = store
        self.on_rated = on_rated
        """Called after a rating is saved (team mode: the shop sync sends it at once)."""

    # --- arriving and sent messages --------------------------------------------------------

    def conversation_for(self, channel: str, customer: str, display_name: str | None = None) -> int:
        """The customer's open conversation on ``channel``, opened if there is none."""
        with self.store.session() as session:
            return self._conversation(session, channel, customer, display_name)

    def _conversation(
        self, session: Session, channel: str, customer: str, display_name: str | None
    ) -> int:
        masked = f"{channel}:{customer}"
        row = self.store.get_or_create_customer(session, masked, display_name or customer)
        found = self.store.open_conversation_id(session, row.id, channel)
        if found is not None:
            return found
        return self.store.open_conversation(session, row.id, channel).id

    def receive(
        self, channel: str, customer: str, text: str, display_name: str | None = None
    ) -> tuple[int, int]:
        """A customer message arrived: (conversation id, message id), in one unit of work."""
        with self.store.session() as session:
            conversation_id = self._conversation(session, channel, customer, display_name)
            message = self.store.add_message(session, conversation_id, "customer", text)
            return conversation_id, message.id

    def add_customer_message(self, conversation_id: int, text: str) -> int:
        with self.store.session() as session:
            return self.store.add_message(session, conversation_id, "customer", text).id

    def send(
        self,
        conversation_id: int,
        text: str,
        draft_id: int | None = None,
        thumbs_up: bool | None = None,
        candidates: SentCandidates | None = None,
    ) -> int:
        """The agent's reply goes into the transcript; a draft gets a rating with what was sent;
        the candidates it was picked from are kept with which one was chosen.

        All land in one unit of work, so a sent reply is never without its rating.
        """
        with self.store.session() as session:
            message = self.store.add_message(session, conversation_id, "agent", text)
            if draft_id is not None:
                self.store.record_rating(session, draft_id, thumbs_up=thumbs_up, sent_text=text)
            if candidates is not None:
                record_candidates(self.store, session, candidates)
            message_id = message.id
        if draft_id is not None and self.on_rated is not None:
            self.on_rated()
        return message_id

    def record_candidate_draft(self, reply_to_id: int, candidate: Any) -> int:
        """A draft row for a retrieved candidate (a past reply or an FAQ answer) the agent rated
        or sent, so that its ratings and edits become evolution data like the model's drafts."""
        with self.store.session() as session:
            draft = self.store.add_draft(
                session,
                reply_to_id,
                candidate.text,
                model_profile=KNOWLEDGE_PROFILE.format(candidate.source),
                latency_ms=0,
                prompt_tokens=0,
                completion_tokens=0,
            )
            return draft.id

    def record_draft(self, record: DraftRecord) -> int:
        with self.store.session() as session:
            adapter_id = None
            if record.adapter is not None:
                row = self.store.get_adapter(session, record.adapter)
                adapter_id = row.id if row is not None else None
            draft = self.store.add_draft(
                session,
                record.reply_to_id,
                record.text,
                model_profile=record.model_profile,
                latency_ms=record.latency_ms,
                prompt_tokens=record.prompt_tokens,
                completion_tokens=record.completion_tokens,
                adapter_version_id=adapter_id,
            )
            return draft.id

    def rate(self, draft_id: int, thumbs_up: bool | None) -> None:
        with self.store.session() as session:
            self.store.record_rating(session, draft_id, thumbs_up=thumbs_up)
        if self.on_rated is not None:
            self.on_rated()

    def close_conversation(self, conversation_id: int) -> None:
        with self.store.session() as session:
            self.store.close_conversation(session, conversation_id)

    # --- reading ------------------------------------------------------------------------------

    def messages(self, conversation_id: int) -> list[MessageView]:
        with self.store.session() as session:
            rows = self.store.conversation_messages(session, conversation_id)
            return [MessageView(m.id, m.role, m.text, m.sent_at) for m in rows]

    def turns(self, conversation_id: int) -> list[Turn]:
        """The conversation as the end model and the teacher see it."""
        return [
            Turn("customer" if m.role == "customer" else "agent", m.text)
            for m in self.messages(conversation_id)
            if m.role in ("customer", "agent")
        ]

    def summaries(
        self, status: str = "open", ids: list[int] | None = None
    ) -> list[ConversationSummary]:
        """One line per conversation for the queue (two queries, whatever their number)."""
        with self.store.session() as session:
            rows = self.store.conversations_with_customers(session, status, ids)
            by_conversation: dict[int, list[Message]] = {c.id: [] for c, _ in rows}
            for m in self.store.chat_messages(session, list(by_conversation)):
                by_conversation[m.conversation_id].append(m)
            out = []
            for conversation, customer in rows:
                msgs = by_conversation[conversation.id]
                unanswered: list[Message] = []
                for m in msgs:
                    unanswered = [*unanswered, m] if m.role == "customer" else []
                out.append(
                    ConversationSummary(
                        conversation.id,
                        customer.display_name or customer.masked_id,
                        conversation.channel,
                        conversation.status,
                        msgs[-1].text if msgs else "",
                        unanswered[0].sent_at if unanswered else None,
                        len(unanswered),
                    )
                )
            return out

    def summary(self, conversation_id: int) -> ConversationSummary | None:
        found = self.summaries(ids=[conversation_id])
        return found[0] if found else None

    def latest_score(self, draft_id: int) -> ScoreView | None:
        with self.store.session() as session:
            row = self.store.latest_score(session, draft_id)
            if row is None:
                return None
            return ScoreView(
                row.final, row.similarity, row.matching, row.mode, row.fallback_applied
            )

    def latest_rating(self, draft_id: int) -> Rating | None:
        with self.store.session() as session:
            return self.store.latest_rating(session, draft_id)

    def draft_count(self) -> int:
        with self.store.session() as session:
            return self.store.draft_count(session)

    # --- export -------------------------------------------------------------------------------

    def export_markdown(self, conversation_id: int) -> str:
        summary = self.summary(conversation_id)
        title = summary.customer if summary else str(conversation_id)
        channel = summary.channel if summary else ""
        lines = [
            f"# {title}",
            "",
            f"- conversation: {conversation_id}",
            f"- channel: {channel}",
            "",
        ]
        for m in self.messages(conversation_id):
            who = {"customer": "Customer", "agent": "Agent"}.get(m.role, m.role)
            stamp = m.sent_at.astimezone().strftime("%Y-%m-%d %H:%M:%S")
            lines.append(f"**{who}** ({stamp}): {m.text}")
            lines.append("")
        return "\n".join(lines)

    def export_csv(self, conversation_id: int) -> str:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["conversation", "message", "role", "sent_at", "text"])
        for m in self.messages(conversation_id):
            row = [conversation_id, m.id, m.role, m.sent_at.isoformat(), m.text]
            writer.writerow([spreadsheet_safe(cell) for cell in row])
        return out.getvalue()


def record_candidates(store: Store, session: Session, sent: SentCandidates) -> None:
    """The ranking the agent picked from (rank 0 was the draft), the sent one marked chosen."""
    rows = store.record_candidates(
        session,
        sent.reply_to_id,
        [
            NewCandidate(
                rank=rank,
                source=c.source,
                text=c.text,
                score=float(c.score),
                knowledge_entry_id=c.entry.id if getattr(c, "entry", None) is not None else None,
                draft_id=sent.draft_ids.get(rank),
                features=_plain(getattr(c, "features", None) or {}),
            )
            for rank, c in enumerate(sent.ranking)
        ],
    )
    if sent.chosen is not None:
        store.choose_candidate(session, rows[sent.chosen].id, sent.draft_ids.get(sent.chosen))


def _plain(features: dict[str, Any]) -> dict[str, Any]:
    """Features as JSON can hold them (numpy numbers become floats)."""
    out: dict[str, Any] = {}
    for key, value in features.items():
        if isinstance(value, bool | int | float | str) or value is None:
            out[str(key)] = value
        else:
            try:
                out[str(key)] = float(value)
            except (TypeError, ValueError):
                out[str(key)] = str(value)
    return out
