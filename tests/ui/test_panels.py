"""Settings (keyring only for keys), the evolution panel (a child process per the contract),
closing during work, restoring open chats, replay, first-start provisioning."""

from __future__ import annotations

import json
import sys
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any

import keyring
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog
from sqlalchemy import select

from app.cloud import providers
from app.store import AdapterVersion, Store
from app.ui import settings as ui_settings
from app.ui.main_window import MainWindow
from app.ui.services import AppContext
from app.ui.settings_dialog import SettingsDialog
from tests.ui.conftest import FIXTURES, MemoryKeyring, Parts
from tests.ui.test_window import arrive, open_and_draft


def fake_evolve(mode: str, *extra: str) -> list[str]:
    return [sys.executable, str(FIXTURES / "fake_evolve.py"), mode, *extra]


# --- settings ---------------------------------------------------------------------------------


def test_settings_dialog_saves_settings_teacher_and_key_only_in_the_keyring(
    qtbot, window, monkeypatch, memory_keyring: MemoryKeyring, data_home: Path
) -> None:
    def fill_and_save(dialog: SettingsDialog) -> int:
        dialog.scoring.alpha.setValue(0.6)
        dialog.scoring.threshold.setValue(0.35)
        dialog.end_model.temperature.setValue(0.3)
        dialog.workspace.phrases.setPlainText("您好\n再见")
        dialog.teacher.provider.setCurrentText("openai-compatible")
        dialog.teacher.base_url.setText("https://api.example.com/v1")
        dialog.teacher.teacher_model.setText("deepseek-chat")
        dialog.teacher.api_key.setText("sk-secret-123")
        dialog.workspace.past_dialogues.setText(" /shop/past.jsonl ")
        dialog.workspace.shots.setValue(2)
        dialog.accept()
        return int(QDialog.DialogCode.Accepted)

    monkeypatch.setattr(SettingsDialog, "exec", fill_and_save)
    window.open_settings()
    saved = ui_settings.load_settings()
    assert (saved.alpha, saved.low_score_threshold, saved.temperature) == (0.6, 0.35, 0.3)
    assert saved.quick_phrases == ["您好", "再见"]
    assert (saved.past_dialogues, saved.shots) == ("/shop/past.jsonl", 2)
    assert window.services.settings.alpha == 0.6
    teacher = providers.load_config()
    assert (teacher.provider, teacher.base_url, teacher.model) == (
        "openai-compatible",
        "https://api.example.com/v1",
        "deepseek-chat",
    )
    # Kept for the host it was entered with, not for the provider wherever it points.
    assert memory_keyring.store == {
        ("xiaoer", "openai-compatible@api.example.com"): "sk-secret-123"
    }
    for path in data_home.rglob("*"):
        if path.is_file():
            assert b"sk-secret-123" not in path.read_bytes(), path
    # Generation settings reach the running model without a reload.
    qtbot.waitUntil(
        lambda: (
            window.services.model.model is not None
            and window.services.model.model.generation.temperature == 0.3
        )
    )


def test_invalid_settings_are_refused_with_the_reason(qtbot, window) -> None:
    dialog = SettingsDialog(window.services.settings, parent=window)
    qtbot.addWidget(dialog)
    dialog.teacher.provider.setCurrentText("openai-compatible")  # needs a base URL and a model
    dialog.accept()
    assert dialog.result() != QDialog.DialogCode.Accepted
    assert "base_url" in dialog.error_label.text()


def test_no_secure_keyring_is_a_visible_warning_and_nothing_is_stored(qtbot, window) -> None:
    from keyring.backends import fail

    keyring.set_keyring(fail.Keyring())
    dialog = SettingsDialog(window.services.settings, parent=window)
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.tabs.setCurrentIndex(1)
    dialog.teacher.provider.setCurrentText("gemini")
    assert dialog.teacher.keyring_warning.isVisible()
    assert "cannot be saved" in dialog.teacher.keyring_warning.text()
    dialog.teacher.api_key.setText("AIza-secret")
    assert dialog.teacher.save_key() is False
    assert dialog.teacher.api_key.text() == ""  # not kept in the widget either
    assert "cannot be saved" in dialog.teacher.key_status.text()


def test_redaction_preview(qtbot, window) -> None:
    dialog = SettingsDialog(window.services.settings, parent=window)
    qtbot.addWidget(dialog)
    dialog.privacy.redact_input.setPlainText("我的电话是13812345678，能改地址吗")
    # redacted on the preview's worker (tests/ui/test_redaction_preview.py)
    qtbot.waitUntil(
        lambda: dialog.privacy.redact_output.toPlainText() == "我的电话是[PHONE_1]，能改地址吗"
    )


