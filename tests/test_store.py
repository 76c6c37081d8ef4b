"""The store on real SQLite files and on a real PostgreSQL server (tests/postgres.py starts it):
migrations, round trips and constraints on both; damaged and locked files and a failing migration
on SQLite, the server's own upgrade rules on PostgreSQL."""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import exc as sa_exc
from sqlalchemy import func, inspect, select, text

from app.store import (
    AdapterVersion,
    Base,
    Conversation,
    Customer,
    Draft,
    MatcherVersion,
    Message,
    Rating,
    Score,
    Store,
    StoreError,
    TeacherReply,
    TrainingRun,
    migrate,
    open_store,
)

# A real PostgreSQL server, started by the tests (pg_server, pg_url, pg_cluster).
pytest_plugins = ("tests.postgres",)
T0 = datetime(2024, 5, 1, 8, 30, 15, 123456, tzinfo=UTC)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "db" / "xiaoer.db"


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, db_path: Path) -> Iterator[Store]:
    """The store on each backend: an SQLite file (solo) and a PostgreSQL database (team)."""
    url = f"sqlite:///{db_path}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    with open_store(url) as opened:
        yield opened


@pytest.fixture
def sqlite_store(db_path: Path) -> Iterator[Store]:
    with open_store(f"sqlite:///{db_path}") as opened:
        yield opened


def columns(obj: Base) -> dict[str, Any]:
    return {attr.key: getattr(obj, attr.key) for attr in inspect(obj).mapper.column_attrs}


def values_of(saved: list[tuple[type[Base], dict[str, Any]]], model: type[Base]) -> dict[str, Any]:
    return next(values for kind, values in saved if kind is model)


def dump(path: Path) -> list[str]:
    with closing(sqlite3.connect(path)) as conn:
        return list(conn.iterdump())


def revision_of(path: Path) -> str:
    with closing(sqlite3.connect(path)) as conn:
        return str(conn.execute("SELECT version_num FROM alembic_version").fetchone()[0])


def seed_conversation(store: Store) -> tuple[int, int]:
    """A customer message in a new conversation: (conversation id, message id)."""
    with store.session() as session:
        customer = store.get_or_create_customer(session, "tb_****1234", "小王")
        conversation = store.open_conversation(session, customer.id, "taobao")
        message = store.add_message(session, conversation.id, "customer", "这件衣服有M码吗？")
        return conversation.id, message.id


# --- creation and schema ---------------------------------------------------------------------


