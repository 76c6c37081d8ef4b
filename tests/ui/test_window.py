"""The agent's workspace driven through the real window: arrive, draft, rate, ask, send."""

from __future__ import annotations

import json
import re
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from sqlalchemy import select

from app.cloud.teacher import TeacherUnavailable
from app.engine.conversation import Turn
from app.engine.weights import ModelError
from app.store import Draft, Message, Rating, Score, Store, TeacherReply
from app.ui.channels import Incoming
from app.ui.conversation_view import ConversationView
from tests.ui.conftest import DEFAULT_REPLY, Parts


def arrive(window: Any, text: str, customer: str = "buyer-1", reference: str | None = None) -> int:
    conversation_id = window.receive(
        Incoming("manual", customer, customer, text, reference=reference)
    )
    assert conversation_id is not None
    return int(conversation_id)


def open_and_draft(
    qtbot: Any, window: Any, text: str, customer: str = "buyer-1"
) -> ConversationView:
    conversation_id = arrive(window, text, customer)
    view = window.open_conversation(conversation_id)
    qtbot.waitUntil(lambda: view.draft_id is not None and view.last_score is not None)
    return view


def test_an_arriving_customer_waits_in_the_queue_with_an_unread_count(qtbot, window) -> None:
    conversation_id = arrive(window, "在吗？", "buyer-7")
    arrive(window, "这个能便宜点吗", "buyer-7")
    assert window.queue.visible_ids() == [conversation_id]
    item = window.queue.list.item(0)
    assert "buyer-7" in item.text() and "(2)" in item.text()
    assert re.search(r"\b0:0\d\b", item.text()) and not item.icon().isNull()  # waiting 0:0x
    assert "这个能便宜点吗" in item.text()
    window.open_conversation(conversation_id)
    assert "(2)" not in window.queue.list.item(0).text()


def test_queue_search_filters_customers_and_messages(qtbot, window) -> None:
    a = arrive(window, "发什么快递", "alice")
    b = arrive(window, "可以开发票吗", "bob")
    assert set(window.queue.visible_ids()) == {a, b}
    window.queue.search.setText("发票")  # QTest types ASCII only
    assert window.queue.visible_ids() == [b]
    window.queue.search.clear()
    qtbot.keyClicks(window.queue.search, "alice")
    assert window.queue.visible_ids() == [a]


def test_a_draft_streams_in_is_recorded_and_scored(
    qtbot, window, parts: Parts, store: Store
) -> None:
    parts.backend.gate = threading.Event()
    conversation_id = arrive(window, "今天下单什么时候发货？")
    view = window.open_conversation(conversation_id)
    # Mid-stream: part of the reply is on screen, Send is disabled, Stop is enabled.
    qtbot.waitUntil(lambda: view.panel.editor.toPlainText() != "")
    assert DEFAULT_REPLY.startswith(view.panel.editor.toPlainText())
    assert view.panel.editor.toPlainText() != DEFAULT_REPLY
    assert view.generating and view.panel.stop_button.isEnabled()
    assert not view.panel.send_button.isEnabled()
    parts.backend.gate.set()
    qtbot.waitUntil(lambda: view.last_score is not None)
    assert view.panel.editor.toPlainText() == DEFAULT_REPLY
    assert view.panel.send_button.isEnabled()
    with store.session() as session:
        draft = session.scalars(select(Draft)).one()
        assert draft.text == DEFAULT_REPLY and draft.conversation_id == conversation_id
        assert draft.completion_tokens > 0 and draft.latency_ms >= 0
        score = session.scalars(select(Score)).one()
        assert score.draft_id == draft.id and score.mode == "match_only"
    assert view.panel.match_badge.text().endswith("0.70")
    assert view.panel.final_badge.text().endswith("0.70")
    assert view.panel.fallback_badge.text() != ""  # "match only" until the teacher answers


