"""Chinese and English UI through Qt translations; every marked string is translated."""

from __future__ import annotations

import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtWidgets import QApplication

from app.ui.i18n import install_translator, resolve_language
from app.ui.main_window import MainWindow

UI = Path(__file__).resolve().parents[2] / "app" / "ui"
TS = UI / "i18n" / "xiaoer_zh_CN.ts"


def sources(ts: Path) -> set[tuple[str, str]]:
    root = ET.parse(ts).getroot()
    return {
        (ctx.findtext("name") or "", m.findtext("source") or "")
        for ctx in root.iter("context")
        for m in ctx.iter("message")
    }


def test_language_follows_the_system_unless_chosen() -> None:
    assert resolve_language("system", "zh_CN") == "zh_CN"
    assert resolve_language("system", "zh_TW") == "zh_CN"
    assert resolve_language("system", "de_DE") == "en"
    assert resolve_language("en", "zh_CN") == "en"
    assert resolve_language("zh_CN", "en_US") == "zh_CN"


def test_every_marked_string_has_a_finished_chinese_translation(tmp_path: Path) -> None:
    lupdate = Path(sys.executable).with_name("pyside6-lupdate")
    tool = str(lupdate) if lupdate.exists() else shutil.which("pyside6-lupdate")
    assert tool, "pyside6-lupdate comes with PySide6-Essentials"
    fresh = tmp_path / "fresh.ts"
    subprocess.run(
        [tool, *sorted(str(p) for p in UI.glob("*.py")), "-ts", str(fresh)],
        check=True,
        capture_output=True,
    )
    assert sources(fresh) == sources(TS), "run `python -m app.ui.i18n` to update the .ts"
    unfinished = [
        m.findtext("source")
        for m in ET.parse(TS).getroot().iter("message")
        if m.find("translation").get("type") == "unfinished" or not m.findtext("translation")
    ]
    assert unfinished == []
    assert TS.with_suffix(".qm").stat().st_mtime >= TS.stat().st_mtime - 1


@pytest.fixture
def chinese(qapp: QApplication) -> Iterator[str]:
    yield install_translator(qapp, "zh_CN")
    install_translator(qapp, "en")


def test_the_window_speaks_chinese(qtbot, context, chinese: str, answer_quit) -> None:
    assert chinese == "zh_CN"
    w = MainWindow(context)
    qtbot.addWidget(w)
    assert w.new_customer_action.text() == "新顾客"
    assert w.windowTitle() == "小二 — 客服助手"
    assert w.evolution.evolve_button.text() == "立即进化"
    help_text = w.overlay.findChild(type(w.model_status), "helpTable").text()
    assert "发送草稿" in help_text
    w.close()


def test_english_is_the_source_language(qtbot, context, answer_quit, qapp) -> None:
    install_translator(qapp, "en")
    w = MainWindow(context)
    qtbot.addWidget(w)
    assert w.new_customer_action.text() == "New customer"
    w.close()