def test_fresh_database_is_built_by_the_migrations(
    db_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no alembic.ini anywhere near: the package finds its migrations
    with open_store(f"sqlite:///{db_path}") as store, store.session() as session:
        assert session.scalar(text("SELECT version_num FROM alembic_version")) == HEAD
        assert migrate.head_revision() == HEAD
        assert session.scalar(text("PRAGMA journal_mode")) == "wal"
        assert session.scalar(text("PRAGMA foreign_keys")) == 1
        assert session.scalar(text("PRAGMA busy_timeout")) == 5000
        tables = set(session.scalars(text("SELECT name FROM sqlite_master WHERE type='table'")))
    assert set(Base.metadata.tables) | {"alembic_version"} == tables


def test_default_database_lives_in_the_data_dir(data_home: Path) -> None:
    with open_store() as store:
        assert store.path == data_home / "xiaoer.db"
    assert revision_of(data_home / "xiaoer.db") == HEAD


def test_models_match_the_migrations(store: Store) -> None:
    with store.engine.connect() as conn:
        # The job queue's tables are procrastinate's, built from its own schema (docs/team.md).
        ours = {"include_name": lambda name, kind, parent: not (name or "").startswith("procr")}
        context = MigrationContext.configure(conn, opts=ours)
        assert compare_metadata(context, Base.metadata) == []


def test_only_sqlite_files_are_accepted() -> None:
    with pytest.raises(StoreError, match="SQLite database file"):
        open_store("sqlite://")


def test_a_server_database_is_built_by_the_same_migrations(pg_url: str) -> None:
    with open_store(pg_url) as store, store.session() as session:
        assert store.is_server
        assert session.scalar(text("SELECT version_num FROM alembic_version")) == HEAD
        tables = set(
            session.scalars(
                text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
            )
        )
    queue = {"procrastinate_jobs", "procrastinate_events", "procrastinate_periodic_defers"}
    queue.add("procrastinate_workers")  # the job queue's own tables (docs/team.md)
    assert set(Base.metadata.tables) | {"alembic_version"} | queue == tables
    with open_store(pg_url) as again:  # a second program finds it at head
        assert again.is_server


def test_an_unreachable_server_is_a_store_error(pg_server: Any) -> None:
    with pytest.raises(StoreError, match="Can't reach the shop database") as caught:
        open_store(f"postgresql+psycopg://xiaoer:secret@127.0.0.1:{pg_server.port}/no_such_db")
    assert "secret" not in str(caught.value)


# --- round trips -------------------------------------------------------------------------------


def test_every_entity_round_trips(store: Store) -> None:
    beijing = timezone(timedelta(hours=8))
    with store.session() as session:
        customer = Customer(masked_id="tb_****1234", display_name="小王", created_at=T0)
        base = AdapterVersion(
            version="lora-1",
            method="lora",
            base_model="qwen2.5-0.5b",
            path="/adapters/lora-1",
            metrics={"eval_loss": 1.25, "per_task": {"refund": [0.5, 0.75]}, "note": "首个"},
            status="retired",
            created_at=T0,
            promoted_at=T0 + timedelta(hours=1),
        )
        child = AdapterVersion(
            version="ptuning-2",
            method="ptuning-v2",
            base_model="qwen2.5-0.5b",
            parent=base,
            path="/adapters/ptuning-2",
            status="candidate",
        )
        conversation = Conversation(
            customer=customer,
            channel="jd",
            status="closed",
            opened_at=T0,
            closed_at=T0 + timedelta(minutes=9),
        )
        question = Message(
            conversation=conversation,
            role="customer",
            text="什么时候发货？",
            sent_at=datetime(2024, 5, 1, 16, 31, tzinfo=beijing),
        )
        answer = Message(conversation=conversation, role="agent", text="今天下午发出。")
        draft = Draft(
            conversation=conversation,
            reply_to=question,
            text="亲，今天发货哦",
            model_profile="qwen2.5-0.5b",
            adapter_version=child,
            latency_ms=812,
            prompt_tokens=301,
            completion_tokens=17,
        )
        rating = Rating(draft=draft, thumbs_up=False, sent_text="今天下午发出。", edited=True)
        score = Score(
            draft=draft,
            similarity=0.8125,
            matching=0.625,
            final=0.71875,
            alpha=0.5,
            theta=0.6,
            similarity_scorer_version="use:0.2.1",
            matching_scorer_version="indomain:3",
            fallback_applied=True,
            mode="fallback",
        )
        label = TeacherReply(
            message=question,
            draft=draft,
            provider="deepseek",
            model="deepseek-chat",
            query_text="什么时候发货？[订单号已隐去]",
            reply_text="您好，今天下午发货。",
            prompt_hash="ab" * 32,
            input_tokens=120,
            output_tokens=24,
            cost=0.0031,
            label_source="teacher",
        )
        run = TrainingRun(
            adapter_version=child,
            config={"method": "ptuning-v2", "lr": 0.002, "steps": 200, "layers": [0, 1]},
            metrics={"train_loss": [2.5, 1.75]},
            log_path="/logs/run-1.jsonl",
            status="succeeded",
            started_at=T0,
            finished_at=T0 + timedelta(minutes=30),
        )
        matcher = MatcherVersion(
            version="m-3", kind="cross-encoder", path="/m-3", metrics={"auc": 0.9}, active=True
        )
        rows: list[Base] = [customer, base, child, conversation, question, answer, draft]
        rows += [rating, score, label, run, matcher]
        session.add_all(rows)
    saved = [(type(row), columns(row)) for row in rows]

    with store.session() as session:
        for model, values in saved:
            loaded = session.get(model, values["id"])
            assert loaded is not None
            assert columns(loaded) == values, model.__name__

        draft = session.get_one(Draft, values_of(saved, Draft)["id"])
        assert draft.conversation.customer.masked_id == "tb_****1234"
        assert draft.conversation.customer.conversations == [draft.conversation]
        assert [m.role for m in draft.conversation.messages] == ["customer", "agent"]
        assert draft.reply_to.text == "什么时候发货？"
        assert draft.conversation.drafts == [draft]
        assert draft.adapter_version is not None
        assert draft.adapter_version.parent is not None
        assert draft.adapter_version.parent.metrics["per_task"] == {"refund": [0.5, 0.75]}
        assert draft.ratings[0].draft is draft
        assert draft.scores[0].mode == "fallback"
        label = session.get_one(TeacherReply, values_of(saved, TeacherReply)["id"])
        assert (label.message, label.draft) == (draft.reply_to, draft)
        run = session.get_one(TrainingRun, values_of(saved, TrainingRun)["id"])
        assert run.adapter_version is draft.adapter_version
        assert run.config["layers"] == [0, 1]
        sent_at = draft.reply_to.sent_at
        assert sent_at.tzinfo is UTC
        assert sent_at == datetime(2024, 5, 1, 8, 31, tzinfo=UTC)


def test_naive_datetimes_are_refused(store: Store) -> None:
    with pytest.raises(sa_exc.StatementError, match="naive datetime"), store.session() as session:
        session.add(Customer(masked_id="x", created_at=datetime(2024, 1, 1)))


def test_helpers_record_a_draft_its_rating_and_score(store: Store) -> None:
    conversation_id, message_id = seed_conversation(store)
    with store.session() as session:
        same = store.get_or_create_customer(session, "tb_****1234")
        assert same.display_name == "小王"
        draft = store.add_draft(
            session,
            message_id,
            "有的亲",
            model_profile="qwen2.5-0.5b",
            latency_ms=640,
            prompt_tokens=210,
            completion_tokens=5,
        )
        kept = store.record_rating(session, draft.id, thumbs_up=True, sent_text="有的亲")
        edited = store.record_rating(session, draft.id, sent_text="有的亲，M码有货")
        score = store.record_score(
            session, draft.id, final=0.4, mode="match_only", alpha=0.5, theta=0.6, matching=0.4
        )
        with pytest.raises(LookupError):
            store.add_draft(
                session,
                message_id + 99,
                "?",
                model_profile="p",
                latency_ms=1,
                prompt_tokens=1,
                completion_tokens=1,
            )
    assert draft.conversation_id == conversation_id
    assert (kept.edited, edited.edited) == (False, True)
    with store.session() as session:
        loaded = session.get_one(Draft, draft.id)
        assert [r.sent_text for r in loaded.ratings] == ["有的亲", "有的亲，M码有货"]
        assert loaded.scores[0].id == score.id
        assert loaded.scores[0].similarity is None


# --- constraints -------------------------------------------------------------------------------


def test_foreign_keys_are_enforced(store: Store) -> None:
    _, message_id = seed_conversation(store)
    foreign_key = pytest.raises(sa_exc.IntegrityError, match=r"(?i)foreign key")
    with foreign_key, store.session() as session:
        session.add(
            Draft(
                conversation_id=12345,
                reply_to_id=message_id,
                text="orphan",
                model_profile="p",
                latency_ms=1,
                prompt_tokens=1,
                completion_tokens=1,
            )
        )
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(Draft)) == 0


