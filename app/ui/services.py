"""What the window's views share: the store, the workers, and the heavy objects they load lazily.

``AppContext`` says how to load the end model, the scorer and the teacher; the defaults are the
real ones, and anything else (a different model, a scripted teacher) can be passed in. The
``Services`` object holds the live workers; the views call into it and never create threads.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from app.cloud.label import example_bank
from app.cloud.prompt import ExampleBank
from app.cloud.service import TeacherService
from app.engine import models
from app.engine.conversation import Shot, Turn
from app.engine.end_model import EndModel
from app.scoring.scorers import ReplyScorer
from app.store import Store
from app.ui.evolution import evolve_command, missing_training_stack
from app.ui.settings import UiSettings
from app.ui.workers import ModelWorker, ProgressFn, Runner
from app.ui.workspace import Workspace

log = logging.getLogger(__name__)

TEACHER_EXAMPLES = 8
"""Past dialogues shown to the teacher with each request (the CLI's ``--k``)."""


def load_end_model(settings: UiSettings, progress: ProgressFn) -> EndModel:
    """The configured end model; a built-in profile is assembled and verified first if needed."""
    profile = models.PROFILES.get(settings.model)
    if profile is not None:
        models.provision(profile, progress)
    return EndModel.load(settings.engine_config(), settings.generation_config())


def load_reply_scorer(settings: UiSettings, store: Store) -> ReplyScorer:
    from app.scoring.registry import load_scorer

    return load_scorer(alpha=settings.alpha, theta=settings.theta, store=store)


def make_teacher_service(settings: UiSettings, store: Store) -> TeacherService:
    """The configured teacher behind the privacy firewall; raises when it can't be reached.
    ``Services.teacher`` gives it the shop's past dialogues."""
    from app.cloud.providers import load_config, make_teacher

    teacher = make_teacher(load_config())
    cost = getattr(teacher, "cost", None)
    return TeacherService(teacher, store, lang=settings.prompt_lang, cost_fn=cost)


@dataclass
class AppContext:
    """How the window gets its heavy parts (the real ones by default)."""

    store: Store
    settings: UiSettings
    load_model: Callable[[UiSettings, ProgressFn], EndModel] = load_end_model
    load_scorer: Callable[[UiSettings, Store], ReplyScorer] = load_reply_scorer
    make_teacher: Callable[[UiSettings, Store], TeacherService] = make_teacher_service
    evolve_command: Callable[[], list[str]] = field(default=evolve_command)
    missing_training: Callable[[], list[str]] = field(default=missing_training_stack)


class Services(QObject):
    """The live workers and lazily loaded scorer and teacher, shared by all views."""

    error = Signal(str, str)
    """(where, message): shown in the window's error banner and logged."""
    settings_changed = Signal()

    def __init__(self, context: AppContext, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.context = context
        self.store = context.store
        self.settings = context.settings
        self.workspace = Workspace(context.store)
        self.model = ModelWorker(self)
        self.scoring = Runner("scoring", self)
        self.cloud = Runner("cloud", self)
        self._scorer: ReplyScorer | None = None
        self._teacher: TeacherService | None = None
        # The past dialogues are used from the model thread and the cloud thread.
        self._bank_lock = threading.Lock()
        self._bank: ExampleBank | None = None
        self._bank_source = ""
        """The setting ``_bank`` was built from; None in ``_bank`` there means it failed."""

    # The two below run on their own worker threads (scoring, cloud), never on the UI thread.

    def scorer(self) -> ReplyScorer:
        if self._scorer is None:
            self._scorer = self.context.load_scorer(self.settings, self.store)
        return self._scorer

    def teacher(self) -> TeacherService:
        if self._teacher is None:
            service = self.context.make_teacher(self.settings, self.store)
            bank = self.past_dialogues()
            if bank is not None and service.examples is None:
                # Given here rather than by ``make_teacher``, so every teacher factory gets them.
                service.examples, service.k = bank, TEACHER_EXAMPLES
            self._teacher = service
        return self._teacher

    # The two below run on the model thread or the cloud thread: retrieval encodes text.

    def past_dialogues(self) -> ExampleBank | None:
        """The shop's past dialogues, read (and their queries encoded) on first use; None when
        none are configured or they could not be read (reported once, until the setting
        changes)."""
        source = self.settings.past_dialogues.strip()
        with self._bank_lock:
            if source != self._bank_source:  # the setting changed: drop the old ones
                self._bank, self._bank_source = None, source
                if not source:
                    return None
                path = Path(source).expanduser()
                try:
                    bank = example_bank(path)
                    # Encode the corpus now, under the lock, so no two threads encode it at once.
                    bank.retrieve(bank.examples[0].query, 1)
                    self._bank = bank
                except Exception as exc:  # any failure: draft without them, and say why
                    self.report(self.tr("Past dialogues"), f"{path}: {exc}")
            return self._bank

    def shots_for(self, turns: Sequence[Turn]) -> list[Shot]:
        """The ``settings.shots`` past dialogues most similar to the customer's latest message,
        best first, shown to the end model with its draft; [] when there are none to show."""
        n = self.settings.shots
        query = next((t.text for t in reversed(turns) if t.role == "customer"), "")
        if n <= 0 or not query.strip():
            return []
        bank = self.past_dialogues()
        if bank is None:
            return []
        return [(ex.query, ex.reply) for ex in bank.retrieve(query, n)]

    def load_model(self) -> None:
        settings = self.settings
        self.model.load(
            lambda progress: self.context.load_model(settings, progress), settings.model
        )

    def apply_settings(self, settings: UiSettings, teacher_changed: bool) -> bool:
        """Use new settings; returns whether the model must be reloaded."""
        old, self.settings = self.settings, settings
        self.context.settings = settings
        # Rebuilt lazily on their threads with the new settings.
        self.scoring.submit(lambda: setattr(self, "_scorer", None))
        # The past dialogues are rebuilt on first use when their setting changed (not here: the
        # UI thread must not wait for a worker that is encoding them).
        if (
            teacher_changed
            or old.prompt_lang != settings.prompt_lang
            or old.past_dialogues != settings.past_dialogues
        ):
            self.cloud.submit(lambda: setattr(self, "_teacher", None))
        self.settings_changed.emit()
        reload = old.engine_config() != settings.engine_config()
        if not reload and self.model.model is not None:
            generation = settings.generation_config()
            self.model.call(lambda model: setattr(model, "generation", generation))
        return reload

    def report(self, where: str, exc: BaseException | str) -> None:
        message = str(exc)
        log.error("%s: %s", where, message)
        self.error.emit(where, message)

    def shutdown(self) -> None:
        self.model.shutdown()
        self.scoring.shutdown(wait=False)
        self.cloud.shutdown(wait=False)

    def describe(self) -> dict[str, Any]:
        return {"model": self.settings.model, "loaded": self.model.model is not None}
