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

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keyring
import keyring.backend
import keyring.errors
import numpy as np
import pytest
from jaraco.classes import properties
from PySide6.QtWidgets import QMessageBox

from app.cloud.service import RetryPolicy, TeacherService
from app.cloud.teacher import TeacherAnswer, TeacherRequest, Usage
from app.engine.backend import GenerationConfig
from app.engine.conversation import Message, format_chatml
from app.engine.end_model import EndModel
from app.scoring.scorers import ReplyScorer
from app.store import Store, open_store
from app.ui.services import AppContext
from app.ui.settings import UiSettings

FIXTURES = Path(__file__).parent / "fixtures"
DEFAULT_REPLY = "亲，您好，这款商品今天下单今天发货哦。"


class MemoryKeyring(keyring.backend.KeyringBackend):
    """Secrets in a dict; never chosen by keyring's own discovery."""

    @properties.classproperty
    def priority(cls) -> float:
        raise RuntimeError("only set explicitly by tests")

    def __init__(self) -> None:
        super().__init__()
        self.store: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.store.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.store[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.store.pop((service, username), None) is None:
            raise keyring.errors.PasswordDeleteError("no such password")


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
class ScriptedBackend:
    """A backend whose replies are scripted; streams two characters at a time.

    ``gate``, when given, holds the stream after its first piece until it is set, so a test can
    look at a draft in the middle of being written. An active adapter prefixes its name, so a test
    can tell which adapter wrote a draft.
    """

    replies: list[str] = field(default_factory=list)
    delay_s: float = 0.0
    gate: threading.Event | None = None
    name: str = "llamacpp"  # stands in for llama.cpp, which serves LoRA adapters
    chat_format: str = "chatml"
    n_ctx: int = 2048
    prompts: list[str] = field(default_factory=list)
    adapters: dict[str, Path] = field(default_factory=dict)
    _active: str | None = None

    def count_tokens(self, text: str) -> int:
        return len(text) // 2 + 1

    def render(self, messages: Sequence[Message]) -> str:
        return format_chatml(messages)

    def stream(
        self, prompt: str, config: GenerationConfig, cancel: threading.Event | None
    ) -> Iterator[str]:
        self.prompts.append(prompt)
        reply = self.replies.pop(0) if self.replies else DEFAULT_REPLY
        if self._active:
            reply = f"[{self._active}] {reply}"
        for i in range(0, len(reply), 2):
            if cancel is not None and cancel.is_set():
                return
            yield reply[i : i + 2]
            if i == 0 and self.gate is not None:
                self.gate.wait(10)
            if self.delay_s:
                time.sleep(self.delay_s)

    def warm_up(self, prefix: str) -> None:
        pass

    def load_adapter(self, name: str, path: Path) -> None:
        self.adapters[name] = Path(path)

    def set_adapter(self, name: str | None) -> None:
        if name is not None and name not in self.adapters:
            raise KeyError(name)
        self._active = name

    @property
    def active_adapter(self) -> str | None:
        return self._active

    def close(self) -> None:
        pass


@dataclass
class FixedSimilarity:
    value: float = 0.9
    version: str = "fixed-sim"

    def similarity(self, a: Sequence[str], b: Sequence[str]) -> Any:
        return np.full(len(a), self.value)


@dataclass
class FixedMatching:
    """Matching of a reply: ``by_reply`` when listed, else ``value``."""

    value: float = 0.7
    by_reply: dict[str, float] = field(default_factory=dict)
    version: str = "fixed-match"

    def matching(self, contexts: Sequence[Sequence[str]], replies: Sequence[str]) -> Any:
        return np.asarray([self.by_reply.get(r, self.value) for r in replies])


@dataclass
class ScriptedTeacher:
    """A cloud provider stand-in: answers from a script and records each request."""

    script: list[object] = field(default_factory=list)
    provider: str = "scripted"
    model: str = "m1"
    is_local: bool = False
    requests: list[TeacherRequest] = field(default_factory=list)

    def complete(self, request: TeacherRequest) -> TeacherAnswer:
        self.requests.append(request)
        step = self.script.pop(0) if self.script else "亲，这款今天下单今天就能发货的。"
        if isinstance(step, Exception):
            raise step
        return TeacherAnswer(str(step), self.provider, self.model, Usage(100, 20))


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
