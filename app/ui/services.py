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
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Signal

from app.cloud.label import example_bank
from app.cloud.prompt import ExampleBank
from app.cloud.service import TeacherService
from app.cloud.teacher import LocalTeacherNotRunning
from app.engine import weights
from app.engine.conversation import Shot, Turn
from app.engine.end_model import EndModel
from app.evolve.promotion import AdapterDamaged
from app.scoring.scorers import ReplyScorer
from app.store import Store
from app.store.db import shop_database_url
from app.store.team import ShopSync, SyncStatus
from app.suggest.ranker import ranker_is_stale
from app.team.watch import AdapterWatcher
from app.ui.evolution import evolve_command, missing_training_stack, onboard_command
from app.ui.local_teacher import LocalTeacher, TeacherState, default_teacher_server
from app.ui.settings import UiSettings
from app.ui.workers import ModelWorker, ProgressFn, Runner
from app.ui.workspace import Workspace

if TYPE_CHECKING:
    from app.knowledge import KnowledgeBase
    from app.local_server.teacher_server import TeacherServer
    from app.suggest.candidates import Suggester, Suggestion, Suggestions

log = logging.getLogger(__name__)

TEACHER_EXAMPLES = 8
"""Past dialogues shown to the teacher with each request (the CLI's ``--k``)."""


@dataclass(frozen=True)
class Ranking:
    """Candidates for one customer turn (``app.suggest``'s ``Suggestion``), best first, and
    whether their scores are uncalibrated (no ranker trained on the shop's chats is active)."""

    suggestions: list[Suggestion]
    uncalibrated: bool


@dataclass
class SuggestionRequest:
    """One customer turn at the suggestion worker. Its retrieved candidates stay there for the
    re-ranking once the model's draft is done (the worker runs jobs in order)."""

    turns: list[Turn]
    found: Suggestions | None = None


class RankerTrainingCancelled(Exception):
    """Raised from the ranker's progress report to stop a training when the window closes."""


RankerProgress = Callable[[dict[str, Any]], None]
"""The ranker's training reports: {"stage": "encode", "done": …, "total": …}, {"stage": …}."""


def load_end_model(settings: UiSettings, progress: ProgressFn) -> EndModel:
    """The configured end model; a built-in profile is assembled and verified first if needed.
    With ``$XIAOER_END_URL`` (team mode, a thin desktop) the shop's server drafts instead."""
    from app.engine.remote import RemoteConfig, RemoteEndModel

    remote = RemoteConfig.from_env(n_ctx=settings.n_ctx, lang=settings.prompt_lang)
    if remote is not None:
        return RemoteEndModel.connect(remote, settings.generation_config())
    profile = weights.PROFILES.get(settings.model)
    if profile is not None:
        weights.provision(profile, progress)
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


def make_knowledge_base(store: Store) -> KnowledgeBase:
    """The shop's knowledge in the store, searched with the process's one USE model."""
    from app.knowledge import KnowledgeBase

    return KnowledgeBase(store)


def load_suggester(knowledge: KnowledgeBase) -> Suggester:
    """Candidates from the shop's knowledge, ranked by the store's active ranker."""
    from app.suggest.candidates import Suggester

    return Suggester(knowledge)


def train_ranker(store: Store, knowledge: KnowledgeBase, progress: RankerProgress) -> str | None:
    """Train the ranker on the shop's past dialogues and make it the active one; returns its
    version, or None when the history is too small to learn from."""
    from app.suggest.train import train_ranker_after_import

    ranker = train_ranker_after_import(store, knowledge, progress)
    return None if ranker is None else ranker.version


@dataclass
class AppContext:
    """How the window gets its heavy parts (the real ones by default)."""

    store: Store
    settings: UiSettings
    load_model: Callable[[UiSettings, ProgressFn], EndModel] = load_end_model
    load_scorer: Callable[[UiSettings, Store], ReplyScorer] = load_reply_scorer
    make_teacher: Callable[[UiSettings, Store], TeacherService] = make_teacher_service
    make_knowledge: Callable[[Store], KnowledgeBase] = make_knowledge_base
    load_suggester: Callable[[KnowledgeBase], Suggester] = load_suggester
    train_ranker: Callable[[Store, KnowledgeBase, RankerProgress], str | None] = train_ranker
    evolve_command: Callable[[], list[str]] = field(default=evolve_command)
    onboard_command: Callable[..., list[str]] = field(default=onboard_command)
    missing_training: Callable[[], list[str]] = field(default=missing_training_stack)
    make_teacher_server: Callable[[], TeacherServer] = field(default=default_teacher_server)
    """The local teacher's server, as the window's Start button starts it."""


