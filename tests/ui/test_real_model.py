"""The window with the real 0.5B end model and the real scorers (slow, kept short), and the whole
loop end to end: message → streamed draft → 👎 → teacher label → Evolve now → gate → promotion →
the next draft from the new adapter (the real local teacher and the real evolution process)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PySide6.QtCore import Qt
from sqlalchemy import select

from app.engine.gguf_lora import base_tensor_shapes, write_lora_gguf
from app.evolve.promotion import sha256_of
from app.store import AdapterVersion, Draft, Score, Store, TeacherReply
from app.ui.channels import Incoming
from app.ui.main_window import MainWindow
from app.ui.services import AppContext
from app.ui.settings import UiSettings

pytestmark = pytest.mark.slow


def real_window(qtbot: Any, store: Store, settings: UiSettings) -> MainWindow:
    w = MainWindow(AppContext(store, settings))
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: w.model_ready or w.banner.isVisible(), timeout=300_000)
    assert w.model_ready, w.banner.label.text()
    return w


def draft_for(qtbot: Any, w: MainWindow, text: str, customer: str) -> Any:
    conversation_id = w.receive(Incoming("manual", customer, customer, text))
    assert conversation_id is not None
    view = w.open_conversation(conversation_id)
    assert view is not None
    qtbot.waitUntil(lambda: view.draft_id is not None, timeout=300_000)
    return view


def test_real_model_streams_a_scored_chinese_draft(
    qtbot, embedded_model_path: Path, store: Store, answer_quit
) -> None:
    w = real_window(qtbot, store, UiSettings(max_tokens=48, label_weak_drafts=False))
    updates: list[str] = []
    w.services.model.draft_text.connect(lambda job, text: updates.append(text))
    view = draft_for(qtbot, w, "这件衣服今天下单什么时候发货？", "real-1")
    text = view.panel.editor.toPlainText()
    assert any("\u4e00" <= ch <= "\u9fff" for ch in text)
    assert len(updates) >= 2 and updates[-1].strip() == text  # it streamed in
    qtbot.waitUntil(lambda: view.last_score is not None, timeout=300_000)
    with store.session() as session:
        score = session.scalars(select(Score)).one()
        assert score.mode == "match_only" and 0.0 <= score.final <= 1.0
        assert score.matching_scorer_version  # the real matcher recorded its version
    w.close()


def test_promoting_an_adapter_hot_swaps_it_into_the_running_model(
    qtbot, embedded_model_path: Path, store: Store, tmp_path: Path, answer_quit
) -> None:
    arch, shapes = base_tensor_shapes(embedded_model_path)
    rng = np.random.default_rng(0)
    pairs = {
        name: (
            rng.normal(0, 0.5, (4, n_in)).astype(np.float32),
            rng.normal(0, 0.5, (n_out, 4)).astype(np.float32),
        )
        for name, (n_out, n_in) in shapes.items()
        if name.endswith("attn_q.weight")
    }
    version_dir = tmp_path / "noise-1"
    version_dir.mkdir()
    write_lora_gguf(version_dir / "adapter.gguf", arch, 8.0, pairs)
    with store.session() as session:
        session.add(
            AdapterVersion(
                version="noise-1",
                method="lora",
                base_model="qwen2.5-0.5b",
                path=str(version_dir),
                # as an export records it: a version without its hash is never served
                metrics={"sha256": sha256_of(version_dir / "adapter.gguf")},
            )
        )
    w = real_window(qtbot, store, UiSettings(max_tokens=24, temperature=0.0))
    before = draft_for(qtbot, w, "可以选择快递吗？", "hot-1").panel.editor.toPlainText()

    w.toggle_evolution()
    panel = w.evolution
    assert panel.table.item(0, 0).text() == "noise-1"
    panel.table.selectRow(0)
    qtbot.mouseClick(panel.promote_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "noise-1" in w.model_status.text(), timeout=60_000)
    after_view = draft_for(qtbot, w, "可以选择快递吗？", "hot-2")
    assert after_view.panel.editor.toPlainText() != before
    with store.session() as session:
        drafts = session.scalars(select(Draft).order_by(Draft.id)).all()
        noise = store.get_adapter(session, "noise-1")
        assert noise is not None and noise.status == "active"
        assert [d.adapter_version_id for d in drafts] == [None, noise.id]

    qtbot.mouseClick(panel.base_button, Qt.MouseButton.LeftButton)  # back to the base model
    qtbot.waitUntil(lambda: "adapter" not in w.model_status.text(), timeout=60_000)
    again = draft_for(qtbot, w, "可以选择快递吗？", "hot-3").panel.editor.toPlainText()
    assert again == before
    w.close()


@pytest.fixture
def local_teacher(models_dir: Path, data_home: Path) -> Any:
    """The real 1.5B local teacher served on 127.0.0.1, configured as the window's teacher."""
    from app.cloud import providers
    from app.engine import weights
    from app.local_server.teacher_server import TeacherServer

    profile = weights.PROFILES["qwen2.5-1.5b"]
    path = weights.provision(profile)
    with TeacherServer(path, n_ctx=2048, n_threads=1, chat_format=profile.chat_format) as server:
        server.start(timeout=300)
        providers.save_config(
            providers.TeacherConfig(provider="local", base_url=server.base_url, timeout=300)
        )
        yield server


