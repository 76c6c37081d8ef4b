"""The settings dialog's privacy preview is redacted on a worker: typing never waits for the
firewall (its first call loads dictionaries for ~0.5 s), the latest text wins and a result for
text changed since is never shown.

The redactor is the real ``redact_for_cloud``; the tests only hold it at a gate (a
``threading.Event``) so the UI can be looked at while a redaction is running.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtGui import QTextCursor

from app.cloud.redact import Redaction, redact_for_cloud
from app.ui import settings_pages
from app.ui.settings import UiSettings
from app.ui.settings_dialog import SettingsDialog


class HeldRedactor:
    """The real redactor, run only once ``gate`` is set; records the texts and threads."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.texts: list[str] = []
        self.threads: list[threading.Thread] = []

    def __call__(self, text: str) -> Redaction:
        self.texts.append(text)
        self.threads.append(threading.current_thread())
        if threading.current_thread() is threading.main_thread():
            raise AssertionError("the preview was redacted on the UI thread")
        if not self.gate.wait(10):
            raise TimeoutError("the test never opened the gate")
        return redact_for_cloud(text)


@pytest.fixture
def held(monkeypatch: pytest.MonkeyPatch) -> Iterator[HeldRedactor]:
    redactor = HeldRedactor()
    monkeypatch.setattr(settings_pages, "redact_for_cloud", redactor)
    yield redactor
    redactor.gate.set()  # never leave the worker thread waiting


@pytest.fixture
def dialog(qtbot: Any) -> SettingsDialog:
    dlg = SettingsDialog(UiSettings())
    qtbot.addWidget(dlg)
    dlg.show()
    return dlg


def test_typing_goes_on_while_the_preview_is_redacted_and_the_latest_text_wins(
    qtbot: Any, dialog: SettingsDialog, held: HeldRedactor
) -> None:
    first = "我的电话是13812345678"
    last = "收件人：刘芳 13912345678，地址改成江苏省苏州市姑苏区人民路100号2单元301"
    stale, expected = redact_for_cloud(first).redacted, redact_for_cloud(last).redacted
    assert stale != expected and "13912345678" not in expected
    shown: list[str] = []
    dialog.privacy.redact_output.textChanged.connect(
        lambda: shown.append(dialog.privacy.redact_output.toPlainText())
    )

    dialog.privacy.redact_input.setPlainText(first)
    qtbot.waitUntil(lambda: held.texts == [first])  # the worker has it, held at the gate

    # Meanwhile the UI thread handles keystrokes and timers.
    dialog.privacy.redact_input.moveCursor(QTextCursor.MoveOperation.End)
    qtbot.keyClicks(dialog.privacy.redact_input, " tel 1")
    ticked: list[bool] = []
    QTimer.singleShot(0, lambda: ticked.append(True))
    qtbot.waitUntil(lambda: ticked == [True])
    assert dialog.privacy.redact_input.toPlainText() == first + " tel 1"
    assert dialog.privacy.redact_output.toPlainText() == ""
    dialog.privacy.redact_input.setPlainText(last)
    assert held.texts == [first]  # the edits wait as one request, not one per keystroke

    held.gate.set()
    qtbot.waitUntil(lambda: dialog.privacy.redact_output.toPlainText() == expected)
    assert held.texts == [first, last]  # the intermediate texts were never redacted
    assert stale not in shown  # the first result came back after the text changed: dropped
    assert all(thread is not threading.main_thread() for thread in held.threads)


def test_the_preview_follows_each_edit_once_the_firewall_is_free(
    qtbot: Any, dialog: SettingsDialog, held: HeldRedactor
) -> None:
    held.gate.set()
    for text in ("电话13812345678", "QQ2345678901 加我", ""):
        dialog.privacy.redact_input.setPlainText(text)
        expected = redact_for_cloud(text).redacted
        qtbot.waitUntil(
            lambda expected=expected: dialog.privacy.redact_output.toPlainText() == expected
        )
    assert held.texts == ["电话13812345678", "QQ2345678901 加我", ""]


def test_a_failed_preview_says_why_and_shows_no_text(
    qtbot: Any, dialog: SettingsDialog, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(text: str) -> Redaction:
        raise ValueError("the firewall's dictionary is damaged")

    dialog.privacy.redact_output.setPlainText("an older preview")
    monkeypatch.setattr(settings_pages, "redact_for_cloud", broken)
    dialog.privacy.redact_input.setPlainText("电话13812345678")
    qtbot.waitUntil(lambda: "dictionary is damaged" in dialog.error_label.text())
    assert dialog.privacy.redact_output.toPlainText() == ""
