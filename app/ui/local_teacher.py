"""The local teacher as the window runs it: the llama.cpp server
(``app.local_server.teacher_server``) started off the UI thread, watched while it runs, and
stopped when the app closes — no terminal needed.

``LocalTeacher`` holds the state (stopped / starting / running / failed); ``TeacherControl`` is
its light and Start/Stop button, shown in the status bar and on the settings' Teacher page while
the local teacher is the chosen provider.
"""

from __future__ import annotations

import logging
from enum import StrEnum
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from PySide6.QtCore import QCoreApplication, QObject, QTimer, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QWidget

from app.ui.icons import dot
from app.ui.workers import Runner

if TYPE_CHECKING:
    from collections.abc import Callable

    from app.local_server.teacher_server import TeacherServer

log = logging.getLogger(__name__)

WATCH_MS = 2000
"""How often a running server's process is checked."""
START_TIMEOUT_S = 300.0
"""Loading the 1.5B teacher on a busy 2-core machine can take a minute or two."""


class TeacherState(StrEnum):
    STOPPED = "stopped"
    STARTING = "starting"
    RUNNING = "running"
    FAILED = "failed"


LIGHTS = {
    TeacherState.STOPPED: "#9aa0a6",
    TeacherState.STARTING: "#f9ab00",
    TeacherState.RUNNING: "#34a853",
    TeacherState.FAILED: "#ea4335",
}


def teacher_port(base_url: str) -> int:
    """The port the settings' base URL names; 0 (any free port) when it names none: clients
    find the server through its state file then."""
    if not base_url.strip():
        return 0
    return urlsplit(base_url).port or 0


def default_teacher_server() -> TeacherServer:
    """The built-in teacher profile (assembled on first use) on the configured port."""
    from app.cloud import providers
    from app.local_server import teacher_server as server

    config = providers.load_config()
    return server.server_for(server.DEFAULT_PROFILE, teacher_port(config.base_url))


def local_teacher_chosen() -> bool:
    """Whether the saved teacher settings choose the local teacher."""
    from app.cloud import providers
    from app.errors import XiaoerError

    try:
        return providers.load_config().provider == "local"
    except XiaoerError:
        return False


