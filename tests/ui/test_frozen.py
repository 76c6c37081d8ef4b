"""What the desktop bundle relies on in the app: Evolve now without the training stack (the lite
bundle) explains instead of starting a run, and ``xiaoer gui --smoke`` drafts, scores and exits."""

from __future__ import annotations

import importlib.util
import json
from typing import Any

import pytest

from app import cli
from app.ui import evolution
from app.ui.main_window import MainWindow
from app.ui.services import AppContext
from app.ui.settings import UiSettings


def test_missing_training_stack_names_what_is_absent(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name in ("torch", "peft") else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    assert evolution.missing_training_stack() == ["torch", "peft"]


def test_evolve_now_without_the_training_stack_explains_and_starts_nothing(window) -> None:
    def no_process() -> list[str]:
        raise AssertionError("no evolution process may start without the training stack")

    window.services.context.missing_training = lambda: ["torch", "transformers", "peft"]
    window.services.context.evolve_command = no_process
    window.evolution.evolve_now()
    text = window.evolution.stage_label.text()
    assert "torch, transformers, peft" in text and "full Xiaoer bundle" in text
    assert window.evolution.run is None and window.evolution.evolve_button.isEnabled()
    window.services.context.onboard_command = lambda *args: no_process()
    window.evolution.stage_label.setText("")
    window.evolution.warm_start()  # says the same before asking for a history
    assert "full Xiaoer bundle" in window.evolution.stage_label.text()
    assert window.evolution.run is None


def test_gui_smoke_drafts_scores_prints_and_exits_0(
    qtbot, context: AppContext, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    made: list[MainWindow] = []

    def build_window(settings: UiSettings) -> MainWindow:
        context.settings = settings
        made.append(MainWindow(context))
        return made[-1]

    monkeypatch.setattr("app.ui.app.build_window", build_window)
    assert cli.main(["gui", "--smoke", "可以开发票吗？"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["ok"] is True and report["draft"].strip() and 0.0 <= report["final"] <= 1.0
    assert made[0].services.settings.label_weak_drafts is False  # no teacher call in a smoke
    assert made[0].queue.summaries  # the message arrived through the real window


def test_gui_smoke_fails_when_the_model_cannot_load(
    qtbot, context: AppContext, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(settings: UiSettings, progress: Any) -> Any:
        raise RuntimeError("no model here")

    context.load_model = broken

    def build_window(settings: UiSettings) -> MainWindow:
        context.settings = settings
        return MainWindow(context)

    monkeypatch.setattr("app.ui.app.build_window", build_window)
    assert cli.main(["gui", "--smoke"]) == 1
    report = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert report["ok"] is False and "no model here" in report["error"]