def test_deletes_cascade_to_owned_rows_but_keep_labels_and_used_adapters(store: Store) -> None:
    _, message_id = seed_conversation(store)
    with store.session() as session:
        adapter = AdapterVersion(version="a1", method="lora", base_model="m", path="/a1")
        session.add(adapter)
        session.flush()
        draft = store.add_draft(
            session,
            message_id,
            "d",
            model_profile="m",
            latency_ms=1,
            prompt_tokens=1,
            completion_tokens=1,
            adapter_version_id=adapter.id,
        )
        store.record_rating(session, draft.id, thumbs_up=True)
        store.record_score(session, draft.id, final=1.0, mode="full", alpha=0.5, theta=0.5)
        session.add(
            TeacherReply(
                message_id=message_id,
                query_text="q",
                reply_text="r",
                label_source="teacher",
            )
        )
    with pytest.raises(sa_exc.IntegrityError), store.session() as session:
        session.delete(session.get_one(AdapterVersion, adapter.id))

    with store.session() as session:
        session.delete(session.scalars(select(Customer)).one())
    with store.session() as session:
        for model in (Conversation, Message, Draft, Rating, Score):
            assert session.scalar(select(func.count()).select_from(model)) == 0, model.__name__
        label = session.scalars(select(TeacherReply)).one()
        assert (label.message_id, label.reply_text) == (None, "r")


