"""Team mode's store: a desktop's ratings reach the shop's database exactly once, though its
server is killed mid-replay; queue-like rows are taken by one worker each (SKIP LOCKED)."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from itertools import groupby
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import func, select, text

from app.scoring.corpus import DialoguePair, read_jddc2018
from app.store import (
    AdapterVersion,
    Conversation,
    Draft,
    Message,
    Rating,
    Store,
    StoreError,
    SyncedRecord,
    TeacherReply,
    migrate,
    open_store,
)
from app.store.db import DATABASE_URL_ENV, shop_database_url
from app.store.team import ShopSync, SyncStatus

if TYPE_CHECKING:
    from tests.postgres import PgCluster

# A real PostgreSQL server, started by the tests (pg_server, pg_url, pg_cluster).
pytest_plugins = ("tests.postgres",)
CORPUS = Path(__file__).parent / "fixtures" / "corpus"


@pytest.fixture
def desktop(tmp_path: Path) -> Iterator[Store]:
    with open_store(f"sqlite:///{tmp_path / 'desktop.db'}") as store:
        yield store


@pytest.fixture(params=["sqlite", "postgresql"])
def shop_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shop.db'}"
    return str(request.getfixturevalue("pg_url"))


def replay(pairs: list[DialoguePair], rounds: int) -> Iterator[tuple[int, DialoguePair]]:
    """The fixture's JDDC dialogues again and again, each round from new customers."""
    for n in range(rounds):
        for pair in pairs:
            yield n, pair


def agent_turn(store: Store, customer: str, pair: DialoguePair, rng: random.Random) -> str:
    """A customer asks, the model drafts, the agent rates (and maybe edits and sends); returns
    the rating's uid."""
    with store.session() as session:
        who = store.get_or_create_customer(session, customer)
        conversation = session.scalar(
            select(Conversation).where(Conversation.customer_id == who.id)
        ) or store.open_conversation(session, who.id, "jd")
        for i, turn in enumerate(pair.context):
            role = "customer" if i % 2 == 0 else "agent"
            message = store.add_message(session, conversation.id, role, turn)
        draft = store.add_draft(
            session,
            message.id,
            "亲，请稍等，我帮您查询一下。",
            model_profile="qwen2.5-0.5b",
            latency_ms=rng.randint(200, 900),
            prompt_tokens=120,
            completion_tokens=12,
        )
        action = rng.choice(["up", "down", "edit"])
        rating = store.record_rating(
            session,
            draft.id,
            thumbs_up={"up": True, "down": False, "edit": None}[action],
            sent_text=pair.reply if action == "edit" else None,
        )
        return rating.uid


def shop_ratings(shop_url: str) -> list[str]:
    with open_store(shop_url) as shop, shop.session() as session:
        return list(session.scalars(select(Rating.uid)))


def local_ratings(store: Store) -> list[str]:
    with store.session() as session:
        return list(session.scalars(select(Rating.uid)))


def test_every_rating_arrives_once_though_the_server_is_killed_midway(
    desktop: Store, pg_cluster: PgCluster
) -> None:
    shop_url = pg_cluster.url(pg_cluster.create_database())
    pairs = list(read_jddc2018(CORPUS / "jddc2018_sample.enc", CORPUS / "jddc2018_sample.dec"))
    statuses: list[SyncStatus] = []
    sync = ShopSync(desktop, shop_url, batch=7, on_status=statuses.append)
    rng = random.Random(21)
    made: list[str] = []
    for i, (n, pair) in enumerate(replay(pairs, rounds=12)):
        if i == 20:
            pg_cluster.kill()
        if i == 40:
            pg_cluster.restart()
        made.append(agent_turn(desktop, f"jd_****{n:04d}", pair, rng))
        sync.sync()  # as the background sync does after each rating
        if 20 <= i < 40:  # the desktop kept working and says what waits
            assert sync.status.state == "offline"
            assert sync.status.pending == i - 19
            assert "unreachable" in sync.status.text
        else:
            assert (sync.status.state, sync.status.pending) == ("online", 0)

    assert len(made) == 60
    stored = shop_ratings(shop_url)
    assert sorted(stored) == sorted(made)  # each once: no rating lost, none duplicated
    assert [state for state, _ in groupby(s.state for s in statuses)] == [
        "online",
        "offline",
        "online",
    ]
    assert [s.pending for s in statuses if s.state == "offline"] == list(range(1, 21))
    with open_store(shop_url) as shop, shop.session() as session:
        # The shop has the drafts and the conversations' turns the ratings hang on.
        assert session.scalar(select(func.count()).select_from(Draft)) == 60
        local = {uid: text for uid, text in _message_texts(desktop)}
        assert dict(session.execute(select(Message.uid, Message.text)).all()) == local
        edited = session.scalars(select(Rating).where(Rating.edited.is_(True))).all()
        assert edited and all(r.sent_text for r in edited)