class LocalTeacher(QObject):
    """Starts, watches and stops the local teacher; only a server it started is stopped on
    ``shutdown`` (one started with `xiaoer teacher serve` is left running)."""

    state_changed = Signal(str)
    """The new ``TeacherState``; ``detail`` says more (the address, or why it failed)."""

    def __init__(
        self,
        make_server: Callable[[], TeacherServer] = default_teacher_server,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.make_server = make_server
        self.state = TeacherState.STOPPED
        self.detail = ""
        self.server: TeacherServer | None = None
        """The server this app started (None for one started elsewhere)."""
        self.external_url: str | None = None
        """A local teacher someone else started from this data dir (`xiaoer teacher serve`)."""
        self.busy = False
        """A start or a stop is under way."""
        self._launched: TeacherServer | None = None
        self._runner = Runner("local-teacher", self)
        self._watch = QTimer(self)
        self._watch.setInterval(WATCH_MS)
        self._watch.timeout.connect(self._check)

    def _set(self, state: TeacherState, detail: str = "") -> None:
        self.state, self.detail = state, detail
        log.info("local teacher %s %s", state, detail)
        self.state_changed.emit(str(state))

    def refresh(self) -> None:
        """Look (off the UI thread) for a local teacher already running from this data dir."""
        if self.busy or self.server is not None:
            return
        from app.local_server.teacher_server import running_server

        def found(url: str | None) -> None:
            if self.server is not None or self.busy:
                return
            self.external_url = url
            if url:
                self._set(TeacherState.RUNNING, url)
            elif self.state is TeacherState.RUNNING:
                self._set(TeacherState.STOPPED)

        self._runner.submit(running_server, found, lambda exc: None)

    def start(self) -> None:
        """Start the server on the worker thread; ``state_changed`` says when it answers."""
        if self.busy or self.state is TeacherState.RUNNING:
            return
        self.busy = True
        self._set(TeacherState.STARTING)
        make = self.make_server

        def job() -> TeacherServer:
            server = make()
            self._launched = server  # so that closing the app mid-start still stops it
            server.start(START_TIMEOUT_S)
            return server

        self._runner.submit(job, self._started, self._start_failed)

    def _started(self, server: TeacherServer) -> None:
        self.busy = False
        self.server = server
        self._set(TeacherState.RUNNING, server.base_url)
        self._watch.start()

    def _start_failed(self, exc: BaseException) -> None:
        self.busy = False
        self._set(TeacherState.FAILED, str(exc))

    def stop(self) -> None:
        """Stop the server (the app's own, or one started elsewhere) on the worker thread."""
        if self.busy or self.state is not TeacherState.RUNNING:
            return
        self.busy = True
        self._watch.stop()
        server, self.server = self.server, None
        if server is not None:
            job: Callable[[], object] = server.stop
        else:
            from app.local_server.teacher_server import stop_server

            job = stop_server

        def stopped(_: object) -> None:
            self.busy = False
            self.external_url = None
            self._set(TeacherState.STOPPED)

        def failed(exc: BaseException) -> None:
            self.busy = False
            self._set(TeacherState.FAILED, str(exc))

        self._runner.submit(job, stopped, failed)

    def _check(self) -> None:
        server = self.server
        if server is None or self.busy or server.is_running():
            return
        self._watch.stop()
        self.server = None
        try:
            lines = server.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            lines = []
        self._set(
            TeacherState.FAILED,
            QCoreApplication.translate("LocalTeacher", "The local teacher stopped on its own.")
            + "\n".join([f" {server.log_path}:", *lines[-10:]]),
        )

    @property
    def pid(self) -> int | None:
        return self.server.pid if self.server is not None else None

    def shutdown(self) -> None:
        """The app closes: the server it started stops with it, even one still starting (its
        start on the worker then fails, unseen)."""
        self._watch.stop()
        self._runner.shutdown(wait=False)
        for server in {id(s): s for s in (self.server, self._launched) if s is not None}.values():
            server.stop(grace=5.0)
        self.server = self._launched = None


class TeacherControl(QWidget):
    """The local teacher's light (stopped / starting / running / failed) and Start/Stop."""

    def __init__(self, teacher: LocalTeacher, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.teacher = teacher
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.light = QLabel()
        self.light.setObjectName("teacherLight")
        self.label = QLabel()
        self.label.setObjectName("teacherState")
        self.button = QPushButton()
        self.button.setObjectName("teacherStartStop")
        self.button.clicked.connect(self._clicked)
        layout.addWidget(self.light)
        layout.addWidget(self.label)
        layout.addWidget(self.button)
        teacher.state_changed.connect(self.show_state)
        self.show_state()

    def _clicked(self) -> None:
        if self.teacher.state is TeacherState.RUNNING:
            self.teacher.stop()
        else:
            self.teacher.start()
        self.show_state()

    def show_state(self, *_: object) -> None:
        state = self.teacher.state
        self.light.setPixmap(dot(LIGHTS[state]))
        words = {
            TeacherState.STOPPED: self.tr("Local teacher: stopped"),
            TeacherState.STARTING: self.tr("Local teacher: starting…"),
            TeacherState.RUNNING: self.tr("Local teacher: running"),
            TeacherState.FAILED: self.tr("Local teacher: failed"),
        }
        self.label.setText(words[state])
        self.light.setToolTip(self.teacher.detail)
        self.label.setToolTip(self.teacher.detail)
        running = state is TeacherState.RUNNING
        self.button.setText(self.tr("Stop") if running else self.tr("Start"))
        self.button.setToolTip(
            self.tr("Stop the local teacher")
            if running
            else self.tr("Start the local teacher (the model loads in a minute or two)")
        )
        self.button.setEnabled(not self.teacher.busy)
