"""What the window's views share: the store, the workers, and the heavy objects they load lazily.

``AppContext`` says how to load the end model, the scorer and the teacher; the defaults are the
real ones, and anything else (a different model, a scripted teacher) can be passed in. The
``Services`` object holds the live workers; the views call into it and never create threads.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QObject, Signal

from app.cloud.service import TeacherService
from app.engine import models
from app.engine.end_model import EndModel
from app.scoring.scorers import ReplyScorer
from app.store import Store
from app.ui.evolution import evolve_command, missing_training_stack
from app.ui.settings import UiSettings
from app.ui.workers import ModelWorker, ProgressFn, Runner
from app.ui.workspace import Workspace

log = logging.getLogger(__name__)


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
    """The configured teacher behind the privacy firewall; raises when it can't be reached."""
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

    # The two below run on their own worker threads (scoring, cloud), never on the UI thread.

    def scorer(self) -> ReplyScorer:
        if self._scorer is None:
            self._scorer = self.context.load_scorer(self.settings, self.store)
        return self._scorer

    def teacher(self) -> TeacherService:
        if self._teacher is None:
            self._teacher = self.context.make_teacher(self.settings, self.store)
        return self._teacher

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
        if teacher_changed or old.prompt_lang != settings.prompt_lang:
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
