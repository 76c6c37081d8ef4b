"""Background work for the window: one thread per scarce resource, results back on the UI thread.

- ``Runner``: a single-thread executor whose results and errors are delivered to the UI thread
  through a queued signal (Anki's ``run_on_main``). The window keeps one for scoring and one for
  the teacher.
- ``ModelWorker``: the one thread that owns the end model. Jobs queue up and run one at a time;
  a draft streams with its text sent to the window at most every ``THROTTLE_S``; each draft has a
  ``threading.Event`` that stops it between tokens.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal, Slot

from app.engine.conversation import Shot, Turn
from app.engine.end_model import EndModel

log = logging.getLogger(__name__)

THROTTLE_S = 0.05
"""At most one update of a streaming draft per 50 ms reaches the window."""

ProgressFn = Callable[[int, int], None]
ShotsFn = Callable[[Sequence[Turn]], Sequence[Shot]]
"""The past dialogues to show the model with a draft of a reply to these turns."""


class Runner(QObject):
    """Runs callables one at a time on its own thread; callbacks run on the UI thread."""

    _deliver = Signal(object)

    def __init__(self, name: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.name = name
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"xiaoer-{name}")
        self._pending = 0
        self._closed = False
        self._deliver.connect(self._run_on_main, Qt.ConnectionType.QueuedConnection)

    @property
    def busy(self) -> bool:
        return self._pending > 0

    def submit(
        self,
        fn: Callable[[], Any],
        done: Callable[[Any], object] | None = None,
        error: Callable[[BaseException], None] | None = None,
    ) -> Future[None]:
        if self._closed:  # the window is closing: late requests are dropped
            log.info("%s worker shut down; dropping a late job", self.name)
            dropped: Future[None] = Future()
            dropped.cancel()
            return dropped
        self._pending += 1

        def job() -> None:
            try:
                result = fn()
            except Exception as exc:
                log.warning("%s job failed: %s", self.name, exc, exc_info=True)
                self._deliver.emit(lambda failure=exc: self._finish(error, failure))
                return
            self._deliver.emit(lambda: self._finish(done, result))

        return self._executor.submit(job)

    def _finish(self, callback: Callable[[Any], object] | None, value: Any) -> None:
        self._pending -= 1
        if callback is not None and not self._closed:
            callback(value)

    @Slot(object)
    def _run_on_main(self, callback: Callable[[], None]) -> None:
        callback()

    def shutdown(self, wait: bool = True) -> None:
        self._closed = True
        self._executor.shutdown(wait=wait, cancel_futures=True)


@dataclass(frozen=True)
class DraftOutcome:
    text: str
    latency_ms: int
    """From the request to the last token."""
    first_token_ms: int | None
    prompt_tokens: int
    completion_tokens: int
    cancelled: bool
    adapter: str | None
    notes: tuple[str, ...]
    """What had to be left out of the conversation to fit the context window."""
    shots: int = 0
    """Past dialogues shown to the model as examples."""


class ModelWorker(QObject):
    """Owns the end model on one thread; drafts are queued, streamed, throttled and cancellable."""

    loaded = Signal(str)
    load_failed = Signal(str)
    provision_progress = Signal(int, int)
    draft_started = Signal(int)
    draft_text = Signal(int, str)
    draft_finished = Signal(int, object)
    draft_failed = Signal(int, str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._runner = Runner("model", self)
        self._ids = itertools.count(1)
        self._cancels: dict[int, threading.Event] = {}
        self.model: EndModel | None = None
        """Set and used on the worker thread; the UI thread only checks it for None."""
        self.profile = ""

    @property
    def busy(self) -> bool:
        return self._runner.busy

    @property
    def drafting(self) -> bool:
        return bool(self._cancels)

    def load(self, loader: Callable[[ProgressFn], EndModel], profile: str) -> None:
        """Load (or replace) the model on the worker thread; provisioning reports progress."""

        def job() -> str:
            old, self.model = self.model, None
            if old is not None:
                old.close()
            self.model = loader(self.provision_progress.emit)
            self.profile = profile
            return profile

        self._runner.submit(
            job, done=self.loaded.emit, error=lambda exc: self.load_failed.emit(str(exc))
        )

    def call(
        self,
        fn: Callable[[EndModel], Any],
        done: Callable[[Any], None] | None = None,
        error: Callable[[BaseException], None] | None = None,
    ) -> None:
        """Run ``fn(model)`` on the worker, after the jobs already queued (e.g. an adapter swap)."""

        def job() -> Any:
            if self.model is None:
                raise RuntimeError("the end model is not loaded")
            return fn(self.model)

        self._runner.submit(job, done, error)

    def draft(self, turns: Sequence[Turn], shots: ShotsFn | None = None) -> int:
        """Queue a draft of the agent's reply to the conversation's last customer message.

        ``shots`` picks the past dialogues shown to the model; it runs in the job, on the worker
        thread (retrieval encodes text).
        """
        job_id = next(self._ids)
        cancel = threading.Event()
        self._cancels[job_id] = cancel
        turns = list(turns)

        def job() -> DraftOutcome:
            model = self.model
            if model is None:
                raise RuntimeError("the end model is not loaded yet")
            self.draft_started.emit(job_id)
            start = time.perf_counter()
            examples = list(shots(turns)) if shots is not None else []
            first: float | None = None
            text = ""
            last_emit = 0.0
            for piece in model.stream_reply(turns, cancel, shots=examples):
                now = time.perf_counter()
                if first is None:
                    first = now
                text += piece
                if now - last_emit >= THROTTLE_S:
                    last_emit = now
                    self.draft_text.emit(job_id, text)
            end = time.perf_counter()
            self.draft_text.emit(job_id, text)
            return DraftOutcome(
                text=text.strip(),
                latency_ms=int((end - start) * 1000),
                first_token_ms=None if first is None else int((first - start) * 1000),
                prompt_tokens=model.last_fit.prompt_tokens,
                completion_tokens=model.backend.count_tokens(text) if text else 0,
                cancelled=cancel.is_set(),
                adapter=model.active_adapter,
                notes=tuple(model.last_fit.notes),
                shots=model.last_fit.shots_shown,
            )

        def done(outcome: DraftOutcome) -> None:
            self._cancels.pop(job_id, None)
            self.draft_finished.emit(job_id, outcome)

        def failed(exc: BaseException) -> None:
            self._cancels.pop(job_id, None)
            self.draft_failed.emit(job_id, str(exc))

        self._runner.submit(job, done, failed)
        return job_id

    def cancel(self, job_id: int) -> None:
        event = self._cancels.get(job_id)
        if event is not None:
            event.set()

    def cancel_all(self) -> None:
        for event in self._cancels.values():
            event.set()

    def shutdown(self) -> None:
        """Stop any draft between tokens, wait for the thread, and free the model."""
        self.cancel_all()
        self._runner.shutdown(wait=True)
        if self.model is not None:
            self.model.close()
            self.model = None