def test_settings_file_round_trip_and_validation(data_home: Path) -> None:
    s = ui_settings.UiSettings(alpha=0.5, quick_phrases=["a"], evolve_policy="after_labels")
    ui_settings.save_settings(s)
    assert ui_settings.load_settings() == s
    with pytest.raises(ui_settings.SettingsError, match="alpha"):
        ui_settings.UiSettings(alpha=1.5)
    with pytest.raises(ui_settings.SettingsError, match="top_p"):
        ui_settings.UiSettings(top_p=0.0)
    for shots in (-1, 9):
        with pytest.raises(ui_settings.SettingsError, match="shots"):
            ui_settings.UiSettings(shots=shots)
    ui_settings.settings_path().write_text("{not json", encoding="utf-8")
    with pytest.raises(ui_settings.SettingsError, match="unreadable"):
        ui_settings.load_settings()


def test_settings_saved_before_past_dialogues_still_load(data_home: Path) -> None:
    old = asdict(ui_settings.UiSettings(alpha=0.5))
    del old["past_dialogues"], old["shots"]
    ui_settings.settings_path().write_text(json.dumps(old), encoding="utf-8")
    loaded = ui_settings.load_settings()
    assert (loaded.alpha, loaded.past_dialogues, loaded.shots) == (0.5, "", 4)


# --- evolution --------------------------------------------------------------------------------


def test_evolve_now_shows_progress_gate_and_hot_swaps_the_promoted_adapter(
    qtbot, context: AppContext, parts: Parts, answer_quit, store: Store, tmp_path: Path
) -> None:
    adapter_dir = tmp_path / "v-test-1"
    adapter_dir.mkdir()
    adapter = adapter_dir / "adapter.gguf"  # where app.evolve serves a LoRA version from
    adapter.write_bytes(b"adapter")
    context.evolve_command = lambda: fake_evolve("promote", str(adapter_dir))
    w = MainWindow(context)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: w.model_ready)
    before = open_and_draft(qtbot, w, "在吗", "c1")
    assert not before.panel.editor.toPlainText().startswith("[v-test-1]")

    qtbot.keyClick(
        w, Qt.Key.Key_E, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier
    )
    panel = w.evolution
    assert w.pages.currentWidget() is panel
    with qtbot.waitSignal(panel.run_finished, timeout=20000) as finished:
        qtbot.mouseClick(panel.evolve_button, Qt.MouseButton.LeftButton)
    assert finished.args == [True]
    assert panel.progress.value() == panel.progress.maximum()
    assert panel.loss_chart.values() == [2.0, 1.0, 2.0 / 3, 0.5, 0.4]
    assert "v-test-1" in panel.gate_label.text() and "promoted" in panel.gate_label.text()
    assert panel.table.item(0, 0).text() == "v-test-1" and panel.table.item(0, 1).text() == "active"
    qtbot.waitUntil(lambda: "v-test-1" in w.model_status.text())
    assert parts.backend.adapters == {"v-test-1": adapter}

    view = open_and_draft(qtbot, w, "还在吗", "c2")
    assert view.panel.editor.toPlainText().startswith("[v-test-1]")
    with store.session() as session:
        drafts = session.scalars(select(AdapterVersion)).all()
        assert [a.status for a in drafts] == ["active"]
    w.close()


def test_a_rejected_candidate_changes_nothing(qtbot, window, parts: Parts) -> None:
    window.services.context.evolve_command = lambda: fake_evolve("reject")
    with qtbot.waitSignal(window.evolution.run_finished, timeout=20000):
        window.evolution.evolve_now()
    assert "not promoted" in window.evolution.gate_label.text()
    assert "worse than the active adapter" in window.evolution.gate_label.text()
    assert parts.backend.adapters == {}


def test_an_evolution_error_is_shown(qtbot, window) -> None:
    window.services.context.evolve_command = lambda: fake_evolve("error")
    with qtbot.waitSignal(window.evolution.run_finished, timeout=20000) as finished:
        window.evolution.evolve_now()
    assert finished.args == [False]
    assert window.banner.isVisible() and "out of memory" in window.banner.label.text()


