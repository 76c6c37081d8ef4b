"""The few writes and look-ups the app repeats, as methods of ``Store``.

Each runs inside the unit of work the caller opened and takes its session first, so several of
them commit (or roll back) together::

    with store.session() as session:
        draft = store.add_draft(session, message_id, text, ...)

New rows are flushed at once, so their ``id`` is set when a method returns.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.store.conversations import ConversationQueries
from app.store.evolution import EvolutionQueries
from app.store.knowledge import KnowledgeQueries
from app.store.metrics import MetricsQueries
from app.store.models import (
    AdapterVersion,
    Conversation,
    Customer,
    Draft,
    MatcherVersion,
    Message,
    MessageRole,
    OutboxItem,
    Rating,
    Score,
    ScoreMode,
    TeacherReply,
    utcnow,
)
from app.store.shop import ShopQueries
from app.store.teacher import TeacherQueries
from app.store.versions import VersionQueries

OUTBOX_LEASE_S = 600.0
"""How long a taken teacher request is left to its taker before another may take it (a taker that
crashed gives its items back this way)."""

RANKER_KIND = "ranker"
"""``matcher_versions.kind`` of the suggestion ranker (``app.suggest.ranker``); every other kind
is a reply matcher, of which one is active at a time."""


class Repository(
    ConversationQueries,
    EvolutionQueries,
    KnowledgeQueries,
    MetricsQueries,
    ShopQueries,
    TeacherQueries,
    VersionQueries,
):
    """Mixed into ``Store``; holds no state of its own. By domain: the workspace's reads in
    ``conversations.py``, evolution's candidates and labels in ``evolution.py``, the charts' in
    ``metrics.py``, the shop knowledge's and the suggestion candidates' in ``knowledge.py``, the
    teacher's replies and outbox in ``teacher.py``, adapter, training-run and matcher versions in
    ``versions.py``, team mode's (published adapters, jobs, roles) in ``shop.py``."""

    def get_or_create_customer(
        self, session: Session, masked_id: str, display_name: str | None = None
    ) -> Customer:
        customer = session.scalar(select(Customer).where(Customer.masked_id == masked_id))
        if customer is None:
            customer = Customer(masked_id=masked_id, display_name=display_name)
            session.add(customer)
            session.flush()
        return customer

    def open_conversation(self, session: Session, customer_id: int, channel: str) -> Conversation:
        conversation = Conversation(customer_id=customer_id, channel=channel)
        session.add(conversation)
        session.flush()
        return conversation

    def add_message(
        self,
        session: Session,
        conversation_id: int,
        role: MessageRole,
        text: str,
        *,
        sent_at: datetime | None = None,
    ) -> Message:
        message = Message(
            conversation_id=conversation_id, role=role, text=text, sent_at=sent_at or utcnow()
        )
        session.add(message)
        session.flush()
        return message

    def add_draft(
        self,
        session: Session,
        reply_to_id: int,
        text: str,
        *,
        model_profile: str,
        latency_ms: int,
        prompt_tokens: int,
        completion_tokens: int,
        adapter_version_id: int | None = None,
    ) -> Draft:
        """A draft answering message ``reply_to_id``, in that message's conversation."""
        message = session.get(Message, reply_to_id)
        if message is None:
            raise LookupError(f"message {reply_to_id} does not exist")
        draft = Draft(
            conversation_id=message.conversation_id,
            reply_to_id=reply_to_id,
            text=text,
            model_profile=model_profile,
            adapter_version_id=adapter_version_id,
            latency_ms=latency_ms,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
        )
        session.add(draft)
        session.flush()
        return draft

    def record_rating(
        self,
        session: Session,
        draft_id: int,
        *,
        thumbs_up: bool | None = None,
        sent_text: str | None = None,
    ) -> Rating:
        """What the agent did with a draft: a thumb, and/or the text they sent (None if not sent)."""
        draft = session.get(Draft, draft_id)
        if draft is None:
            raise LookupError(f"draft {draft_id} does not exist")
        rating = Rating(
            draft_id=draft_id,
            thumbs_up=thumbs_up,
            sent_text=sent_text,
            edited=sent_text is not None and sent_text != draft.text,
        )
        session.add(rating)
        session.flush()
        return rating

    def record_score(
        self,
        session: Session,
        draft_id: int,
        *,
        final: float,
        mode: ScoreMode,
        alpha: float,
        theta: float,
        similarity: float | None = None,
        matching: float | None = None,
        similarity_scorer_version: str | None = None,
        matching_scorer_version: str | None = None,
        fallback_applied: bool = False,
    ) -> Score:
        score = Score(
            draft_id=draft_id,
            final=final,
            mode=mode,
            alpha=alpha,
            theta=theta,
            similarity=similarity,
            matching=matching,
            similarity_scorer_version=similarity_scorer_version,
            matching_scorer_version=matching_scorer_version,
            fallback_applied=fallback_applied,
        )
        session.add(score)
        session.flush()
        return score

    def take_outbox_items(
        self,
        session: Session,
        *,
        now: datetime | None = None,
        limit: int | None = None,
        lease_s: float = OUTBOX_LEASE_S,
    ) -> list[OutboxItem]:
        """The pending teacher requests that are due, oldest first, taken for ``lease_s``.

        Their next attempt moves to the end of the lease, so no other worker takes them before
        this one has settled them (or has crashed and the lease ran out). On PostgreSQL the rows
        are locked ``FOR UPDATE SKIP LOCKED``: workers taking at the same moment pass over each
        other's picks instead of waiting for them or taking them twice. SQLite has one writer at
        a time (``BEGIN IMMEDIATE``), which gives the same guarantee.
        """
        now = now or utcnow()
        query = (
            select(OutboxItem)
            .where(OutboxItem.status == "pending")
            .where(OutboxItem.next_attempt_at <= now)
            .order_by(OutboxItem.id)
            .with_for_update(skip_locked=True)
        )
        items = list(session.scalars(query if limit is None else query.limit(limit)))
        for item in items:
            item.next_attempt_at = now + timedelta(seconds=lease_s)
        session.flush()
        return items

    def claim_unlabeled_drafts(
        self, session: Session, draft_ids: Iterable[int], limit: int | None = None
    ) -> list[int]:
        """Of the evolution candidates ``draft_ids``, those that have no label and that no other
        worker is labeling, held for this unit of work: label them in it.

        On PostgreSQL the drafts are locked ``FOR NO KEY UPDATE SKIP LOCKED``: several workers
        labeling at once each get other drafts, never one twice, and the lock still lets other
        sessions insert rows that refer to the draft (the teacher's reply, its outbox item). On
        SQLite nothing is locked row by row (a unit of work holds the whole file): keep this
        unit of work short there, which is why the desktop's loop labels outside it.
        """
        wanted = sorted(set(draft_ids))
        if not wanted:
            return []
        labeled = select(TeacherReply.draft_id).where(TeacherReply.draft_id.is_not(None))
        query = (
            select(Draft.id)
            .where(Draft.id.in_(wanted))
            .where(Draft.id.not_in(labeled))
            .order_by(Draft.id)
            .with_for_update(skip_locked=True, key_share=True)
        )
        claimed = list(session.scalars(query if limit is None else query.limit(limit)))
        # A label committed while we waited for the lock was not in the query's snapshot.
        late = set(session.scalars(labeled.where(TeacherReply.draft_id.in_(claimed))))
        return [draft_id for draft_id in claimed if draft_id not in late]

    def active_adapter(self, session: Session) -> AdapterVersion | None:
        return session.scalar(select(AdapterVersion).where(AdapterVersion.status == "active"))

    def get_adapter(self, session: Session, version: str) -> AdapterVersion | None:
        return session.scalar(select(AdapterVersion).where(AdapterVersion.version == version))

    def set_active_adapter(self, session: Session, version: str | None) -> AdapterVersion | None:
        """Make ``version`` the one active adapter (None: the base model alone); the old one retires.

        Both changes land in the caller's unit of work, so other programs never see two active
        adapters or none in between.
        """
        target = None
        if version is not None:
            target = self.get_adapter(session, version)
            if target is None:
                raise LookupError(f"adapter version {version!r} does not exist")
            if target.status == "rejected":
                raise ValueError(f"adapter version {version!r} was rejected; it can't be activated")
        current = self.active_adapter(session)
        if current is not None and current is not target:
            current.status = "retired"
            # Retire first: the database refuses a second active row even for a moment.
            session.flush()
        if target is not None and target.status != "active":
            target.status = "active"
            target.promoted_at = utcnow()
            session.flush()
        return target

    def active_matcher(self, session: Session, kind: str | None = None) -> MatcherVersion | None:
        """The active reply matcher (``kind`` None: any kind but the suggestion ranker's), or the
        active version of ``kind`` ("ranker": the suggestion ranker)."""
        query = select(MatcherVersion).where(MatcherVersion.active.is_(True))
        if kind is None:
            query = query.where(MatcherVersion.kind != RANKER_KIND)
        else:
            query = query.where(MatcherVersion.kind == kind)
        return session.scalar(query)

    def get_matcher(self, session: Session, version: str) -> MatcherVersion | None:
        return session.scalar(select(MatcherVersion).where(MatcherVersion.version == version))

    def set_active_matcher(
        self, session: Session, version: str | None, kind: str | None = None
    ) -> MatcherVersion | None:
        """Make ``version`` the one active matcher (None: none), like ``set_active_adapter``.
        With ``kind="ranker"`` the same for the suggestion ranker, which is chosen independently
        of the matcher."""
        target = None
        if version is not None:
            target = self.get_matcher(session, version)
            if target is None:
                raise LookupError(f"{kind or 'matcher'} version {version!r} does not exist")
            if (target.kind == RANKER_KIND) != (kind == RANKER_KIND):
                wanted = kind or "matcher"
                raise ValueError(f"version {version!r} is a {target.kind}, not a {wanted}")
        current = self.active_matcher(session, kind)
        if current is not None and current is not target:
            current.active = False
            session.flush()
        if target is not None and not target.active:
            target.active = True
            session.flush()
        return target
