"""Reply candidates in the real window: the shop's past replies and FAQ answers at once, the model's
draft ranked in when done, Alt+1…3, placeholders to fill, the guard's badge, what is recorded, and
the ranker trained in the background after an import.

The knowledge base, the suggester, the ranker and its training are the real ones on the test's
store, with the real USE encoder; the shop's knowledge is a small one written for these tests.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from sqlalchemy import select

from app.evolve.loop import Evolution
from app.store import Draft, Rating, Store, SuggestionCandidate
from tests.ui.conftest import Parts
from tests.ui.test_window import arrive

SOURCES = {"past reply", "FAQ", "model"}

PAST = [
    ("什么时候发货？", "亲，下午四点前付款的订单当天就发出哦。"),
    ("今天能发货吗", "亲，现在下单今天就能发出的呢。"),
    ("几天能到", "亲，江浙沪一般一到两天，其他地区两到四天哦。"),
    ("我的订单到哪了", "亲，您的订单[订单x]已经发出了，请耐心等待哦。"),
    ("可以开发票吗", "亲，可以开电子发票的，下单时填写抬头即可。"),
    ("怎么退货", "亲，在订单页点申请售后就可以退货了。"),
]
FAQ = [
    ("什么时候发货？", "现货商品下午4点前付款当天发出，4点后付款次日发出。"),
    ("发什么快递？", "默认发中通和韵达，需要顺丰可以补运费差价。"),
    ("可以开发票吗？", "可以开电子发票，确认收货后发到您的邮箱。"),
]


PRODUCTS = ["羽绒服", "围巾", "帽子", "手套", "毛衣", "雪地靴", "棉裤", "外套"]
ASKS = [
    ("{0}什么时候发货", "亲，{0}下午四点前付款当天发出哦。"),
    ("{0}有货吗", "亲，{0}现在有现货的，可以放心拍。"),
    ("{0}能便宜点吗", "亲，{0}已经是活动价了，满99元包邮哦。"),
    ("{0}怎么退", "亲，{0}签收七天内可以申请无理由退货。"),
    ("{0}偏大还是偏小", "亲，{0}是标准码，按平时的尺码拍就好。"),
    ("{0}掉色吗", "亲，{0}正常洗涤是不会掉色的，请放心。"),
    ("{0}发什么快递", "亲，{0}默认发中通，需要顺丰可以补差价。"),
    ("{0}能开发票吗", "亲，{0}可以开电子发票，下单时填写抬头。"),
]
HISTORY = [(q.format(p), a.format(p)) for p in PRODUCTS for q, a in ASKS]
"""A history big enough for the ranker to learn from (64 past dialogues)."""


def seed_knowledge(window: Any, past: list[tuple[str, str]] = PAST) -> None:
    kb = window.services.knowledge()
    kb.import_pairs("test-past", [((q,), a) for q, a in past])
    kb.import_pairs("test-faq", [((q,), a) for q, a in FAQ], kind="faq")


def candidates_shown(view: Any) -> list[tuple[str, str, str]]:
    """(source, score, text) of each visible candidate row."""
    return [
        (row.source.text(), row.score.text(), row.full_text)
        for row in view.panel.candidates.visible_rows()
    ]


def test_three_candidates_with_their_sources_alt_2_and_sending_it_is_recorded(
    qtbot, window, parts: Parts, store: Store
) -> None:
    seed_knowledge(window)
    parts.backend.gate = threading.Event()  # the model is still writing throughout
    view = window.open_conversation(arrive(window, "请问什么时候发货？"))
    qtbot.waitUntil(lambda: len(view.panel.candidates.visible_rows()) == 3)
    shown = candidates_shown(view)
    assert {source for source, _, _ in shown} <= SOURCES - {"model"}
    assert all(score.endswith("uncalibrated") for _, score, _ in shown)
    assert [text for _, _, text in shown] == [c.text for c in view.candidates[:3]]
    # The best is the draft, editable while the model's draft is still being written beside it.
    assert view.generating and view.panel.candidates.writing.isVisible()
    assert view.panel.editor.toPlainText() == view.candidates[0].text
    assert not view.panel.editor.isReadOnly() and view.panel.send_button.isEnabled()

    qtbot.keyClick(view.panel.editor, Qt.Key.Key_2, Qt.KeyboardModifier.AltModifier)
    second = view.candidates[1]
    assert view.panel.editor.toPlainText() == second.text
    assert view.panel.candidates.rows[1].styleSheet() != ""  # marked as the one in the editor
    ranking = [c.text for c in view.candidates]
    qtbot.keyClick(view.panel.editor, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    parts.backend.gate.set()
    assert view.panel.editor.toPlainText() == ""
    with store.session() as session:
        recorded = list(
            session.scalars(select(SuggestionCandidate).order_by(SuggestionCandidate.rank))
        )
        assert [r.text for r in recorded] == ranking
        chosen = [r for r in recorded if r.chosen]
        assert len(chosen) == 1 and chosen[0].text == second.text and chosen[0].rank == 1
        assert chosen[0].knowledge_entry_id == second.entry.id
        draft = session.get(Draft, chosen[0].draft_id)
        assert draft is not None and draft.model_profile == f"knowledge:{second.source}"
        rating = session.scalars(select(Rating).where(Rating.draft_id == draft.id)).one()
        assert rating.sent_text == second.text and rating.edited is False


def test_the_models_draft_joins_the_ranking_when_done(qtbot, window, parts: Parts) -> None:
    seed_knowledge(window)
    parts.backend.replies = ["亲，今天下午四点前付款就当天发货的哦。"]
    view = window.open_conversation(arrive(window, "什么时候发货？"))
    qtbot.waitUntil(lambda: any(c.source == "model" for c in view.candidates), timeout=10000)
    assert not view.generating and not view.panel.candidates.writing.isVisible()
    model = next(c for c in view.candidates if c.source == "model")
    assert model.text == "亲，今天下午四点前付款就当天发货的哦。"
    # Nobody touched the editor: it holds the best of the new ranking.
    assert view.panel.editor.toPlainText() == view.candidates[0].text


def test_an_edited_candidate_stays_and_its_edit_is_a_label_for_evolution(
    qtbot, window, parts: Parts, store: Store
) -> None:
    seed_knowledge(window)
    view = window.open_conversation(arrive(window, "可以开发票吗"))
    qtbot.waitUntil(lambda: view.draft_id is not None)
    qtbot.waitUntil(lambda: any(c.source == "model" for c in view.candidates))
    n = next(i for i, c in enumerate(view.candidates[:3]) if c.source != "model") + 1
    view.choose_candidate(n)
    first = view.current
    edited = first.text + "有问题随时找我哦。"
    view.panel.editor.setPlainText(edited)
    qtbot.keyClick(view.panel.editor, Qt.Key.Key_Up, Qt.KeyboardModifier.ControlModifier)
    view.send()
    with store.session() as session:
        rating = session.scalars(select(Rating).order_by(Rating.id.desc())).first()
        assert rating is not None and rating.sent_text == edited and rating.edited
        assert rating.thumbs_up is True
        draft_id = rating.draft_id
    found = {c.draft_id: c for c in Evolution(store).candidates()}
    assert draft_id in found and found[draft_id].edited_text == edited


def test_an_unfilled_placeholder_is_highlighted_for_the_agent(qtbot, window) -> None:
    window.services.knowledge().import_pairs(
        "test-orders",
        [
            (("我的订单到哪了",), "亲，您的订单[订单x]已经发出了，请耐心等待哦。"),
            (("订单到哪里了",), "亲，订单[订单x]已经在路上了哦。"),
            (("我的快递到哪了",), "亲，包裹已经发出，正在派送中哦。"),
        ],
    )
    view = window.open_conversation(arrive(window, "我的订单到哪了"))
    qtbot.waitUntil(lambda: any("[订单x]" in c.text for c in view.candidates[:3]))
    n = next(i for i, c in enumerate(view.candidates[:3]) if "[订单x]" in c.text) + 1
    view.choose_candidate(n)
    editor = view.panel.editor
    assert editor.textCursor().selectedText() == "[订单x]"  # typing replaces it
    assert view.panel.mask_hint.isVisible() and "[订单x]" in view.panel.mask_hint.text()
    start = editor.toPlainText().index("[订单x]")
    block = editor.document().firstBlock()
    marked = [
        f for f in block.layout().formats() if f.format.background().color() == QColor("#ffe066")
    ]
    assert [(f.start, f.length) for f in marked] == [(start, len("[订单x]"))]
    editor.textCursor().insertText("123456789")
    assert not [
        f for f in block.layout().formats() if f.format.background().color() == QColor("#ffe066")
    ]
    assert not view.panel.mask_hint.isVisible()


def test_a_promise_nothing_supports_gets_the_guards_badge(qtbot, window, parts: Parts) -> None:
    parts.backend.replies = ["羽绒服便宜，发货时间在20分钟内。"]
    view = window.open_conversation(
        arrive(window, "你好，我昨天买的羽绒服能便宜点吗？什么时候发货")
    )
    qtbot.waitUntil(lambda: bool(view.candidates))
    badge = view.panel.guard_badge
    assert badge.isVisible() and "Unsupported promise (time): 20分钟内" in badge.text()
    assert view.panel.candidates.rows[0].guard.isVisible()
    assert view.panel.candidates.rows[0].source.text() == "model"
    view.panel.editor.setPlainText("亲，发货时间以页面为准哦。")  # the agent takes it out
    qtbot.waitUntil(lambda: not badge.isVisible())


def test_after_an_import_the_ranker_trains_in_the_background_and_scores_are_calibrated(
    qtbot, window, parts: Parts, store: Store
) -> None:
    seed_knowledge(window, HISTORY)
    view = window.open_conversation(arrive(window, "外套什么时候发货"))
    qtbot.waitUntil(lambda: len(view.panel.candidates.visible_rows()) == 3)
    assert "uncalibrated" in view.panel.candidates.rows[0].score.text()

    qtbot.waitUntil(lambda: window.services._scorer is not None)  # the draft was scored
    stages: list[tuple[str, int, int]] = []
    window.services.ranker_progress.connect(lambda *event: stages.append(event))
    window.services.knowledge_imported()  # what the settings' Shop knowledge page calls
    assert window.ranker_bar.isVisible() and window.ranker_status.text() != ""
    view.panel.editor.setPlainText("亲，在的")  # the window stays usable meanwhile
    with qtbot.waitSignal(window.services.ranker_finished, timeout=120000) as finished:
        pass
    assert finished.args[0] != ""
    assert not window.ranker_bar.isVisible()
    assert "trained and active" in window.statusBar().currentMessage()
    # The in-domain matcher of the ranker's second stage trained first, and is active.
    assert ("matcher", 6, 6) in stages
    with store.session() as session:
        assert store.active_matcher(session) is not None
    # Drafts are scored with it from now on: the scorer is made again at its next use.
    qtbot.waitUntil(lambda: window.services._scorer is None)
    window.services.ranker_progress.emit("matcher", 2, 6)  # how the matcher's passes show
    assert "pass 2 of 6" in window.ranker_status.text()
    window.services.ranker_finished.emit("")

    view.add_customer_message("帽子有货吗")
    qtbot.waitUntil(lambda: len(view.panel.candidates.visible_rows()) == 3)
    assert view.panel.candidates.rows[0].score.text().replace(".", "").isdigit()


def test_a_ranker_that_no_longer_loads_is_trained_again_when_the_window_opens(
    qtbot, window, store: Store
) -> None:
    import json

    from app.suggest.ranker import Ranker, active_ranker, ranker_is_stale, register_ranker

    seed_knowledge(window, HISTORY)
    old = store.path.parent / "rankers" / "ranker-of-an-older-version"
    file = register_ranker(store, replace(Ranker.untrained(), version=old.name), old)
    raw = json.loads(file.read_text(encoding="utf-8"))
    raw["features"] = raw["features"][:-1]  # another version's features
    file.write_text(json.dumps(raw), encoding="utf-8")
    assert ranker_is_stale(store)
    with qtbot.waitSignal(window.services.ranker_finished, timeout=120000) as finished:
        window.services.warm_suggestions()  # what the window does when it opens
    assert finished.args[0] not in ("", old.name)
    assert not ranker_is_stale(store) and active_ranker(store).calibrated


def test_an_import_in_the_settings_starts_the_rankers_training(
    qtbot, window, monkeypatch, tmp_path
) -> None:
    from PySide6.QtWidgets import QDialog

    from app.ui.settings_dialog import SettingsDialog

    faq = tmp_path / "faq.md"
    faq.write_text("## 包邮吗？\n满99元包邮。\n\n## 发什么快递？\n默认中通。\n", encoding="utf-8")

    def import_then_close(dialog: SettingsDialog) -> int:
        page = dialog.knowledge_page
        assert page is not None
        qtbot.waitUntil(lambda: not page.busy)
        page.import_file(str(faq))
        qtbot.waitUntil(lambda: not page.busy and page.sources != [])
        return int(QDialog.DialogCode.Rejected)

    monkeypatch.setattr(SettingsDialog, "exec", import_then_close)
    with qtbot.waitSignal(window.services.ranker_finished, timeout=60000) as finished:
        window.open_settings()
    # An FAQ holds no chat history to learn from: the window says so, scores stay uncalibrated.
    assert finished.args == [""]
    assert "Too little chat history" in window.statusBar().currentMessage()
    assert [s.name for s in window.services.knowledge().sources()] == ["faq"]


def test_results_for_a_closed_chat_are_dropped(qtbot, window, parts: Parts) -> None:
    seed_knowledge(window)
    parts.backend.gate = threading.Event()
    view = window.open_conversation(arrive(window, "什么时候发货？"))
    qtbot.waitUntil(lambda: view.generating)
    window.close_view(view, finish=False)  # candidates and the draft are still on their way
    parts.backend.gate.set()
    qtbot.waitUntil(lambda: not window.services.model.drafting)
    qtbot.wait(300)  # the draft's save, its ranking and its score arrive for a deleted tab
    assert window.tabs.count() == 0


def test_the_candidates_speak_chinese(qtbot, context, parts: Parts, answer_quit, qapp) -> None:
    from app.ui.i18n import install_translator
    from app.ui.main_window import MainWindow

    assert install_translator(qapp, "zh_CN") == "zh_CN"
    try:
        w = MainWindow(context)
        qtbot.addWidget(w)
        qtbot.waitUntil(lambda: w.model_ready)
        seed_knowledge(w)
        parts.backend.replies = ["亲，20分钟内发货。"]
        view = w.open_conversation(arrive(w, "什么时候发货？"))
        qtbot.waitUntil(lambda: any(c.source == "model" for c in view.candidates), timeout=10000)
        labels = {row.source.text() for row in view.panel.candidates.visible_rows()}
        assert labels and labels <= {"历史回复", "常见问题", "模型"}
        assert view.panel.candidates.rows[0].score.text().endswith("未校准")
        model = next(i for i, c in enumerate(view.candidates) if c.source == "model")
        view.candidates.insert(0, view.candidates.pop(model))  # as if it ranked first
        view.choose_candidate(1)
        assert view.panel.guard_badge.text() == "未经支持的承诺（时间）：20分钟内发货"
        w.close()
    finally:
        install_translator(qapp, "en")


def test_candidates_come_without_the_end_model_and_can_be_sent(
    qtbot, context, parts: Parts, answer_quit, store: Store
) -> None:
    from app.engine.weights import ModelError
    from app.ui.main_window import MainWindow

    parts.load_error = ModelError("Unknown model 'x'")
    w = MainWindow(context)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: w.banner.isVisible())
    seed_knowledge(w)
    view = w.open_conversation(arrive(w, "什么时候发货？"))
    qtbot.waitUntil(lambda: len(view.panel.candidates.visible_rows()) == 3)
    assert view.panel.editor.toPlainText() == view.candidates[0].text
    assert view.panel.status.text() == "no end model yet: candidates only"
    best = view.candidates[0]
    view.send()
    with store.session() as session:
        chosen = session.scalars(
            select(SuggestionCandidate).where(SuggestionCandidate.chosen.is_(True))
        ).one()
        assert chosen.rank == 0 and chosen.text == best.text
    w.close()


def test_the_models_draft_follows_when_it_is_loaded_and_keeps_the_agents_pick(
    qtbot, context, parts: Parts, answer_quit
) -> None:
    from app.engine.end_model import EndModel
    from app.ui.main_window import MainWindow

    loading = threading.Event()

    def slow_loader(settings: Any, progress: Any) -> EndModel:
        loading.wait(20)  # e.g. the first start, assembling the model
        return EndModel(parts.backend, "你是店小二。", settings.generation_config())

    parts.loader = slow_loader
    w = MainWindow(context)
    qtbot.addWidget(w)
    w.show()
    seed_knowledge(w)
    view = w.open_conversation(arrive(w, "什么时候发货？"))
    qtbot.waitUntil(lambda: len(view.panel.candidates.visible_rows()) == 3)
    assert not w.model_ready and view.model_pending
    view.choose_candidate(2)
    picked = view.current
    loading.set()
    qtbot.waitUntil(lambda: any(c.source == "model" for c in view.candidates), timeout=10000)
    assert view.draft_id is not None or view.saving
    assert view.current is not None and view.current.text == picked.text
    assert view.panel.editor.toPlainText() == picked.text
    w.close()
