"""The store's queries for the agent's workspace (``app.ui.workspace``): conversations, their
messages, and the latest score and rating of a draft, as methods of ``Store`` (mixed into
``Repository``). Like the other repository methods, each runs in the caller's unit of work."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.store.models import Conversation, Customer, Draft, Message, Rating, Score, utcnow


class ConversationQueries:
    """Mixed into ``Store`` through ``Repository``; holds no state of its own."""

    def open_conversation_id(self, session: Session, customer_id: int, channel: str) -> int | None:
        """The customer's latest open conversation on ``channel``, if any."""
        found = session.scalar(
            select(Conversation.id)
            .where(Conversation.customer_id == customer_id)
            .where(Conversation.channel == channel)
            .where(Conversation.status == "open")
            .order_by(Conversation.id.desc())
        )
        return None if found is None else int(found)

    def close_conversation(self, session: Session, conversation_id: int) -> None:
        """Close an open conversation (one closed already, or gone, is left as it is)."""
        row = session.get(Conversation, conversation_id)
        if row is not None and row.status == "open":
            row.status = "closed"
            row.closed_at = utcnow()

    def conversation_messages(self, session: Session, conversation_id: int) -> list[Message]:
        """A conversation's messages in the order they were sent."""
        return list(
            session.scalars(
                select(Message)
                .where(Message.conversation_id == conversation_id)
                .order_by(Message.sent_at, Message.id)
            )
        )

    def conversations_with_customers(
        self, session: Session, status: str = "open", ids: Sequence[int] | None = None
    ) -> list[tuple[Conversation, Customer]]:
        """The conversations ``ids`` (else those in ``status``), with their customers, by id."""
        query = (
            select(Conversation, Customer)
            .join(Customer, Conversation.customer_id == Customer.id)
            .order_by(Conversation.id)
        )
        query = (
            query.where(Conversation.id.in_(list(ids)))
            if ids is not None
            else query.where(Conversation.status == status)
        )
        return [(c, u) for c, u in session.execute(query).all()]

    def chat_messages(self, session: Session, conversation_ids: Sequence[int]) -> list[Message]:
        """The customers' and agents' messages (no system lines) of these conversations, per
        conversation in the order they were sent."""
        return list(
            session.scalars(
                select(Message)
                .where(Message.conversation_id.in_(list(conversation_ids)))
                .where(Message.role != "system")
                .order_by(Message.conversation_id, Message.sent_at, Message.id)
            )
        )

    def draft_with_context(
        self, session: Session, draft_id: int, turns: int
    ) -> tuple[Draft, list[Message]] | None:
        """A draft and the last ``turns`` messages (no system lines) up to the one it answers,
        oldest first; None when there is no such draft."""
        draft = session.get(Draft, draft_id)
        if draft is None:
            return None
        rows = session.scalars(
            select(Message)
            .where(Message.conversation_id == draft.conversation_id)
            .where(Message.role != "system")
            .where(Message.id <= draft.reply_to_id)
            .order_by(Message.id.desc())
            .limit(turns)
        ).all()
        return draft, list(reversed(rows))

    def latest_score(self, session: Session, draft_id: int) -> Score | None:
        return session.scalars(
            select(Score).where(Score.draft_id == draft_id).order_by(Score.id.desc()).limit(1)
        ).first()

    def latest_rating(self, session: Session, draft_id: int) -> Rating | None:
        return session.scalars(
            select(Rating).where(Rating.draft_id == draft_id).order_by(Rating.id.desc())
        ).first()

    def draft_count(self, session: Session) -> int:
        return int(session.scalar(select(func.count()).select_from(Draft)) or 0)