def test_the_whole_loop_end_to_end(
    qtbot, embedded_model_path: Path, local_teacher: Any, store: Store, answer_quit
) -> None:
    from app.evolve import EvolutionSettings

    # A short round: a few training steps, one probe; the gate's own judgement is tested in the
    # evolution engine's tests, so here it lets any candidate through and the UI's part is checked;
    # the 1.5B teacher's label is learned however short it comes out.
    EvolutionSettings(
        steps=3,
        holdback=0,
        replay=0,
        margin=-1.0,
        tolerance=1.0,
        min_label_chars=0,
        probes=["可以选择快递吗？"],
    ).save()
    settings = UiSettings(max_tokens=32, temperature=0.0, label_weak_drafts=True)
    w = real_window(qtbot, store, settings)
    streamed: list[str] = []
    w.services.model.draft_text.connect(lambda job, text: streamed.append(text))

    # customer message → streamed draft
    view = draft_for(qtbot, w, "这件衣服今天下单什么时候发货？", "loop-1")
    assert len(streamed) >= 2
    first_draft = view.draft_id
    # 👎 → the teacher's label, through the firewall, shown beside the draft
    qtbot.keyClick(view.panel.editor, Qt.Key.Key_Down, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: view.cloud_reply is not None, timeout=600_000)
    with store.session() as session:
        label = session.scalars(select(TeacherReply)).one()
        assert label.draft_id == first_draft and label.provider == "local"

    # Evolve now → gate → promotion, read from the child process's JSON lines
    w.toggle_evolution()
    panel = w.evolution
    with qtbot.waitSignal(panel.run_finished, timeout=1_800_000) as finished:
        qtbot.mouseClick(panel.evolve_button, Qt.MouseButton.LeftButton)
    events = [e["event"] for e in panel.run.events]
    assert finished.args == [True], (events, w.banner.label.text())
    assert "step" in events and "gate" in events
    assert panel.last_gate is not None and panel.last_gate["promoted"] is True
    version = panel.last_gate["version"]
    assert panel.table.item(0, 0).text() == version and panel.table.item(0, 1).text() == "active"
    qtbot.waitUntil(lambda: version in w.model_status.text(), timeout=120_000)

    # the next draft comes from the new adapter
    w.toggle_evolution()
    view.request_draft()
    qtbot.waitUntil(lambda: view.draft_id not in (None, first_draft), timeout=300_000)
    with store.session() as session:
        draft = session.get(Draft, view.draft_id)
        active = store.active_adapter(session)
        assert active is not None and active.version == version
        assert draft is not None and draft.adapter_version_id == active.id
    w.close()
