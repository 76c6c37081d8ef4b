"""Team mode on a desktop: every rating reaches the shop's database, exactly once, even when the
server is away for a while.

The desktop keeps working on its own SQLite file as in solo mode (drafting, rating, editing never
wait for the network), and that file is the journal: a rating, score or teacher reply with no
``synced_records`` row has not reached the shop yet. ``ShopSync.sync()`` sends those, with the
drafts, conversations and messages they hang on, in one transaction on the shop's side; only
after it committed are they marked sent here. Every record carries the ``uid`` it was given on the desktop, and the shop
ignores a ``uid`` it already has (``ON CONFLICT DO NOTHING``), so a sync cut off between the two
commits, or retried after any failure, never stores anything twice.

While the server can't be reached, ``status`` says so (for the status bar: ``status.text``,
and ``on_status`` is called on every change) and the ratings wait here; ``start()`` runs the sync
in a background thread that retries on its own, and ``notify()`` after a rating sends it at once.

Plain Python (no Qt).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TypeVar, cast

from sqlalchemy import Table, func, select
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.store.db import Store, open_store
from app.store.errors import StoreError, is_unreachable
from app.store.models import (
    AdapterVersion,
    Base,
    Conversation,
    Customer,
    Draft,
    Message,
    Rating,
    Score,
    SyncedRecord,
    TeacherReply,
    utcnow,
)

log = logging.getLogger(__name__)

SyncState = Literal["connecting", "online", "offline"]
SyncKind = Literal["rating", "score", "teacher_reply"]
BATCH = 200
"""Ratings sent in one transaction."""
RETRY_S = 10.0
"""How often the background sync tries again while the server is away (and checks for ratings
nobody announced with ``notify``)."""
SYNCED: tuple[tuple[SyncKind, type[Base]], ...] = (
    ("rating", Rating),
    ("score", Score),
    ("teacher_reply", TeacherReply),
)
"""What a desktop sends, each with the draft (and message) it hangs on."""
_CHUNK = 500  # ids in one IN (...) list: far below SQLite's and PostgreSQL's parameter limits

M = TypeVar("M", bound=Base)


@dataclass(frozen=True)
class SyncStatus:
    """Where this desktop stands with the shop's database."""

    state: SyncState
    pending: int
    """Ratings made here that the shop's database does not have yet."""
    last_error: str | None = None
    last_synced_at: datetime | None = None

    @property
    def text(self) -> str:
        """One line for the status bar."""
        if self.state == "online":
            return "Shop database: connected" + (
                f", sending {self.pending} ratings" if self.pending else ""
            )
        if self.state == "offline":
            return (
                f"Shop database unreachable: {self.pending} ratings kept on this computer, "
                "sent when it is back"
            )
        return "Shop database: connecting"