class Services(QObject):
    """The live workers and lazily loaded scorer and teacher, shared by all views."""

    error = Signal(str, str)
    """(where, message): shown in the window's error banner and logged."""
    settings_changed = Signal()
    ranker_progress = Signal(str, int, int)
    """(stage, done, total) while the ranker trains after a knowledge import; total 0: no count."""
    shop_status = Signal(str, int)
    """Team mode: (state, ratings waiting) of the shop's database, state "connecting", "online"
    or "offline"; emitted from the sync's thread on every change (never in solo mode)."""
    shop_adapter_changed = Signal()
    """Team mode: the shop's active adapter changed and is registered here (from the watcher's
    thread): the model should load the store's active adapter."""
    ranker_finished = Signal(str)
    """The version of the newly trained ranker, now active; "" when none was made (too little
    history, a failure, or the window closing)."""

    def __init__(self, context: AppContext, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.context = context
        self.store = context.store
        self.settings = context.settings
        self.workspace = Workspace(context.store)
        self.model = ModelWorker(self)
        self.scoring = Runner("scoring", self)
        self.cloud = Runner("cloud", self)
        self.suggestions = Runner("suggest", self)
        self.ranker_training = Runner("ranker", self)
        """Trains the ranker after a knowledge import, in the background."""
        """Retrieval and ranking of reply candidates: never waits for the model."""
        self._knowledge: KnowledgeBase | None = None
        self._knowledge_lock = threading.Lock()
        self._suggester: Suggester | None = None
        self._suggester_failed = False
        self._ranker_cancel = threading.Event()
        self._scorer: ReplyScorer | None = None
        self._teacher: TeacherService | None = None
        # The past dialogues are used from the model thread and the cloud thread.
        self._bank_lock = threading.Lock()
        self._bank: ExampleBank | None = None
        self._bank_source = ""
        """The setting ``_bank`` was built from; None in ``_bank`` there means it failed."""
        self.local_teacher = LocalTeacher(context.make_teacher_server, self)
        self.local_teacher.state_changed.connect(self._local_teacher_changed)
        self.shop_sync: ShopSync | None = None
        """Team mode ($XIAOER_DATABASE_URL): sends every rating to the shop's database, keeping
        it here while the server is away (app.store.team)."""
        shop = shop_database_url()
        self.shop_adapters: AdapterWatcher | None = None
        """Team mode: follows the shop's active adapter (fetched, hash-checked, registered here;
        ``shop_adapter_changed`` then has the model load it) (app.team.watch)."""
        if shop is not None:
            self.shop_sync = ShopSync(self.store, shop, on_status=self._shop_status_changed)
            self.workspace.on_rated = self.shop_sync.notify
            self.shop_sync.start()
            self.shop_adapters = AdapterWatcher(
                shop,
                self.store,
                on_change=lambda version: self.shop_adapter_changed.emit(),
                on_error=self._shop_adapter_failed,
            )
            self.shop_adapters.start()

    def _shop_status_changed(self, status: SyncStatus) -> None:
        self.shop_status.emit(status.state, status.pending)

    def _shop_adapter_failed(self, exc: Exception) -> None:
        if isinstance(exc, AdapterDamaged):  # an unreachable server is the status bar's news
            self.report(self.tr("The shop's adapter"), exc)

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

    # --- the shop's knowledge and reply candidates ---------------------------------------------

    def knowledge(self) -> KnowledgeBase:
        """The shop's knowledge base, shared by the suggestions and the settings' import (it is
        safe to use from several threads; an import through it updates its search index)."""
        with self._knowledge_lock:
            if self._knowledge is None:
                self._knowledge = self.context.make_knowledge(self.store)
            return self._knowledge

    def suggester(self) -> Suggester | None:
        """Loaded on the suggestion worker on first use; None when it could not be (said once)."""
        if self._suggester is None and not self._suggester_failed:
            try:
                self._suggester = self.context.load_suggester(self.knowledge())
            except Exception as exc:
                self._suggester_failed = True
                log.warning("no reply candidates: %s", exc, exc_info=True)
                self.report(self.tr("Reply candidates"), exc)
        return self._suggester

    def warm_suggestions(self) -> None:
        """Load the suggester, the knowledge index and the encoder now, on the suggestion
        worker, so the first customer's candidates don't wait for them; a ranker that no longer
        loads (another version's features) is trained again."""

        def warm() -> bool:
            suggester = self.suggester()
            if suggester is not None:
                knowledge = self.knowledge()
                knowledge.warm()
                knowledge.encode(["你好"])
            return ranker_is_stale(self.store)

        self.suggestions.submit(warm, lambda stale: self.train_ranker() if stale else None)

    def suggest(
        self,
        turns: Sequence[Turn],
        done: Callable[[Ranking], None],
        error: Callable[[BaseException], None],
    ) -> SuggestionRequest:
        """Retrieve and rank candidates for the customer's latest message on the suggestion
        worker, at once: the model's draft is not waited for."""
        request = SuggestionRequest(list(turns))

        def job() -> Ranking:
            suggester = self.suggester()
            if suggester is None:
                return Ranking([], True)
            request.found = suggester.suggest(request.turns)
            return Ranking(list(request.found.ranked), not request.found.calibrated)

        self.suggestions.submit(job, done, error)
        return request

    def rerank(
        self,
        request: SuggestionRequest,
        draft: str,
        done: Callable[[Ranking], None],
        error: Callable[[BaseException], None],
    ) -> None:
        """Rank the model's finished draft in among the request's candidates."""

        def job() -> Ranking:
            found = request.found  # set by the request's own job, which ran before this one
            if found is None:
                return Ranking([], True)
            return Ranking(list(found.add_draft(draft)), not found.calibrated)

        self.suggestions.submit(job, done, error)

    def reload_suggester(self) -> None:
        """A new ranker is active: the suggester is loaded again (on its worker, between turns)
        with it and with the knowledge vectors its training computed."""

        def reload() -> None:
            self._suggester, self._suggester_failed = None, False
            self.suggester()

        self.suggestions.submit(reload)

    def knowledge_imported(self) -> None:
        """Knowledge was imported through ``knowledge()``: the ranker learns from it."""
        self.train_ranker()

    def train_ranker(self) -> bool:
        """Train the ranker on the shop's past dialogues in the background (progress through
        ``ranker_progress``); it becomes active, and the candidates' scores calibrated, when
        done. False when a training is already running."""
        if self.ranker_training.busy:
            return False
        store, train, cancel = self.store, self.context.train_ranker, self._ranker_cancel
        cancel.clear()

        def progress(event: dict[str, Any]) -> None:
            if cancel.is_set():  # the window is closing: stop between two steps
                raise RankerTrainingCancelled("the window was closed")
            self.ranker_progress.emit(
                str(event.get("stage", "")), int(event.get("done", 0)), int(event.get("total", 0))
            )

        def job() -> str:
            return train(store, self.knowledge(), progress) or ""

        def done(version: str) -> None:
            if version:
                self.reload_suggester()
                self.scoring.submit(lambda: setattr(self, "_scorer", None))  # the new matcher
            self.ranker_finished.emit(version)

        def failed(exc: BaseException) -> None:
            self.ranker_finished.emit("")
            if not isinstance(exc, RankerTrainingCancelled):
                self.report(self.tr("Training the ranker"), exc)

        self.ranker_progress.emit("start", 0, 0)
        self.ranker_training.submit(job, done, failed)
        return True

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

    def _local_teacher_changed(self, state: str) -> None:
        if state in (TeacherState.RUNNING, TeacherState.STOPPED):
            # The teacher is made again on its next use, for the server now at its address.
            self.cloud.submit(lambda: setattr(self, "_teacher", None))

    def report(self, where: str, exc: BaseException | str) -> None:
        message = str(exc)
        if isinstance(exc, LocalTeacherNotRunning):  # the window starts it, not a terminal
            message = self.tr(
                "The local teacher is not running: press Start beside its light in the status "
                "bar (or on the Teacher page of the settings)."
            )
        log.error("%s: %s", where, message)
        self.error.emit(where, message)

    def shutdown(self) -> None:
        if self.shop_sync is not None:
            self.shop_sync.close(timeout=2.0)  # unsent ratings wait in the local file
        if self.shop_adapters is not None:
            self.shop_adapters.stop(timeout=2.0)
        self._ranker_cancel.set()
        self.local_teacher.shutdown()
        self.model.shutdown()
        self.scoring.shutdown(wait=False)
        self.cloud.shutdown(wait=False)
        self.suggestions.shutdown(wait=False)
        self.ranker_training.shutdown(wait=False)

    def describe(self) -> dict[str, Any]:
        return {"model": self.settings.model, "loaded": self.model.model is not None}