def test_set_active_adapter_keeps_exactly_one_active(store: Store) -> None:
    def active_versions() -> list[str]:
        with store.session() as session:
            rows = session.scalars(select(AdapterVersion).where(AdapterVersion.status == "active"))
            return [row.version for row in rows]

    with store.session() as session:
        for version in ("v1", "v2", "v3"):
            session.add(AdapterVersion(version=version, method="lora", base_model="m", path="/"))
        session.add(
            AdapterVersion(
                version="bad", method="lora", base_model="m", path="/", status="rejected"
            )
        )
    for version in ("v1", "v2", "v2", "v3", "v1"):
        with store.session() as session:
            promoted = store.set_active_adapter(session, version)
        assert promoted is not None and promoted.promoted_at is not None
        assert active_versions() == [version]

    with store.session() as session:
        assert {a.version: a.status for a in session.scalars(select(AdapterVersion))} == {
            "v1": "active",
            "v2": "retired",
            "v3": "retired",
            "bad": "rejected",
        }
        with pytest.raises(ValueError, match="rejected"):
            store.set_active_adapter(session, "bad")
        with pytest.raises(LookupError):
            store.set_active_adapter(session, "nope")
    assert active_versions() == ["v1"]

    with store.session() as session:
        assert store.set_active_adapter(session, None) is None
        assert store.active_adapter(session) is None
    assert active_versions() == []


def test_the_database_itself_refuses_a_second_active_adapter(store: Store) -> None:
    with store.session() as session:  # any number of retired ones
        for version in ("r1", "r2"):
            session.add(
                AdapterVersion(
                    version=version, method="lora", base_model="m", path="/", status="retired"
                )
            )
    with pytest.raises(sa_exc.IntegrityError, match=r"(?i)unique"), store.session() as session:
        for version in ("v1", "v2"):
            session.add(
                AdapterVersion(
                    version=version, method="lora", base_model="m", path="/", status="active"
                )
            )


def test_the_database_itself_refuses_a_second_active_matcher_of_a_kind(store: Store) -> None:
    with store.session() as session:  # one active per kind; inactive ones of a kind, any number
        for version, kind, active in [
            ("m1", "indomain", True),
            ("r1", "ranker", True),
            ("m2", "indomain", False),
            ("m3", "indomain", False),
        ]:
            session.add(MatcherVersion(version=version, kind=kind, path="/", active=active))
    with pytest.raises(sa_exc.IntegrityError, match=r"(?i)unique"), store.session() as session:
        session.add(MatcherVersion(version="m4", kind="indomain", path="/", active=True))


