"""Restoring the teacher's placeholders: only this conversation's own values ever come back.

The prompt's example dialogues are redacted with the same placeholder numbering as the
conversation, so a teacher that copies ``[ADDRESS_1]`` from an example would, restored with the
whole map, show the agent (and teach the end model) another customer's address. These tests play
such a teacher (a scripted stand-in for the provider) and follow its reply to every place it can
surface: the reply shown, the record stored, the evolution labels and the batch labels.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import select, text

from app.cloud.label import LabelTask, label_corpus
from app.cloud.prompt import PromptExample
from app.cloud.redact import PLACEHOLDER
from app.cloud.service import RetryPolicy, TeacherService, restore_reply
from app.cloud.teacher import TeacherAnswer, TeacherRequest, Usage
from app.engine.conversation import Turn
from app.evolve.data import read_examples
from app.evolve.loop import Evolution
from app.store import Store, TeacherReply, open_store
from tests.doubles import OneExample

# Another customer's data, in the shop's past dialogue the prompt shows as an example.
EXAMPLE = PromptExample(
    "我叫王芳，地址是江苏省苏州市姑苏区人民路100号，电话13900001111，能改地址吗",
    "王芳您好，已改为江苏省苏州市姑苏区人民路100号，会致电13900001111确认。",
)
EXAMPLE_VALUES = ["王芳", "人民路100号", "13900001111"]
CONVERSATION = (
    Turn("customer", "你好，我叫张伟"),
    Turn("agent", "您好，请问有什么可以帮您？"),
    Turn("customer", "电话13812345678，能改地址吗"),
)
OWN_VALUES = ["张伟", "13812345678"]
PLAIN = (Turn("customer", "这件衣服七天内能退货吗"),)


@dataclass
class CopyingTeacher:
    """A scripted teacher that copies the example's placeholders into its reply whenever the
    conversation has placeholders of its own (as a small model imitating the example does), and
    answers plainly otherwise."""

    provider: str = "scripted"
    model: str = "copier-1"
    is_local: bool = False
    copied: list[str] = field(default_factory=list)

    def complete(self, request: TeacherRequest) -> TeacherAnswer:
        example = " ".join(text for _, text in request.messages[1:3])
        conversation = " ".join(text for _, text in request.messages[3:])
        own = list(dict.fromkeys(PLACEHOLDER.findall(conversation)))
        own_tags = [f"[{kind}_{n}]" for kind, n in own]
        foreign = [
            f"[{kind}_{n}]"
            for kind, n in dict.fromkeys(PLACEHOLDER.findall(example))
            if f"[{kind}_{n}]" not in own_tags
        ]
        if not own_tags:
            return TeacherAnswer("亲，七天无理由退货的，请放心下单哦。", self.provider, self.model)
        self.copied = foreign
        text = f"您好，已为您改到{''.join(foreign)}，会联系{'、'.join(own_tags)}确认。"
        return TeacherAnswer(text, self.provider, self.model, Usage(80, 20))


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = open_store(f"sqlite:///{tmp_path / 'x.db'}")
    yield s
    s.close()


def teacher_service(store: Store | None, teacher: CopyingTeacher) -> TeacherService:
    return TeacherService(
        teacher,
        store,
        OneExample(EXAMPLE),
        k=1,
        retry=RetryPolicy(attempts=1),
        sleep=lambda s: None,
    )


def assert_none_of(values: list[str], text: str | None, where: str) -> None:
    leaked = [v for v in values if text and v in text]
    assert not leaked, f"{where} holds another customer's data {leaked}: {text}"


def stored_texts(store: Store) -> list[str]:
    with store.session() as session:
        rows = session.scalars(select(TeacherReply)).all()
        return [
            json.dumps(
                [r.reply_text, r.query_text, r.label_text, r.unusable_reason],
                ensure_ascii=False,
            )
            for r in rows
        ]


def test_scripted_teacher_copying_an_example_placeholder_shows_and_stores_none_of_its_values(
    store: Store,
) -> None:
    teacher = CopyingTeacher()
    result = teacher_service(store, teacher).ask(CONVERSATION)
    assert teacher.copied, "the example's personal data went out as placeholders"
    # The reply shown to the agent.
    assert_none_of(EXAMPLE_VALUES, result.reply, "the reply shown")
    assert "13812345678" in result.reply, "the conversation's own placeholder is restored"
    # Kept, flagged, not a label.
    assert result.label is None
    assert result.unusable and "[" in result.unusable
    for stored in stored_texts(store):
        assert_none_of(EXAMPLE_VALUES, stored, "the stored record")
    with store.session() as session:
        row = session.scalars(select(TeacherReply)).one()
        assert row.label_text is None and row.unusable_reason == result.unusable
    # Asked again: the cached answer is flagged the same way.
    again = teacher_service(store, teacher).ask(CONVERSATION)
    assert again.cached and again.label is None and again.reply == result.reply


def test_scripted_copied_placeholder_is_not_learned_by_evolution(store: Store) -> None:
    draft_ids = []
    for turns in (CONVERSATION, PLAIN):
        with store.session() as session:
            who = store.get_or_create_customer(session, f"c{len(draft_ids)}")
            conv = store.open_conversation(session, who.id, "manual")
            for turn in turns[:-1]:
                store.add_message(session, conv.id, turn.role, turn.text)
            msg = store.add_message(session, conv.id, "customer", turns[-1].text)
            draft = store.add_draft(
                session,
                msg.id,
                "不知道。",
                model_profile="qwen2.5-0.5b",
                latency_ms=5,
                prompt_tokens=10,
                completion_tokens=5,
            )
            store.record_rating(session, draft.id, thumbs_up=False, sent_text=None)
            draft_ids.append(draft.id)
    evolution = Evolution(store, teacher=teacher_service(store, CopyingTeacher()))
    assert evolution.fetch_labels()["teacher"] == 2
    labels = [lab[2] for lab in evolution.labels()]
    for label in labels:
        assert_none_of(EXAMPLE_VALUES, label.reply, "an evolution label")
        assert not PLACEHOLDER.search(label.reply), f"a placeholder would be learned: {label}"
    assert [lab.reply for lab in labels] == ["亲，七天无理由退货的，请放心下单哦。"]
    assert evolution.candidates() == [], "the flagged reply is kept: the draft is not asked again"


def test_scripted_copied_placeholder_is_not_a_batch_label(store: Store, tmp_path: Path) -> None:
    tasks = [LabelTask("copied", CONVERSATION, None), LabelTask("plain", PLAIN, None)]
    out = tmp_path / "labels.jsonl"
    report = label_corpus(
        teacher_service(store, CopyingTeacher()), tasks, out, progress=lambda s: None
    )
    assert_none_of(EXAMPLE_VALUES, out.read_text(encoding="utf-8"), "the labels file")
    assert (report.labeled, report.unusable, report.failed) == (1, 1, 0)
    records = {r["id"]: r for r in map(json.loads, out.read_text("utf-8").splitlines())}
    assert records["copied"]["teacher_reply"] is None and records["copied"]["unusable"]
    # What `xiaoer train` reads from that file: the plain label only.
    assert [ex.reply for ex in read_examples(out)] == ["亲，七天无理由退货的，请放心下单哦。"]
    # A rerun does not ask for the flagged task again.
    again = label_corpus(teacher_service(store, CopyingTeacher()), tasks, out, progress=print)
    assert again.skipped == 2


def test_restore_reply_puts_back_only_the_conversations_own_values() -> None:
    own = {"[PHONE_1]": "13812345678", "[NAME_1]": "张伟"}
    done = restore_reply("[NAME_1]您好，[PHONE_1]已登记", own)
    assert (done.text, done.foreign) == ("张伟您好，13812345678已登记", ())
    copied = restore_reply("[NAME_1]您好，寄到[ADDRESS_1]，联系[PHONE_2]", own)
    assert copied.text == "张伟您好，寄到[ADDRESS_1]，联系[PHONE_2]"
    assert copied.foreign == ("[ADDRESS_1]", "[PHONE_2]")


def test_labels_recorded_before_are_migrated_without_redacting_again(tmp_path: Path) -> None:
    """A database from before: a teacher reply with placeholders can't be restored safely now
    (detection may have changed; the placeholder may be an example's), so it is kept and flagged;
    a plain reply and an agent's edit stay labels as they were."""
    from alembic import command
    from sqlalchemy import create_engine

    from app.store import migrate

    path = tmp_path / "old.db"
    engine = create_engine(f"sqlite:///{path}")
    rows = [
        ("teacher", "[NAME_1]您好，已寄到[ADDRESS_2]。"),
        ("teacher", "亲，七天无理由退货的，请放心下单哦。"),
        ("agent_edit", "好的，已为您登记 [数字x] 号的订单。"),
    ]
    with engine.begin() as conn:
        command.upgrade(migrate.alembic_config(conn), "0002")
        for source, reply in rows:
            conn.execute(
                text(
                    "INSERT INTO teacher_replies (query_text, reply_text, input_tokens, "
                    "output_tokens, label_source, created_at) "
                    "VALUES ('q', :reply, 0, 0, :source, '2026-11-30 10:00:00')"
                ),
                {"reply": reply, "source": source},
            )
    engine.dispose()
    with open_store(f"sqlite:///{path}") as store, store.session() as session:
        migrated = session.scalars(select(TeacherReply).order_by(TeacherReply.id)).all()
        assert [(r.label_text, bool(r.unusable_reason)) for r in migrated] == [
            (None, True),
            (rows[1][1], False),
            (rows[2][1], False),
        ]
