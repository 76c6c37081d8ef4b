"""UI tests: the real window offscreen, one session-wide QApplication (pytest-qt's ``qapp``), a
temp data dir and database (the root conftest's ``data_home``) and an in-memory keyring per test.

The end model in the fast tests is the real ``EndModel`` over a scripted backend (its replies are
the test's input); the scorer is the real ``ReplyScorer`` over fixed similarity/matching numbers;
the teacher is the real ``TeacherService`` over a scripted provider. Tests marked ``slow`` use the
real 0.5B model and scorers.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keyring
import pytest
from PySide6.QtWidgets import QMessageBox

from app.cloud.service import RetryPolicy, TeacherService
from app.engine.end_model import EndModel
from app.scoring.scorers import ReplyScorer
from app.store import Store, open_store
from app.ui.services import AppContext
from app.ui.settings import UiSettings
from tests.doubles import DEFAULT_REPLY as DEFAULT_REPLY  # re-exported: tests import it from here
from tests.doubles import (
    FixedMatching,
    FixedSimilarity,
    MemoryKeyring,
    ScriptedBackend,
    ScriptedTeacher,
)

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(autouse=True)
def memory_keyring(monkeypatch: pytest.MonkeyPatch) -> Iterator[MemoryKeyring]:
    for name in ("XIAOER_GEMINI_API_KEY", "XIAOER_OPENAI_COMPATIBLE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


@dataclass
class Parts:
    """What a test controls behind the window."""

    backend: ScriptedBackend = field(default_factory=ScriptedBackend)
    matching: FixedMatching = field(default_factory=FixedMatching)
    teacher: ScriptedTeacher = field(default_factory=ScriptedTeacher)
    teacher_error: Exception | None = None
    load_error: Exception | None = None
    loader: Callable[..., EndModel] | None = None


@pytest.fixture
def store(data_home: Path) -> Iterator[Store]:
    s = open_store()
    yield s
    s.close()


@pytest.fixture
def parts() -> Parts:
    return Parts()


@pytest.fixture
def context(store: Store, parts: Parts) -> AppContext:
    def load_model(settings: UiSettings, progress: Callable[[int, int], None]) -> EndModel:
        if parts.loader is not None:
            return parts.loader(settings, progress)
        if parts.load_error is not None:
            raise parts.load_error
        return EndModel(parts.backend, "你是店小二。", settings.generation_config())

    def load_scorer(settings: UiSettings, s: Store) -> ReplyScorer:
        return ReplyScorer(FixedSimilarity(), parts.matching, settings.alpha, settings.theta)

    def make_teacher(settings: UiSettings, s: Store) -> TeacherService:
        if parts.teacher_error is not None:
            raise parts.teacher_error
        return TeacherService(parts.teacher, s, retry=RetryPolicy(attempts=1))

    return AppContext(store, UiSettings(), load_model, load_scorer, make_teacher)


@pytest.fixture
def answer_quit(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Closing asks before stopping work: answer Yes, and record that it asked."""
    asked: list[str] = []

    def question(
        parent: object, title: str, text: str, *args: object
    ) -> QMessageBox.StandardButton:
        asked.append(text)
        return QMessageBox.StandardButton.Yes

    monkeypatch.setattr(QMessageBox, "question", question)
    return asked


@pytest.fixture
def window(qtbot: Any, context: AppContext, answer_quit: list[str]) -> Iterator[Any]:
    from app.ui.main_window import MainWindow

    w = MainWindow(context)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: w.model_ready or w.banner.isVisible(), timeout=10000)
    yield w
    w.close()
