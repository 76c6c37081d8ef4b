"""The settings' *Shop knowledge* page offscreen, over a real knowledge base (real store, real USE
encoder): import through the file dialog and the demo button on the page's worker, the list with
counts, removal, a bad file's error, and a dialog that waits for a running import."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtWidgets import QFileDialog, QMessageBox

from app.knowledge import DEMO_SOURCE, KnowledgeBase
from app.store import Store
from app.ui.settings import UiSettings
from app.ui.settings_dialog import SettingsDialog

KNOWLEDGE = Path(__file__).parents[1] / "fixtures" / "knowledge"


@pytest.fixture
def dialog(qtbot: Any, store: Store) -> tuple[SettingsDialog, list[str]]:
    kb = KnowledgeBase(store)
    imported: list[str] = []
    dialog = SettingsDialog(
        UiSettings(),
        parent=None,
        knowledge=lambda: kb,
        knowledge_imported=lambda: imported.append("x"),
    )
    qtbot.addWidget(dialog)
    assert dialog.knowledge_page is not None
    qtbot.waitUntil(lambda: not dialog.knowledge_page.busy)
    return dialog, imported


def rows(dialog: SettingsDialog) -> list[list[str]]:
    table = dialog.knowledge_page.table  # type: ignore[union-attr]
    return [
        [table.item(r, c).text() for c in range(table.columnCount())]
        for r in range(table.rowCount())
    ]


def test_the_page_imports_lists_and_removes_sources(
    qtbot: Any, dialog: tuple[SettingsDialog, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    dlg, imported = dialog
    page = dlg.knowledge_page
    assert page is not None
    titles = [dlg.tabs.tabText(i) for i in range(dlg.tabs.count())]
    assert "Shop knowledge" in titles
    assert rows(dlg) == []

    chosen = str(KNOWLEDGE / "shop_faq.md")
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (chosen, ""))
    page.import_button.click()
    assert not page.import_button.isEnabled()  # until the import is done
    qtbot.waitUntil(lambda: len(rows(dlg)) == 1, timeout=60_000)
    assert rows(dlg) == [["shop_faq", "FAQ", "faq", "4"]]
    assert "4 added" in page.status.text() and "1 unreadable lines skipped" in page.status.text()
    assert imported == ["x"]
    assert page.import_button.isEnabled() and not page.progress.isVisible()

    page.demo_button.click()
    qtbot.waitUntil(lambda: len(rows(dlg)) == 2, timeout=60_000)
    assert rows(dlg)[0][:3] == [DEMO_SOURCE, "FAQ", "faq"] and int(rows(dlg)[0][3]) >= 20
    assert imported == ["x", "x"]

    page.table.selectRow(1)
    monkeypatch.setattr(QMessageBox, "question", lambda *a: QMessageBox.StandardButton.No)
    page.remove_button.click()
    assert len(rows(dlg)) == 2
    monkeypatch.setattr(QMessageBox, "question", lambda *a: QMessageBox.StandardButton.Yes)
    page.remove_button.click()
    qtbot.waitUntil(lambda: len(rows(dlg)) == 1, timeout=30_000)
    assert rows(dlg)[0][0] == DEMO_SOURCE
    assert "Removed shop_faq (4 entries)" in page.status.text()


def test_a_bad_file_says_why_and_a_chosen_format_and_name_are_used(
    qtbot: Any,
    dialog: tuple[SettingsDialog, list[str]],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    dlg, imported = dialog
    page = dlg.knowledge_page
    assert page is not None
    bad = tmp_path / "faq.md"
    bad.write_bytes(b"\x00\x01\x02binary")
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(bad), ""))
    page.import_button.click()
    qtbot.waitUntil(lambda: page.status.text().startswith("Failed"), timeout=30_000)
    assert "binary file" in page.status.text() and imported == []

    page.format.setCurrentIndex(page.format.findData("jsonl"))
    page.name.setText("old chats")
    page.import_file(str(KNOWLEDGE / "dialogues.jsonl"))
    qtbot.waitUntil(lambda: len(rows(dlg)) == 1, timeout=60_000)
    assert rows(dlg) == [["old chats", "Past dialogues", "jsonl", "3"]]


def test_the_dialog_waits_for_a_running_import(
    qtbot: Any, dialog: tuple[SettingsDialog, list[str]]
) -> None:
    dlg, _ = dialog
    page = dlg.knowledge_page
    assert page is not None
    dlg.show()
    release = threading.Event()
    page.worker.submit(release.wait)  # stands for a long import on the page's worker
    assert page.busy
    dlg.reject()
    assert dlg.isVisible() and "Wait until the knowledge import" in dlg.error_label.text()
    dlg.accept()
    assert dlg.isVisible() and dlg.result_settings is None
    release.set()
    qtbot.waitUntil(lambda: not page.busy)
    dlg.reject()
    assert not dlg.isVisible()


def test_without_a_knowledge_base_there_is_no_page(qtbot: Any) -> None:
    dlg = SettingsDialog(UiSettings())
    qtbot.addWidget(dlg)
    assert dlg.knowledge_page is None