def test_set_active_matcher_keeps_exactly_one_active(store: Store) -> None:
    with store.session() as session:
        for version in ("m1", "m2"):
            session.add(MatcherVersion(version=version, kind="cross-encoder", path="/"))
    for version in ("m1", "m2", "m1"):
        with store.session() as session:
            store.set_active_matcher(session, version)
        with store.session() as session:
            active = session.scalars(select(MatcherVersion).where(MatcherVersion.active)).all()
            assert [m.version for m in active] == [version]
            found = store.active_matcher(session)
            assert found is not None and found.version == version
            assert store.get_matcher(session, "m2") is not None
    with store.session() as session:
        store.set_active_matcher(session, None)
        assert store.active_matcher(session) is None


# --- units of work -----------------------------------------------------------------------------


def test_a_unit_of_work_that_raises_leaves_nothing_behind(store: Store) -> None:
    with pytest.raises(RuntimeError, match="agent closed the window"), store.session() as session:
        customer = store.get_or_create_customer(session, "c1")
        store.open_conversation(session, customer.id, "taobao")  # flushed, not yet committed
        raise RuntimeError("agent closed the window")
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(Customer)) == 0
        assert session.scalar(select(func.count()).select_from(Conversation)) == 0

    with store.session() as first:
        store.get_or_create_customer(first, "c2")
    with store.session() as second:
        assert second is not first
        assert [c.masked_id for c in second.scalars(select(Customer))] == ["c2"]


def test_a_unit_of_work_holds_the_write_lock_from_its_start(
    sqlite_store: Store, db_path: Path
) -> None:
    """Otherwise another program's write between our read and our write would fail ours."""
    store = sqlite_store
    seed_conversation(store)
    with store.session() as session:
        customer = session.scalars(select(Customer)).one()
        other = sqlite3.connect(db_path, timeout=0.1, isolation_level=None)
        with closing(other), pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("UPDATE customers SET display_name = 'other program'")
        customer.display_name = "this unit of work"
    with store.session() as session:
        assert session.scalars(select(Customer.display_name)).one() == "this unit of work"


# --- damaged files -----------------------------------------------------------------------------