def test_closing_during_training_asks_then_stops_it(
    qtbot, context: AppContext, answer_quit: list[str]
) -> None:
    context.evolve_command = lambda: fake_evolve("hang")
    w = MainWindow(context)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: w.model_ready)
    w.evolution.evolve_now()
    qtbot.waitUntil(lambda: w.evolution.progress.value() > 1)
    assert "ETA" in w.evolution.eta_label.text()
    run = w.evolution.run
    assert w.close()
    assert answer_quit and "training is running" in answer_quit[0]
    assert not run.running
    assert run.process.exitCode() == 0  # SIGTERM: the child cancelled cleanly


def test_closing_can_be_refused_and_state_is_restored_next_start(
    qtbot, context: AppContext, parts: Parts, monkeypatch, answer_quit
) -> None:
    from PySide6.QtWidgets import QMessageBox

    parts.backend.gate = threading.Event()
    w = MainWindow(context)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: w.model_ready)
    a = arrive(w, "第一位", "a")
    b = arrive(w, "第二位", "b")
    view_a = w.open_conversation(a)
    w.open_conversation(b)  # its draft waits in the model worker's queue behind a's
    qtbot.waitUntil(lambda: view_a.generating and view_a.panel.editor.toPlainText() != "")
    monkeypatch.setattr(QMessageBox, "question", lambda *a: QMessageBox.StandardButton.No)
    assert not w.close()
    assert w.isVisible()
    monkeypatch.setattr(QMessageBox, "question", lambda *a: QMessageBox.StandardButton.Yes)
    parts.backend.gate.set()
    assert w.close()

    state = ui_settings.load_state()
    assert state.open_conversations == [a, b] and state.current_conversation == b
    again = MainWindow(context, state)
    qtbot.addWidget(again)
    assert [again.tabs.widget(i).conversation_id for i in range(again.tabs.count())] == [a, b]
    assert again.current_view().conversation_id == b
    again._closing = True
    again.close()


# --- replay and first start -------------------------------------------------------------------


def write_jddc2019(path: Path) -> Path:
    rows = [
        ("s1", "USERID_1", "0", "你好"),
        ("s1", "USERID_1", "1", "您好，有什么可以帮您？"),
        ("s1", "USERID_1", "0", "我的快递到哪了"),
        ("s1", "USERID_1", "1", "亲，正在派送中"),
        ("s2", "USERID_2", "0", "能开发票吗"),
        ("s2", "USERID_2", "1", "可以的"),
    ]
    path.write_text(
        "".join(f"{s}\t{u}\t{w}\t0\t0\tnan\t{t}\n" for s, u, w, t in rows), encoding="utf-8"
    )
    return path


def test_replay_plays_real_conversations_as_arriving_customers(
    qtbot, window, tmp_path: Path
) -> None:
    channel = window.start_replay(write_jddc2019(tmp_path / "chat.txt"), interval_s=0.05)
    channel.reply_delay_s = 0.05
    qtbot.waitUntil(lambda: len(window.queue.summaries) == 2)
    by_customer = {s.customer: s for s in window.queue.summaries}
    first = by_customer["USERID_1"]
    assert first.last_text == "你好" and first.channel == "replay"
    view = window.open_conversation(first.id)
    assert "您好，有什么可以帮您？" in view.panel.reference.text()
    qtbot.waitUntil(lambda: view.draft_id is not None)
    view.send()
    qtbot.waitUntil(lambda: "我的快递到哪了" in view.transcript.toPlainText())
    assert "正在派送中" in view.panel.reference.text()


def test_first_start_shows_a_progress_dialog_while_the_model_is_assembled(
    qtbot, context: AppContext, parts: Parts, answer_quit
) -> None:
    from app.engine.end_model import EndModel

    release = threading.Event()

    def provisioning_loader(settings: Any, progress: Any) -> EndModel:
        for done in (0, 100_000_000, 250_000_000):
            progress(done, 491_400_064)
        release.wait(10)
        progress(491_400_064, 491_400_064)
        return EndModel(parts.backend, "系统")

    parts.loader = provisioning_loader
    w = MainWindow(context)
    qtbot.addWidget(w)
    w.show()
    # The three progress reports arrive as queued signals: wait for the last, not the first.
    qtbot.waitUntil(
        lambda: w.provision_dialog is not None and "250 of 491 MB" in w.provision_dialog.labelText()
    )
    assert w.provision_dialog.value() > 0
    # The window is not frozen meanwhile: a customer can arrive and be read.
    conversation_id = arrive(w, "有人吗")
    assert w.queue.visible_ids() == [conversation_id]
    release.set()
    qtbot.waitUntil(lambda: w.model_ready)
    assert w.provision_dialog is None
    w.close()