class ShopSync:
    """Sends this desktop's ratings (with their drafts, messages and conversations) to the
    shop's database; see the module's docstring.

    ``shop`` is the shop database's URL (opened on the first sync that reaches it, so a desktop
    starts while the server is down) or an open ``Store``.
    """

    def __init__(
        self,
        local: Store,
        shop: str | Store,
        *,
        batch: int = BATCH,
        retry_s: float = RETRY_S,
        on_status: Callable[[SyncStatus], None] | None = None,
    ) -> None:
        if local.is_server:
            raise ValueError("the journal is this desktop's own SQLite store, not a server")
        self.local = local
        self._shop = shop if isinstance(shop, Store) else None
        self._shop_url = shop if isinstance(shop, str) else None
        self.batch = batch
        self.retry_s = retry_s
        self.on_status = on_status
        self._lock = threading.Lock()  # one sync at a time
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._status = SyncStatus("connecting", self.pending())

    # --- status ------------------------------------------------------------------------------

    @property
    def status(self) -> SyncStatus:
        return self._status

    def _set_status(self, status: SyncStatus) -> None:
        """Keep ``status``; tell ``on_status`` when what it says changed (not only its time)."""
        before = self._status
        changed = (status.state, status.pending, status.last_error) != (
            before.state,
            before.pending,
            before.last_error,
        )
        self._status = status
        if changed and self.on_status is not None:
            self.on_status(status)

    def pending(self) -> int:
        """Ratings made here that the shop's database does not have yet."""
        with self.local.session() as session:
            unsent = _unsent(Rating.uid, "rating")
            return session.scalar(select(func.count()).select_from(Rating).where(unsent)) or 0

    # --- syncing -----------------------------------------------------------------------------

    def sync(self) -> int:
        """Send every rating, score and teacher reply not sent yet; returns how many ratings
        were sent now.

        Never raises for a server that can't be reached: the status says offline, the ratings
        stay here, and the next call tries again. Other errors (a schema from a newer Xiaoer on
        the server, say) raise, with the status offline and the error in it.
        """
        with self._lock:
            sent = 0
            try:
                shop = self._connect()
                records = 0
                while True:
                    ratings, n = self._send_batch(shop)
                    sent, records = sent + ratings, records + n
                    if not n:
                        break
                if not records:  # nothing to send: still say truly whether the server is there
                    with shop.engine.connect() as conn:
                        conn.exec_driver_sql("SELECT 1")
            except (StoreError, sa_exc.DBAPIError) as exc:
                reachable_but_wrong = isinstance(exc, sa_exc.DBAPIError) and not is_unreachable(exc)
                if isinstance(exc, StoreError) and "newer Xiaoer" in str(exc):
                    reachable_but_wrong = True
                self._drop_shop()
                self._set_status(
                    SyncStatus(
                        "offline",
                        self.pending(),
                        _short(exc),
                        self._status.last_synced_at,
                    )
                )
                if reachable_but_wrong:
                    raise
                log.info("shop database unreachable (%s); %d sent before", _short(exc), sent)
                return sent
            self._set_status(SyncStatus("online", self.pending(), None, utcnow()))
            return sent

    def check(self) -> SyncStatus:
        """Whether the shop's database can be reached now, sending nothing."""
        with self._lock:
            try:
                with self._connect().engine.connect() as conn:
                    conn.exec_driver_sql("SELECT 1")
            except (StoreError, sa_exc.DBAPIError) as exc:
                self._drop_shop()
                self._set_status(
                    SyncStatus("offline", self.pending(), _short(exc), self._status.last_synced_at)
                )
            else:
                self._set_status(
                    SyncStatus("online", self.pending(), None, self._status.last_synced_at)
                )
            return self._status

    def _connect(self) -> Store:
        if self._shop is None:
            assert self._shop_url is not None
            self._shop = open_store(self._shop_url)
        return self._shop

    def _drop_shop(self) -> None:
        """Forget the pool after a failure: the next try reconnects from scratch."""
        if self._shop is not None and self._shop_url is not None:
            self._shop.close()
            self._shop = None
        elif self._shop is not None:
            self._shop.engine.dispose()

    def _send_batch(self, shop: Store) -> tuple[int, int]:
        """One batch: (ratings sent, records sent)."""
        with self.local.session() as session:
            batch = _Batch.read(session, self.batch)
        if not batch.records:
            return 0, 0
        with shop.session() as session:
            batch.write(session)
        self._acknowledge([(kind, row["uid"]) for kind, _, _, row in batch.records])
        return batch.ratings, len(batch.records)

    def _acknowledge(self, records: Sequence[tuple[SyncKind, str]]) -> None:
        with self.local.session() as session:
            session.add_all(SyncedRecord(uid=uid, kind=kind) for kind, uid in records)

    # --- in the background -------------------------------------------------------------------

    def start(self) -> None:
        """Sync now and then in a daemon thread: after ``notify()``, else every ``retry_s``."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="shop-sync", daemon=True)
        self._thread.start()

    def notify(self) -> None:
        """A rating was made: send it now (from the background thread)."""
        self._wake.set()

    def stop(self, timeout: float | None = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def close(self, timeout: float | None = 10.0) -> None:
        """Stop the background sync (waiting at most ``timeout`` for a sync in flight; what it
        did not send waits here for the next start) and let go of the shop's database."""
        self.stop(timeout)
        if self._shop is not None and self._shop_url is not None:
            self._shop.close()
            self._shop = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.sync()
            except Exception:  # a reachable server that refuses us: keep the app running
                log.exception("syncing with the shop database failed")
            self._wake.wait(self.retry_s)
            self._wake.clear()


def _unsent(uid: Any, kind: SyncKind) -> Any:
    return uid.not_in(select(SyncedRecord.uid).where(SyncedRecord.kind == kind))