def truncated_database(path: Path) -> bytes:
    with open_store(f"sqlite:///{path}") as store:
        conversation_id, _ = seed_conversation(store)
        with store.session() as session:
            for n in range(200):
                store.add_message(session, conversation_id, "agent", f"回复 {n} " * 20)
    whole = path.read_bytes()  # closing the store checkpointed the WAL into the file
    return whole[: len(whole) // 2]


@pytest.mark.parametrize("damage", ["random bytes", "truncated"])
def test_a_damaged_file_is_refused_and_left_untouched(db_path: Path, damage: str) -> None:
    if damage == "random bytes":
        damaged = random.Random(7).randbytes(64 * 1024)
    else:
        damaged = truncated_database(db_path.with_name("source.db"))
    db_path.parent.mkdir(parents=True, exist_ok=True)
    db_path.write_bytes(damaged)

    with pytest.raises(StoreError) as caught:
        open_store(f"sqlite:///{db_path}")
    message = str(caught.value)
    assert str(db_path) in message
    assert "Move it away" in message and ".bak" in message
    assert db_path.read_bytes() == damaged
    assert not list(db_path.parent.glob("xiaoer.db.bak*"))


# --- locks -------------------------------------------------------------------------------------


def hold_write_lock(path: Path, seconds: float, locked: threading.Event) -> None:
    """Another program: takes the write lock, writes a row, commits after ``seconds``."""
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("BEGIN EXCLUSIVE")
        conn.execute("UPDATE customers SET display_name = 'seen by the other program'")
        locked.set()
        time.sleep(seconds)
        conn.execute("COMMIT")


def test_a_briefly_held_lock_is_waited_out(db_path: Path) -> None:
    with open_store(f"sqlite:///{db_path}", lock_timeout=3) as store:
        conversation_id, _ = seed_conversation(store)
        locked = threading.Event()
        holder = threading.Thread(target=hold_write_lock, args=(db_path, 0.4, locked))
        holder.start()
        assert locked.wait(5)
        started = time.monotonic()
        with store.session() as session:
            store.add_message(session, conversation_id, "agent", "稍等，我查一下")
        waited = time.monotonic() - started
        holder.join()
        with store.session() as session:
            texts = session.scalars(select(Message.text).order_by(Message.id)).all()
            customer = session.scalars(select(Customer)).one()
    assert waited >= 0.2  # it really waited for the other program
    assert texts == ["这件衣服有M码吗？", "稍等，我查一下"]
    assert customer.display_name == "seen by the other program"


def test_a_lock_held_too_long_raises_and_loses_nothing(db_path: Path) -> None:
    with open_store(f"sqlite:///{db_path}", lock_timeout=0.3) as store:
        conversation_id, _ = seed_conversation(store)
        other = sqlite3.connect(db_path, isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        try:
            started = time.monotonic()
            locked = pytest.raises(StoreError, match="locked by another program")
            with locked, store.session() as session:
                store.add_message(session, conversation_id, "agent", "lost?")
            assert time.monotonic() - started >= 0.25
        finally:
            other.execute("ROLLBACK")
            other.close()

        with store.session() as session:
            texts = session.scalars(select(Message.text)).all()
        assert texts == [
            "这件衣服有M码吗？"
        ]  # the committed row survived, the failed one is absent
        with store.session() as session:
            store.add_message(session, conversation_id, "agent", "retried")
        with store.session() as session:
            assert session.scalar(select(func.count()).select_from(Message)) == 2


# --- migrations --------------------------------------------------------------------------------

# The simulated revisions come after the real head, whatever it is.
HEAD = migrate.head_revision()
NEXT = "9999"

BROKEN_REVISION = f"""
import sqlalchemy as sa
from alembic import op

revision = "{NEXT}"
down_revision = "{HEAD}"


def upgrade():
    op.create_table("doomed", sa.Column("id", sa.Integer, primary_key=True))
    op.execute("UPDATE customers SET display_name = 'clobbered'")
    # Like a revision that must run outside a transaction: its changes are already committed.
    op.execute("COMMIT")
    raise RuntimeError("simulated failure in revision {NEXT}")
"""

GOOD_REVISION = f"""
import sqlalchemy as sa
from alembic import op

revision = "{NEXT}"
down_revision = "{HEAD}"


def upgrade():
    # A full table rebuild, as most SQLite schema changes need.
    with op.batch_alter_table("customers", recreate="always") as batch:
        batch.add_column(sa.Column("note", sa.Text(), nullable=True))
"""


def add_revision(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, code: str) -> None:
    versions = tmp_path / f"versions-{name}"
    versions.mkdir()
    (versions / f"{NEXT}_{name}.py").write_text(code, encoding="utf-8")
    monkeypatch.setattr(migrate, "VERSION_LOCATIONS", [*migrate.VERSION_LOCATIONS, versions])


def test_a_failed_migration_restores_the_original_and_keeps_a_backup(
    sqlite_store: Store, db_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = sqlite_store
    seed_conversation(store)
    store.close()
    before = dump(db_path)
    add_revision(tmp_path, monkeypatch, "broken", BROKEN_REVISION)

    with pytest.raises(StoreError, match=f"from revision {HEAD} to {NEXT} failed") as caught:
        open_store(f"sqlite:///{db_path}")
    assert "simulated failure" in str(caught.value)
    assert dump(db_path) == before  # no "doomed" table, no clobbered name
    backup = db_path.with_name(f"xiaoer.db.bak-{HEAD}")
    assert dump(backup) == before
    assert revision_of(db_path) == HEAD


def test_an_upgrade_keeps_a_backup_of_the_old_revision(
    sqlite_store: Store, db_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = sqlite_store
    seed_conversation(store)
    store.close()
    before = dump(db_path)
    older_copy = db_path.with_name(f"xiaoer.db.bak-{HEAD}")
    older_copy.write_bytes(b"an older copy, maybe the only good one")
    add_revision(tmp_path, monkeypatch, "good", GOOD_REVISION)

    with open_store(f"sqlite:///{db_path}") as upgraded, upgraded.session() as session:
        assert session.scalar(text("SELECT note FROM customers")) is None
        assert session.scalar(text("SELECT display_name FROM customers")) == "小王"
        # Rebuilding the parent table did not cascade-delete its children.
        assert session.scalar(select(func.count()).select_from(Message)) == 1
    assert revision_of(db_path) == NEXT
    assert dump(db_path.with_name(f"xiaoer.db.bak-{HEAD}-2")) == before
    assert older_copy.read_bytes() == b"an older copy, maybe the only good one"


def test_a_database_from_a_newer_xiaoer_is_refused(sqlite_store: Store, db_path: Path) -> None:
    sqlite_store.close()
    with closing(sqlite3.connect(db_path)) as conn, conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    before = db_path.read_bytes()
    with pytest.raises(StoreError, match="newer Xiaoer"):
        open_store(f"sqlite:///{db_path}")
    assert db_path.read_bytes() == before


def test_a_server_database_from_a_newer_xiaoer_is_refused(pg_url: str) -> None:
    with open_store(pg_url) as store, store.session() as session:
        session.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(StoreError, match="newer Xiaoer"):
        open_store(pg_url)


def test_a_failed_server_migration_changes_nothing(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL changes its schema inside the transaction: a failed upgrade is rolled back."""
    with open_store(pg_url) as store:
        seed_conversation(store)
    add_revision(
        tmp_path, monkeypatch, "broken", BROKEN_REVISION.replace('op.execute("COMMIT")', "")
    )
    with pytest.raises(StoreError, match=f"from revision {HEAD} to {NEXT} failed"):
        open_store(pg_url)
    monkeypatch.setattr(migrate, "VERSION_LOCATIONS", migrate.VERSION_LOCATIONS[:1])
    with open_store(pg_url) as store, store.session() as session:
        assert session.scalar(text("SELECT version_num FROM alembic_version")) == HEAD
        assert session.scalar(select(Customer.display_name)) == "小王"
        assert "doomed" not in inspect(session.connection()).get_table_names()


def test_knowledge_and_suggestion_candidates_round_trip(store: Store) -> None:
    """The shop knowledge's queries (a multi-row INSERT … RETURNING in order, bulk updates)."""
    from app.store.knowledge import NewCandidate, NewKnowledgeEntry

    _, message_id = seed_conversation(store)
    entries = [
        NewKnowledgeEntry("faq", [f"问题{n}"], f"问题{n}", f"答案{n}", f"h{n}", bytes([n] * 8))
        for n in range(250)
    ]
    with store.session() as session:
        source = store.add_knowledge_source(
            session, "faq", kind="faq", format="faq", path=None, encoder="e5:1"
        )
        ids = store.add_knowledge_entries(session, source.id, entries)
        store.set_knowledge_embeddings(session, {ids[0]: b"new"})
        assert store.refresh_knowledge_source(session, source.id).entries == 250
    with store.session() as session:
        hashes = store.knowledge_hashes(session, source.id)
        assert [hashes[f"h{n}"] for n in range(250)] == ids  # the ids came back in order
        assert store.knowledge_embeddings_by_id(session, [ids[0], ids[1]]) == {
            ids[0]: b"new",
            ids[1]: bytes([1] * 8),
        }
        shown = store.record_candidates(
            session,
            message_id,
            [
                NewCandidate(0, "model", "有的亲"),
                NewCandidate(1, "faq", "答案1", 0.5, knowledge_entry_id=ids[1]),
            ],
        )
        store.choose_candidate(session, shown[1].id)
    with store.session() as session:
        assert [(c.text, c.chosen) for c in store.candidates_for(session, message_id)] == [
            ("有的亲", False),
            ("答案1", True),
        ]
        assert store.delete_knowledge_entries(session, ids[:10]) == 10
        assert sorted(store.remove_knowledge_source(session, "faq")) == ids[10:]
        assert store.knowledge_count(session) == 0