def test_edit_then_send_records_what_was_sent(qtbot, window, store: Store) -> None:
    view = open_and_draft(qtbot, window, "能便宜点吗")
    view.panel.editor.setPlainText("亲，已经是最低价啦，送您一张优惠券。")
    qtbot.mouseClick(view.panel.up_button, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(view.panel.send_button, Qt.MouseButton.LeftButton)
    with store.session() as session:
        ratings = session.scalars(select(Rating).order_by(Rating.id)).all()
        assert ratings[-1].sent_text == "亲，已经是最低价啦，送您一张优惠券。"
        assert ratings[-1].edited is True and ratings[-1].thumbs_up is True
        agent = session.scalars(select(Message).where(Message.role == "agent")).one()
        assert agent.text == "亲，已经是最低价啦，送您一张优惠券。"
    assert "送您一张优惠券" in view.transcript.toPlainText()
    assert view.panel.editor.toPlainText() == ""


def test_send_as_is_with_the_keyboard(qtbot, window, store: Store) -> None:
    view = open_and_draft(qtbot, window, "发什么快递")
    qtbot.keyClick(view.panel.editor, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    with store.session() as session:
        rating = session.scalars(select(Rating)).one()
        assert rating.sent_text == DEFAULT_REPLY and rating.edited is False


def test_thumbs_down_asks_the_teacher_and_shows_its_reply_with_what_was_sent(
    qtbot, window, parts: Parts, store: Store
) -> None:
    view = open_and_draft(qtbot, window, "我电话13812345678，发什么快递")
    qtbot.keyClick(view.panel.editor, Qt.Key.Key_Down, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: view.cloud_reply is not None)
    qtbot.waitUntil(lambda: view.last_score is not None and view.last_score.similarity is not None)
    assert view.panel.cloud_box.isVisible()
    assert view.panel.cloud_view.toPlainText() == "亲，这款今天下单今天就能发货的。"
    tooltip = view.panel.cloud_view.toolTip()
    assert "[PHONE_1]" in tooltip and "13812345678" not in tooltip  # the firewall, visible
    assert "13812345678" not in json.dumps(parts.teacher.requests[0].messages, ensure_ascii=False)
    assert view.panel.similarity_badge.text().endswith("0.90")
    with store.session() as session:
        rating = session.scalars(select(Rating)).one()
        assert rating.thumbs_up is False and rating.sent_text is None
        label = session.scalars(select(TeacherReply)).one()
        assert label.draft_id == view.draft_id and label.message_id == view.reply_to_id
        assert "[PHONE_1]" in (label.sent_json or "")
        modes = [s.mode for s in session.scalars(select(Score).order_by(Score.id))]
        assert modes == ["match_only", "full"]


def test_a_weak_draft_gets_a_teacher_label_by_itself(qtbot, window, parts: Parts) -> None:
    parts.matching.value = 0.1  # below the low-score threshold (0.5)
    view = open_and_draft(qtbot, window, "退货运费谁出")
    qtbot.waitUntil(lambda: view.cloud_reply is not None)
    assert len(parts.teacher.requests) == 1


def test_a_high_score_from_an_untrained_matcher_still_asks_the_teacher(
    qtbot, window, parts: Parts
) -> None:
    parts.matching.version = "e5-small"  # not trained on the shop's chats: uncalibrated
    parts.matching.value = 0.99  # e5 rated an invented promise this high
    view = open_and_draft(qtbot, window, "羽绒服能便宜点吗")
    qtbot.waitUntil(lambda: view.cloud_reply is not None)
    assert view.last_score is not None and len(parts.teacher.requests) == 1


def test_a_trained_matchers_good_score_skips_the_teacher(qtbot, window, parts: Parts) -> None:
    view = open_and_draft(qtbot, window, "退货运费谁出")
    qtbot.waitUntil(lambda: view.last_score is not None)
    qtbot.wait(200)
    assert view.cloud_reply is None and parts.teacher.requests == []


def test_fallback_is_shown_when_the_teachers_own_match_is_below_theta(
    qtbot, window, parts: Parts
) -> None:
    parts.matching.by_reply["亲，这款今天下单今天就能发货的。"] = 0.05
    view = open_and_draft(qtbot, window, "几天到")
    view.ask_cloud()
    qtbot.waitUntil(lambda: view.last_score is not None and view.last_score.mode == "fallback")
    assert view.panel.fallback_badge.text() == "fallback: similarity only"
    assert view.panel.final_badge.text().endswith("0.90")


def test_stop_ends_the_draft_between_tokens(qtbot, window, parts: Parts, store: Store) -> None:
    parts.backend.gate = threading.Event()
    conversation_id = arrive(window, "你好")
    view = window.open_conversation(conversation_id)
    qtbot.waitUntil(lambda: view.panel.editor.toPlainText() != "")
    qtbot.keyClick(view.panel.editor, Qt.Key.Key_Escape)
    parts.backend.gate.set()
    qtbot.waitUntil(lambda: not view.generating)
    assert view.panel.status.text().startswith("stopped")
    assert len(view.panel.editor.toPlainText()) < len(DEFAULT_REPLY)


def test_regenerate_writes_a_new_draft(qtbot, window, parts: Parts, store: Store) -> None:
    parts.backend.replies = ["第一个草稿", "第二个草稿"]
    view = open_and_draft(qtbot, window, "有货吗")
    first = view.draft_id
    assert view.panel.editor.toPlainText() == "第一个草稿"
    qtbot.keyClick(view.panel.editor, Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: view.draft_id not in (None, first))
    assert view.panel.editor.toPlainText() == "第二个草稿"
    with store.session() as session:
        assert [d.text for d in session.scalars(select(Draft).order_by(Draft.id))] == [
            "第一个草稿",
            "第二个草稿",
        ]


def test_quick_phrases_and_the_help_overlay(qtbot, window) -> None:
    view = open_and_draft(qtbot, window, "在吗")
    view.panel.editor.clear()
    qtbot.keyClick(view.panel.editor, Qt.Key.Key_2, Qt.KeyboardModifier.ControlModifier)
    assert view.panel.editor.toPlainText() == window.services.settings.quick_phrases[1]
    assert not window.overlay.isVisible()
    qtbot.keyClick(window, Qt.Key.Key_F1)
    assert window.overlay.isVisible()
    table = window.overlay.findChild(type(window.model_status), "helpTable").text()
    for keys in ("Ctrl+Return", "Ctrl+R", "Ctrl+Up", "Ctrl+Down", "Ctrl+J", "F1"):
        assert keys in table
    qtbot.keyClick(window.overlay, Qt.Key.Key_Escape)
    assert not window.overlay.isVisible()


def test_several_chats_and_next_waiting_conversation(qtbot, window) -> None:
    a = arrive(window, "第一个顾客", "a")
    b = arrive(window, "第二个顾客", "b")
    window.open_conversation(a)
    qtbot.keyClick(window, Qt.Key.Key_J, Qt.KeyboardModifier.ControlModifier)
    assert window.current_view().conversation_id == b
    assert window.tabs.count() == 2


def test_manual_channel_new_customer_and_typed_message(qtbot, window, monkeypatch, store) -> None:
    from PySide6.QtWidgets import QInputDialog

    monkeypatch.setattr(QInputDialog, "getMultiLineText", lambda *a, **k: ("我想换个颜色", True))
    window.new_customer()
    view = window.current_view()
    assert view is not None and "我想换个颜色" in view.transcript.toPlainText()
    qtbot.waitUntil(lambda: view.draft_id is not None)
    view.customer_input.setText("换成黑色")  # QTest types ASCII only
    qtbot.keyClick(view.customer_input, Qt.Key.Key_Return)
    assert "换成黑色" in view.transcript.toPlainText()
    qtbot.waitUntil(lambda: view.draft_id is not None)
    with store.session() as session:
        texts = [m.text for m in session.scalars(select(Message).order_by(Message.id))]
    assert texts == ["我想换个颜色", "换成黑色"]


def test_export_markdown_and_csv(qtbot, window, tmp_path: Path) -> None:
    view = open_and_draft(qtbot, window, "发票怎么开")
    view.send()
    window.export_to(view.conversation_id, tmp_path / "chat.md")
    window.export_to(view.conversation_id, tmp_path / "chat.csv")
    md = (tmp_path / "chat.md").read_text(encoding="utf-8")
    assert "**Customer**" in md and "发票怎么开" in md and DEFAULT_REPLY in md
    csv_text = (tmp_path / "chat.csv").read_text(encoding="utf-8")
    assert csv_text.splitlines()[0] == "conversation,message,role,sent_at,text"
    assert len(csv_text.splitlines()) == 3


def test_teacher_unreachable_is_shown_and_drafting_goes_on(qtbot, window, parts: Parts) -> None:
    parts.teacher_error = TeacherUnavailable(
        "The local teacher is not running; start it with `xiaoer teacher serve`"
    )
    view = open_and_draft(qtbot, window, "怎么退货")
    view.ask_cloud()
    qtbot.waitUntil(lambda: window.banner.isVisible())
    assert "xiaoer teacher serve" in window.banner.label.text()
    assert "could not answer" in view.panel.cloud_view.toPlainText()
    view.request_draft()
    qtbot.waitUntil(lambda: view.draft_id is not None)


def test_a_missing_model_is_shown_and_the_agent_can_still_reply(
    qtbot, context, parts: Parts, answer_quit, store: Store
) -> None:
    from app.ui.main_window import MainWindow

    parts.load_error = ModelError("Unknown model 'x'. Known: qwen2.5-0.5b; or give a path")
    w = MainWindow(context)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: w.banner.isVisible())
    assert "Unknown model" in w.banner.label.text() and "Settings" in w.banner.label.text()
    assert w.model_status.text() == "no end model"
    view = w.open_conversation(arrive(w, "在吗"))
    view.panel.editor.setPlainText("在的，亲")
    view.send()
    with store.session() as session:
        assert (
            session.scalars(select(Message).where(Message.role == "agent")).one().text == "在的，亲"
        )


def test_a_locked_database_is_reported_not_crashed(
    qtbot, context, answer_quit, data_home: Path
) -> None:
    import dataclasses
    import sqlite3

    from app.store import open_store
    from app.ui.main_window import MainWindow

    quick = open_store(lock_timeout=0.2)  # another program's lock: give up after 0.2 s
    w = MainWindow(dataclasses.replace(context, store=quick))
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: w.model_ready)
    view = open_and_draft(qtbot, w, "在吗")
    blocker = sqlite3.connect(quick.path, timeout=0.1, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        view.send()
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert w.banner.isVisible() and "locked" in w.banner.label.text()
    assert view.panel.editor.toPlainText() == DEFAULT_REPLY  # nothing lost: send again
    view.send()
    assert view.panel.editor.toPlainText() == ""
    w.close()
    quick.close()


def test_a_locked_keyring_is_reported_with_what_to_do(
    qtbot, window, monkeypatch, memory_keyring
) -> None:
    import keyring.errors

    from app.cloud import providers
    from app.ui.services import make_teacher_service

    def locked(service: str, username: str) -> str | None:
        raise keyring.errors.KeyringLocked("the keyring is locked")

    monkeypatch.setattr(memory_keyring, "get_password", locked)
    providers.save_config(providers.TeacherConfig(provider="gemini"))
    window.services.context.make_teacher = make_teacher_service  # the real one
    view = open_and_draft(qtbot, window, "在吗")
    view.ask_cloud()
    qtbot.waitUntil(lambda: window.banner.isVisible())
    assert "unlock the keyring" in window.banner.label.text()
    assert not view.cloud_pending and view.panel.cloud_button.isEnabled()


def test_requests_after_closing_are_dropped_quietly(qtbot, window) -> None:
    view = open_and_draft(qtbot, window, "在吗")
    window.close()
    view.request_draft()  # e.g. a queued timer firing while the window closes
    view.ask_cloud()
    assert window.services.model.model is None


# --- the shop's past dialogues ---------------------------------------------------------------

PAST = [
    ("这个什么时候发货？", "亲，今天下单今天发货哦。"),
    ("可以开发票吗？", "亲，可以开具电子发票的，下单时填写抬头即可。"),
    ("怎么申请退货？", "亲，在订单页面点击申请售后就可以退货了。"),
    ("快递能改地址吗？", "亲，还没发货的话可以帮您修改地址。"),
]


def past_dialogues(path: Path) -> Path:
    """A JSONL corpus of the shop's past customer messages and the agents' replies."""
    lines = [json.dumps({"query": q, "reference": r}, ensure_ascii=False) for q, r in PAST]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def use_past_dialogues(window: Any, path: Path | str, shots: int = 2) -> None:
    settings = replace(window.services.settings, past_dialogues=str(path), shots=shots)
    window.services.apply_settings(settings, teacher_changed=False)


def test_past_dialogues_most_similar_to_the_customer_come_first(window, tmp_path: Path) -> None:
    services = window.services
    turns = [Turn("customer", "在吗"), Turn("agent", "在的亲"), Turn("customer", "我想开个发票")]
    assert services.shots_for(turns) == []  # none configured
    use_past_dialogues(window, past_dialogues(tmp_path / "past.jsonl"), shots=2)
    shots = services.shots_for(turns)
    assert len(shots) == 2 and shots[0] == PAST[1]
    assert services.shots_for([Turn("customer", "改一下收货地址")])[0] == PAST[3]
    use_past_dialogues(window, tmp_path / "past.jsonl", shots=0)
    assert services.shots_for(turns) == []


def test_a_draft_shows_the_model_and_the_teacher_the_past_dialogues(
    qtbot, window, parts: Parts, tmp_path: Path
) -> None:
    use_past_dialogues(window, past_dialogues(tmp_path / "past.jsonl"), shots=2)
    view = open_and_draft(qtbot, window, "我想开个发票")
    prompt = parts.backend.prompts[-1]
    assert f"user\n{PAST[1][0]}<|im_end|>\n<|im_start|>assistant\n{PAST[1][1]}" in prompt
    assert prompt.index(PAST[1][1]) < prompt.index("我想开个发票")  # shown as earlier exchanges
    assert "past dialogues shown: 2" in view.panel.status.text()
    view.ask_cloud()
    qtbot.waitUntil(lambda: bool(parts.teacher.requests))
    sent = [text for _, text in parts.teacher.requests[-1].messages]
    assert PAST[1][0] in sent and PAST[1][1] in sent


def test_unreadable_past_dialogues_are_reported_once_and_drafting_goes_on(
    qtbot, window, parts: Parts, tmp_path: Path
) -> None:
    errors: list[tuple[str, str]] = []
    window.services.error.connect(lambda where, message: errors.append((where, message)))
    use_past_dialogues(window, tmp_path / "missing.jsonl")
    view = open_and_draft(qtbot, window, "我想开个发票")
    assert view.panel.editor.toPlainText() == DEFAULT_REPLY
    assert "past dialogues shown" not in view.panel.status.text()
    assert PAST[1][0] not in parts.backend.prompts[-1]
    view.request_draft()
    qtbot.waitUntil(lambda: view.draft_id is not None and len(parts.backend.prompts) == 2)
    qtbot.waitUntil(lambda: bool(errors))
    assert len(errors) == 1
    assert errors[0][0] == "Past dialogues" and "missing.jsonl" in errors[0][1]
    assert window.banner.isVisible() and "missing.jsonl" in window.banner.label.text()
    # Another setting (a corpus without any agent reply) is tried, and its failure said, anew.
    empty = tmp_path / "empty.jsonl"
    empty.write_text(json.dumps({"query": "在吗"}) + "\n", encoding="utf-8")
    use_past_dialogues(window, empty)
    assert window.services.shots_for([Turn("customer", "我想开个发票")]) == []
    assert len(errors) == 2 and "is empty" in errors[1][1]


def test_regenerate_asks_the_loaded_model_for_a_new_draft(qtbot, window, store: Store) -> None:
    view = open_and_draft(qtbot, window, "在吗？")
    first = view.draft_id
    qtbot.mouseClick(view.panel.regenerate_button, Qt.MouseButton.LeftButton)
    assert (
        not view.model_pending and view.panel.status.text() != "no end model yet: candidates only"
    )
    qtbot.waitUntil(lambda: view.draft_id is not None and view.draft_id != first)
    with store.session() as session:
        assert len(session.scalars(select(Draft)).all()) == 2