def _short(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return text.strip().splitlines()[0][:200] if text.strip() else type(exc).__name__


def _row(obj: Base, *skip: str) -> dict[str, Any]:
    """The object's column values, less its local id and the foreign keys named in ``skip``."""
    table = obj.__table__
    return {c.key: getattr(obj, c.key) for c in table.columns if c.key not in ("id", *skip)}


def _chunks(values: Iterable[Any]) -> Iterable[list[Any]]:
    items = list(values)
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


def _in(session: Session, model: type[M], column: Any, values: Iterable[Any]) -> list[M]:
    found: list[M] = []
    for chunk in _chunks(set(values)):
        found += session.scalars(select(model).where(column.in_(chunk))).all()
    return found


@dataclass
class _Batch:
    """Unsent records (ratings, scores, teacher replies) with everything they hang on, as plain
    values: local ids are replaced by the uids (or masked ids) they are matched by."""

    customers: list[dict[str, Any]]
    conversations: list[tuple[str, dict[str, Any]]]  # (customer's masked id, row)
    messages: list[tuple[str, dict[str, Any]]]  # (conversation uid, row)
    drafts: list[tuple[str, str, str | None, dict[str, Any]]]  # conversation, reply-to, adapter
    records: list[tuple[SyncKind, str | None, str | None, dict[str, Any]]]
    """(kind, its draft's uid, its message's uid, row), ratings first."""

    @property
    def ratings(self) -> int:
        return sum(kind == "rating" for kind, *_ in self.records)

    @classmethod
    def read(cls, session: Session, limit: int) -> _Batch:
        ratings = session.scalars(
            select(Rating).where(_unsent(Rating.uid, "rating")).order_by(Rating.id).limit(limit)
        ).all()
        scores = session.scalars(
            select(Score).where(_unsent(Score.uid, "score")).order_by(Score.id).limit(limit)
        ).all()
        labels = session.scalars(
            select(TeacherReply)
            .where(_unsent(TeacherReply.uid, "teacher_reply"))
            .order_by(TeacherReply.id)
            .limit(limit)
        ).all()
        draft_ids = [r.draft_id for r in ratings] + [s.draft_id for s in scores]
        draft_ids += [t.draft_id for t in labels if t.draft_id is not None]
        drafts = {d.id: d for d in _in(session, Draft, Draft.id, draft_ids)}
        asked = _in(
            session, Message, Message.id, (t.message_id for t in labels if t.message_id is not None)
        )
        conversations = {
            c.id: c
            for c in _in(
                session,
                Conversation,
                Conversation.id,
                [d.conversation_id for d in drafts.values()] + [m.conversation_id for m in asked],
            )
        }
        customers = {
            c.id: c
            for c in _in(
                session, Customer, Customer.id, (c.customer_id for c in conversations.values())
            )
        }
        # The whole conversation as far as it goes now: training needs the turns before a reply.
        messages = _in(session, Message, Message.conversation_id, conversations)
        message_uid = {m.id: m.uid for m in messages}
        adapters = {
            a.id: a.version
            for a in _in(
                session,
                AdapterVersion,
                AdapterVersion.id,
                (d.adapter_version_id for d in drafts.values() if d.adapter_version_id),
            )
        }
        records: list[tuple[SyncKind, str | None, str | None, dict[str, Any]]] = [
            ("rating", drafts[r.draft_id].uid, None, _row(r, "draft_id")) for r in ratings
        ]
        records += [("score", drafts[c.draft_id].uid, None, _row(c, "draft_id")) for c in scores]
        records += [
            (
                "teacher_reply",
                drafts[t.draft_id].uid if t.draft_id is not None else None,
                message_uid[t.message_id] if t.message_id is not None else None,
                _row(t, "draft_id", "message_id"),
            )
            for t in labels
        ]
        return cls(
            customers=[_row(c) for c in customers.values()],
            conversations=[
                (customers[c.customer_id].masked_id, _row(c, "customer_id"))
                for c in conversations.values()
            ],
            messages=[
                (conversations[m.conversation_id].uid, _row(m, "conversation_id"))
                for m in sorted(messages, key=lambda m: m.id)
            ],
            drafts=[
                (
                    conversations[d.conversation_id].uid,
                    message_uid[d.reply_to_id],
                    adapters.get(d.adapter_version_id) if d.adapter_version_id else None,
                    _row(d, "conversation_id", "reply_to_id", "adapter_version_id"),
                )
                for d in drafts.values()
            ],
            records=records,
        )

    def write(self, session: Session) -> None:
        """Into the shop's database: new rows added, rows it has (by uid) left as they are."""
        customer_id = _insert_new(session, Customer, self.customers, "masked_id")
        conversation_id = _insert_new(
            session,
            Conversation,
            [{**row, "customer_id": customer_id[masked]} for masked, row in self.conversations],
            "uid",
        )
        message_id = _insert_new(
            session,
            Message,
            [{**row, "conversation_id": conversation_id[conv]} for conv, row in self.messages],
            "uid",
        )
        # A draft names the adapter version that wrote it; one the shop has not heard of (trained
        # on this desktop alone) is left out rather than invented.
        shop_adapters = {
            a.version: a.id
            for a in _in(
                session,
                AdapterVersion,
                AdapterVersion.version,
                (v for *_, v, _ in self.drafts if v),
            )
        }
        draft_id = _insert_new(
            session,
            Draft,
            [
                {
                    **row,
                    "conversation_id": conversation_id[conv],
                    "reply_to_id": message_id[reply_to],
                    "adapter_version_id": shop_adapters.get(adapter) if adapter else None,
                }
                for conv, reply_to, adapter, row in self.drafts
            ],
            "uid",
        )
        for kind, model in SYNCED:
            rows = []
            for record_kind, draft, message, row in self.records:
                if record_kind != kind:
                    continue
                links = {"draft_id": draft_id[draft] if draft is not None else None}
                if kind == "teacher_reply":
                    links["message_id"] = message_id[message] if message is not None else None
                rows.append({**row, **links})
            _insert_new(session, model, rows, "uid")


def _insert_new(
    session: Session, model: type[Base], rows: list[dict[str, Any]], key: str
) -> dict[Any, int]:
    """Insert the rows whose ``key`` the table does not have yet; returns key → id for all."""
    if not rows:
        return {}
    table = cast(Table, model.__table__)
    insert = (
        postgresql.insert(table)
        if session.get_bind().dialect.name == "postgresql"
        else sqlite.insert(table)
    )
    session.execute(insert.on_conflict_do_nothing(index_elements=[key]), rows)
    column = table.c[key]
    found: dict[Any, int] = {}
    for chunk in _chunks(row[key] for row in rows):
        found.update(session.execute(select(column, table.c.id).where(column.in_(chunk))).all())
    return found