def test_a_server_killed_inside_a_sync_leaves_nothing_half_sent(
    desktop: Store, pg_cluster: PgCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed after the batch's conversations, messages and drafts went in, before its ratings:
    the shop rolls the batch back, the desktop keeps it, and the retry sends it once."""
    from app.store import team

    shop_url = pg_cluster.url(pg_cluster.create_database())
    pairs = list(read_jddc2018(CORPUS / "jddc2018_sample.enc", CORPUS / "jddc2018_sample.dec"))
    made = [agent_turn(desktop, f"c{n}", p, random.Random(n)) for n, p in enumerate(pairs)]
    sync = ShopSync(desktop, shop_url)
    real_insert = team._insert_new

    def insert_then_die(session: Any, model: Any, rows: Any, key: str) -> Any:
        if model is Rating:
            pg_cluster.kill()
        return real_insert(session, model, rows, key)

    with monkeypatch.context() as patch:
        patch.setattr(team, "_insert_new", insert_then_die)
        assert sync.sync() == 0
    assert (sync.status.state, sync.status.pending) == ("offline", 5)
    pg_cluster.restart()
    with open_store(shop_url) as shop, shop.session() as session:
        assert session.scalar(select(func.count()).select_from(Draft)) == 0  # rolled back
    assert sync.sync() == 5
    assert sorted(shop_ratings(shop_url)) == sorted(made)
    sync.close()


def _message_texts(store: Store) -> list[tuple[str, str]]:
    with store.session() as session:
        return [(u, t) for u, t in session.execute(select(Message.uid, Message.text))]


def test_a_sync_cut_off_after_the_shop_committed_duplicates_nothing(
    desktop: Store, shop_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pairs = list(read_jddc2018(CORPUS / "jddc2018_sample.enc", CORPUS / "jddc2018_sample.dec"))
    rng = random.Random(7)
    made = [agent_turn(desktop, f"c{n}", pair, rng) for n, pair in replay(pairs, 2)]
    sync = ShopSync(desktop, shop_url, batch=4)

    def crash(uids: list[str]) -> None:
        raise RuntimeError("the desktop died before noting what it sent")

    with monkeypatch.context() as patch:
        patch.setattr(sync, "_acknowledge", crash)
        with pytest.raises(RuntimeError, match="desktop died"):
            sync.sync()
    assert len(shop_ratings(shop_url)) == 4  # the first batch is in the shop, unacknowledged
    assert sync.pending() == 10

    assert sync.sync() == 10  # sent again, all of it
    assert sync.sync() == 0
    assert sorted(shop_ratings(shop_url)) == sorted(made)
    with desktop.session() as session:
        assert session.scalar(select(func.count()).select_from(SyncedRecord)) == 10
    sync.close()


def test_scores_and_teacher_replies_arrive_once_with_their_links(
    desktop: Store, shop_url: str
) -> None:
    """The paid-for labels and the scores a desktop made reach the shop too, each once; one made
    after its draft's rating was sent joins it there."""
    pairs = list(read_jddc2018(CORPUS / "jddc2018_sample.enc", CORPUS / "jddc2018_sample.dec"))
    agent_turn(desktop, "c1", pairs[0], random.Random(1))
    sync = ShopSync(desktop, shop_url)
    assert sync.sync() == 1
    with desktop.session() as session:
        draft = session.scalars(select(Draft)).one()
        desktop.record_score(session, draft.id, final=0.3, mode="match_only", alpha=0.8, theta=0.5)
        session.add(
            TeacherReply(
                draft_id=draft.id,
                message_id=draft.reply_to_id,
                query_text="q",
                reply_text="亲，今天发货哦",
                label_source="teacher",
            )
        )
        session.add(TeacherReply(query_text="q2", reply_text="r2", label_source="teacher"))
    assert sync.sync() == 0  # no new rating; the score and the labels went
    assert sync.sync() == 0
    with open_store(shop_url) as shop, shop.session() as session:
        shop_draft = session.scalars(select(Draft)).one()
        assert shop_draft.uid == draft.uid
        assert [s.final for s in shop_draft.scores] == [0.3]
        labels = session.scalars(select(TeacherReply).order_by(TeacherReply.reply_text)).all()
        assert [(t.reply_text, t.draft_id, t.message_id) for t in labels] == [
            ("r2", None, None),
            ("亲，今天发货哦", shop_draft.id, shop_draft.reply_to_id),
        ]
    with desktop.session() as session:
        kinds = sorted(session.scalars(select(SyncedRecord.kind)))
    assert kinds == ["rating", "score", "teacher_reply", "teacher_reply"]
    sync.close()


def test_drafts_keep_the_shops_adapter_version_and_only_that(desktop: Store, shop_url: str) -> None:
    with desktop.session() as session:
        for version in ("lora-shop", "lora-mine"):
            session.add(AdapterVersion(version=version, method="lora", base_model="m", path="/"))
    with open_store(shop_url) as shop, shop.session() as session:
        session.add(AdapterVersion(version="lora-shop", method="lora", base_model="m", path="/"))
    with desktop.session() as session:
        customer = desktop.get_or_create_customer(session, "c1")
        conversation = desktop.open_conversation(session, customer.id, "jd")
        message = desktop.add_message(session, conversation.id, "customer", "在吗")
        adapters = {a.version: a.id for a in session.scalars(select(AdapterVersion))}
        for version in ("lora-shop", "lora-mine"):
            draft = desktop.add_draft(
                session,
                message.id,
                version,
                model_profile="m",
                latency_ms=1,
                prompt_tokens=1,
                completion_tokens=1,
                adapter_version_id=adapters[version],
            )
            desktop.record_rating(session, draft.id, thumbs_up=True)
    ShopSync(desktop, shop_url).sync()
    with open_store(shop_url) as shop, shop.session() as session:
        used = dict(
            session.execute(
                select(Draft.text, AdapterVersion.version).outerjoin(Draft.adapter_version)
            ).all()
        )
    assert used == {"lora-shop": "lora-shop", "lora-mine": None}


def test_a_desktop_starts_and_rates_while_the_server_is_down(
    desktop: Store, tmp_path: Path
) -> None:
    url = "postgresql+psycopg://xiaoer:secret@127.0.0.1:1/xiaoer"  # nothing listens on port 1
    statuses: list[SyncStatus] = []
    sync = ShopSync(desktop, url, on_status=statuses.append)
    assert sync.status.state == "connecting"
    pairs = list(read_jddc2018(CORPUS / "jddc2018_sample.enc", CORPUS / "jddc2018_sample.dec"))
    agent_turn(desktop, "c1", pairs[0], random.Random(1))
    assert sync.sync() == 0
    assert statuses == [sync.status]
    assert (sync.status.state, sync.status.pending) == ("offline", 1)
    assert "secret" not in (sync.status.last_error or "")


def test_a_server_from_a_newer_xiaoer_is_an_error_not_an_outage(
    desktop: Store, pg_url: str
) -> None:
    with open_store(pg_url) as shop, shop.session() as session:
        session.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    sync = ShopSync(desktop, pg_url)
    with pytest.raises(StoreError, match="newer Xiaoer"):
        sync.sync()
    assert sync.status.state == "offline" and "newer" in (sync.status.last_error or "")


def wait_until(condition: Callable[[], bool], timeout_s: float = 20.0) -> None:
    """Poll until ``condition`` holds (a deadline against hanging, not a speed requirement)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.02)


def test_the_background_sync_sends_a_rating_when_notified(desktop: Store, pg_url: str) -> None:
    sync = ShopSync(desktop, pg_url, retry_s=600)  # only notify() wakes it before the test ends
    sync.start()
    try:
        wait_until(lambda: sync.status.state == "online")
        pairs = list(read_jddc2018(CORPUS / "jddc2018_sample.enc", CORPUS / "jddc2018_sample.dec"))
        uid = agent_turn(desktop, "c1", pairs[0], random.Random(3))
        sync.notify()
        wait_until(lambda: shop_ratings(pg_url) == [uid])
    finally:
        sync.close()


def test_the_shop_database_comes_from_the_environment_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(DATABASE_URL_ENV, raising=False)
    assert shop_database_url() is None  # solo mode
    assert shop_database_url("  ") is None
    assert shop_database_url("postgresql+psycopg://a@b/c") == "postgresql+psycopg://a@b/c"
    monkeypatch.setenv(DATABASE_URL_ENV, "postgresql+psycopg://x@y/z")
    assert shop_database_url("postgresql+psycopg://a@b/c") == "postgresql+psycopg://x@y/z"


def test_existing_rows_get_distinct_uids_on_upgrade(shop_url: str) -> None:
    """Databases from before team mode: every row gets its own id (0006)."""
    from alembic import command
    from sqlalchemy import create_engine

    engine = create_engine(shop_url)
    with engine.begin() as conn:
        command.upgrade(migrate.alembic_config(conn), "0005")
        conn.execute(
            text(
                "INSERT INTO customers (masked_id, created_at) VALUES ('c', '2024-01-01 00:00:00')"
            )
        )
        for _ in range(3):
            conn.execute(
                text(
                    "INSERT INTO conversations (customer_id, channel, status, opened_at) "
                    "SELECT id, 'jd', 'open', '2024-01-01 00:00:00' FROM customers"
                )
            )
        t0 = "'2024-01-01 00:00:00'"
        for role in ("customer", "agent"):
            conn.execute(
                text(
                    "INSERT INTO messages (conversation_id, role, text, sent_at) "
                    f"SELECT id, '{role}', 'hi', {t0} FROM conversations"
                )
            )
        conn.execute(
            text(
                "INSERT INTO drafts (conversation_id, reply_to_id, text, model_profile, latency_ms,"
                " prompt_tokens, completion_tokens, created_at) SELECT conversation_id, id, 'd',"
                f" 'm', 1, 1, 1, {t0} FROM messages WHERE role = 'customer'"
            )
        )
        conn.execute(
            text(
                "INSERT INTO ratings (draft_id, thumbs_up, edited, rated_at) "
                f"SELECT id, {'true' if 'postgresql' in shop_url else '1'}, false, {t0} FROM drafts"
            )
        )
    engine.dispose()
    with open_store(shop_url) as store, store.session() as session:
        for model, n in ((Conversation, 3), (Message, 6), (Draft, 3), (Rating, 3)):
            uids = list(session.scalars(select(model.uid)))
            assert len(uids) == n == len(set(uids)) and all(len(u) >= 32 for u in uids)
        # The tables SQLite rebuilt kept their rows and the links between them.
        drafts = session.scalars(select(Draft)).all()
        assert all(d.reply_to.role == "customer" and d.ratings for d in drafts)


# --- queue-like rows: one taker each ----------------------------------------------------------


def test_two_workers_never_take_the_same_outbox_item(pg_url: str) -> None:
    from datetime import UTC, datetime

    from app.store import OutboxItem

    with open_store(pg_url) as store:
        with store.session() as session:
            session.add_all(
                OutboxItem(request={"turns": [["customer", f"问题 {n}"]]}) for n in range(40)
            )
        now = datetime.now(UTC)
        # A worker holds its first pick in an open transaction; a second worker's pick goes on
        # past it at once instead of waiting or taking it too.
        with store.session() as first:
            mine = store.take_outbox_items(first, now=now, limit=5)
            with store.session() as second:
                second.execute(text("SET LOCAL lock_timeout = '5s'"))
                theirs = store.take_outbox_items(second, now=now, limit=5)
        assert len(mine) == len(theirs) == 5
        assert not {i.id for i in mine} & {i.id for i in theirs}

        # Four workers drain the rest at once: each item taken exactly once.
        taken: list[int] = []
        start = threading.Barrier(4)

        def worker() -> None:
            start.wait()
            while True:
                with store.session() as session:
                    items = store.take_outbox_items(session, now=now, limit=2)
                    if not items:
                        return
                    taken.extend(item.id for item in items)

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(taken) == len(set(taken)) == 30


def test_two_workers_never_label_the_same_candidate(pg_url: str) -> None:

    with open_store(pg_url) as store:
        with store.session() as session:
            customer = store.get_or_create_customer(session, "c1")
            conversation = store.open_conversation(session, customer.id, "jd")
            message = store.add_message(session, conversation.id, "customer", "还没发货？")
            drafts = [
                store.add_draft(
                    session,
                    message.id,
                    f"草稿 {n}",
                    model_profile="m",
                    latency_ms=1,
                    prompt_tokens=1,
                    completion_tokens=1,
                ).id
                for n in range(30)
            ]
            session.add(
                TeacherReply(
                    draft_id=drafts[0], query_text="q", reply_text="r", label_source="teacher"
                )
            )

        with store.session() as first:
            mine = store.claim_unlabeled_drafts(first, drafts, limit=3)
            with store.session() as second:
                second.execute(text("SET LOCAL lock_timeout = '5s'"))
                theirs = store.claim_unlabeled_drafts(second, drafts, limit=3)
                # Another session can still record a teacher reply for a claimed draft.
                with store.session() as third:
                    third.execute(text("SET LOCAL lock_timeout = '5s'"))
                    third.add(
                        TeacherReply(
                            draft_id=mine[0],
                            query_text="q",
                            reply_text="cached",
                            label_source="teacher",
                        )
                    )
        assert mine == drafts[1:4] and theirs == drafts[4:7]

        def worker() -> None:
            start.wait()
            while True:
                with store.session() as session:
                    claimed = store.claim_unlabeled_drafts(session, drafts, limit=1)
                    if not claimed:
                        return
                    session.add(
                        TeacherReply(
                            draft_id=claimed[0],
                            query_text="q",
                            reply_text="r",
                            label_source="teacher",
                        )
                    )

        start = threading.Barrier(4)
        threads = [threading.Thread(target=worker) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        with store.session() as session:
            labels = list(session.scalars(select(TeacherReply.draft_id)))
        assert sorted(labels) == sorted(drafts)  # every draft labeled, and once


def test_the_team_commands(
    desktop: Store, pg_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from app.cli import main

    monkeypatch.delenv(DATABASE_URL_ENV, raising=False)
    assert main(["team", "status"]) == 0
    assert json.loads(capsys.readouterr().out) == {"mode": "solo"}
    assert main(["team", "sync"]) == 2

    with open_store() as local:  # the desktop's own store in the data dir
        pairs = list(read_jddc2018(CORPUS / "jddc2018_sample.enc", CORPUS / "jddc2018_sample.dec"))
        made = [agent_turn(local, f"c{n}", p, random.Random(n)) for n, p in enumerate(pairs)]
    monkeypatch.setenv(DATABASE_URL_ENV, pg_url)
    assert main(["team", "upgrade"]) == 0
    assert json.loads(capsys.readouterr().out)["revision"] == migrate.head_revision()
    assert main(["team", "status"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert (status["mode"], status["state"], status["pending"]) == ("team", "online", 5)
    assert main(["team", "sync"]) == 0
    assert json.loads(capsys.readouterr().out)["sent"] == 5
    assert sorted(shop_ratings(pg_url)) == sorted(made)

    down = "postgresql+psycopg://xiaoer:secret@127.0.0.1:1/xiaoer"
    assert main(["team", "status", "--url", down]) == 1
    out = capsys.readouterr().out
    assert json.loads(out)["state"] == "offline" and "secret" not in out


def test_desktops_opening_a_database_at_head_do_not_queue_on_the_upgrade_lock(
    pg_url: str,
) -> None:
    """The upgrade's advisory lock is taken only when there is something to upgrade: a shop's
    desktops starting together would otherwise wait on it in turn and time out."""
    from app.store.migrate import MIGRATION_LOCK

    open_store(pg_url).close()  # at head now
    with open_store(pg_url) as holder, holder.engine.begin() as conn:
        conn.execute(text(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
        with open_store(pg_url, lock_timeout=0.5) as another, another.session() as session:
            assert session.scalar(select(func.count()).select_from(Rating)) == 0
