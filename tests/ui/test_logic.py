"""The Qt-free parts of the UI package: channels, workspace records, metrics, evolution contract."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.store import AdapterVersion, Store, TeacherReply
from app.ui import evolution
from app.ui.channels import ReplayChannel, read_jddc2019_sessions
from app.ui.metrics import daily_metrics
from app.ui.workspace import DraftRecord, Workspace
from tests.ui.test_panels import write_jddc2019

SHARED_CHAT = (
    Path(__file__).resolve().parents[3] / "shared" / "data" / "jddc2019" / "chat_0.1per.txt"
)


def test_replay_sessions_merge_turns_and_wait_for_the_agent(tmp_path: Path) -> None:
    sessions = read_jddc2019_sessions(write_jddc2019(tmp_path / "c.txt"))
    assert [s.session_id for s in sessions] == ["s1", "s2"]
    channel = ReplayChannel(sessions, interval_s=10, reply_delay_s=2)
    first = channel.poll(0.0)
    assert [(m.key, m.text, m.reference) for m in first] == [
        ("s1", "你好", "您好，有什么可以帮您？")
    ]
    assert channel.poll(5.0) == []  # the next customer arrives after the interval
    assert [m.key for m in channel.poll(10.0)] == ["s2"]
    assert channel.poll(11.0) == []  # s1 waits for the agent
    channel.agent_replied("s1", "您好", 11.0)
    assert channel.poll(12.0) == []
    later = channel.poll(13.0)
    assert [(m.text, m.reference) for m in later] == [("我的快递到哪了", "亲，正在派送中")]


def test_replay_refuses_a_file_of_another_format(tmp_path: Path) -> None:
    bad = tmp_path / "train.enc"
    bad.write_text("你好,在吗,\n", encoding="utf-8")
    with pytest.raises(ValueError, match="7 tab-separated columns"):
        ReplayChannel.from_file(bad)


@pytest.mark.skipif(not SHARED_CHAT.is_file(), reason="the JDDC 2019 sample is in ../shared/data")
def test_replay_reads_the_real_jddc2019_sample() -> None:
    sessions = read_jddc2019_sessions(SHARED_CHAT)
    assert len(sessions) > 900
    assert all(any(not agent for agent, _ in s.turns) for s in sessions)


def test_workspace_records_and_summaries(store: Store) -> None:
    ws = Workspace(store)
    cid = ws.conversation_for("manual", "b1")
    assert ws.conversation_for("manual", "b1") == cid  # the same open conversation
    m1 = ws.add_customer_message(cid, "在吗")
    ws.add_customer_message(cid, "发货了吗")
    [summary] = ws.summaries()
    assert summary.unanswered == 2 and summary.waiting_since is not None
    draft = ws.record_draft(DraftRecord(m1, "在的", "p", 10, 5, 3, None))
    ws.send(cid, "在的亲", draft, thumbs_up=True)
    [summary] = ws.summaries()
    assert summary.unanswered == 0 and summary.waiting_since is None
    rating = ws.latest_rating(draft)
    assert rating is not None and rating.edited and rating.thumbs_up
    ws.close_conversation(cid)
    assert ws.summaries() == []
    assert ws.conversation_for("manual", "b1") != cid  # closed: a new one opens


def test_daily_metrics(store: Store) -> None:
    ws = Workspace(store)
    cid = ws.conversation_for("manual", "b")
    m = ws.add_customer_message(cid, "q")
    drafts = [ws.record_draft(DraftRecord(m, f"d{i}", "p", 1, 1, 1, None)) for i in range(4)]
    with store.session() as session:
        for d, final in zip(drafts, (0.2, 0.4, 0.6, 0.8), strict=True):
            store.record_score(session, d, final=final, mode="match_only", alpha=0.8, theta=0.2)
        store.record_score(session, drafts[0], final=1.0, mode="full", alpha=0.8, theta=0.2)
        session.add(TeacherReply(query_text="q", reply_text="r", label_source="teacher", cost=0.25))
    ws.rate(drafts[0], True)
    ws.rate(drafts[1], False)
    ws.send(cid, "d2", drafts[2])  # unedited
    ws.send(cid, "changed", drafts[3])  # edited
    [day] = daily_metrics(store)
    assert day.drafts == 4
    assert day.mean_final == pytest.approx((1.0 + 0.4 + 0.6 + 0.8) / 4)  # latest score per draft
    assert day.thumbs_up_rate == 0.5
    assert day.edit_rate == 0.5
    assert day.unedited_share == 0.25
    assert (day.cloud_calls, day.cloud_cost) == (1, 0.25)


def test_parse_event_and_command() -> None:
    assert evolution.evolve_command("py") == ["py", "-m", "app", "evolve", "--now", "--jsonl"]
    assert evolution.parse_event('{"event":"step","step":1,"total":2}\n') == {
        "event": "step",
        "step": 1,
        "total": 2,
    }
    for line in ("", "loading weights…", '{"event":"unknown"}', "{broken", "[1, 2]"):
        assert evolution.parse_event(line) is None
    assert evolution.format_eta(75) == "1:15" and evolution.format_eta(None) == "–"


def add_adapter(store: Store, version: str, promoted: datetime | None, status: str) -> None:
    """An adapter version with a (stand-in) GGUF file whose hash is recorded, as export does."""
    from app.evolve.promotion import sha256_of
    from app.evolve.versions import adapters_dir

    run = adapters_dir() / version
    run.mkdir(parents=True)
    (run / "adapter.gguf").write_bytes(version.encode() * 64)
    with store.session() as session:
        session.add(
            AdapterVersion(
                version=version,
                method="lora",
                base_model="qwen2.5-0.5b",
                path=str(run),
                status=status,
                promoted_at=promoted,
                metrics={"sha256": sha256_of(run / "adapter.gguf")},
            )
        )


def test_rollback_target_and_activation(store: Store) -> None:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    add_adapter(store, "v1", t, "retired")
    add_adapter(store, "v2", t + timedelta(days=1), "retired")
    add_adapter(store, "v3", None, "rejected")
    add_adapter(store, "v4", t + timedelta(days=2), "active")
    history = evolution.adapter_history(store)
    assert [r.version for r in history] == ["v4", "v3", "v2", "v1"]
    assert evolution.rollback_target(history) == "v2"
    evolution.activate_adapter(store, "v2")
    assert [r.status for r in evolution.adapter_history(store)] == [
        "retired",
        "rejected",
        "active",
        "retired",
    ]
    with pytest.raises(ValueError, match="rejected"):
        evolution.activate_adapter(store, "v3")


def test_should_evolve_policies(store: Store) -> None:
    ws = Workspace(store)
    cid = ws.conversation_for("manual", "b")
    m = ws.add_customer_message(cid, "q")
    draft = ws.record_draft(DraftRecord(m, "d", "p", 1, 1, 1, None))
    now = datetime.now(UTC)
    assert not evolution.should_evolve(store, "daily", 1, now)  # no labels yet
    with store.session() as session:
        session.add(TeacherReply(query_text="q", reply_text="r", label_source="teacher"))
        for _ in range(3):  # labels are linked to the draft they teach
            session.add(
                TeacherReply(draft_id=draft, query_text="q", reply_text="r", label_source="teacher")
            )
    assert evolution.should_evolve(store, "daily", 1, now)
    assert evolution.should_evolve(store, "after_labels", 3, now)
    assert not evolution.should_evolve(store, "after_labels", 4, now)
    assert not evolution.should_evolve(store, "off", 1, now)
    add_adapter(store, "v1", None, "candidate")  # a round made a version: labels are not new
    assert not evolution.should_evolve(store, "daily", 1, now + timedelta(days=2))
    assert not evolution.should_evolve(store, "after_labels", 1, now)


def test_settings_dialog_values_reach_the_evolution_engine(data_home: Path) -> None:
    from app.evolve import EvolutionSettings

    EvolutionSettings(margin=0.05).save()
    evolution.sync_evolution_settings(0.35, "after_labels", 12)
    saved = EvolutionSettings.load()
    assert (saved.low_score, saved.auto_every, saved.margin) == (0.35, 12, 0.05)
    evolution.sync_evolution_settings(0.4, "daily", 12)
    assert EvolutionSettings.load().auto_every is None
    # Adapters are trained and gated on the prompts the app drafts with.
    past = data_home / "past.jsonl"
    evolution.sync_evolution_settings(0.4, "daily", 12, str(past), 4)
    saved = EvolutionSettings.load()
    assert (saved.examples, saved.shots) == (str(past.resolve()), 4)
    evolution.sync_evolution_settings(0.4, "daily", 12, "", 4)
    assert (EvolutionSettings.load().examples, EvolutionSettings.load().shots) == (None, 0)
