"""The window starts, watches and stops the local teacher itself: a light and a Start/Stop button
in the status bar (and on the settings' Teacher page); no terminal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt

from app.cloud.teacher import LocalTeacherNotRunning
from app.engine import weights
from app.local_server import teacher_server
from app.local_server.teacher_server import TeacherServer, TeacherServerError
from app.ui.local_teacher import LocalTeacher, TeacherState, teacher_port
from app.ui.services import AppContext
from tests.ui.conftest import Parts


class FakeServer:
    """Stands in for TeacherServer where no model is loaded: it starts (or fails), and can die."""

    def __init__(self, log_path: Path, fail: str = "") -> None:
        self.fail = fail
        self.running = False
        self.stopped = False
        self.base_url = "http://127.0.0.1:9/v1"
        self.pid = 4242
        self.log_path = log_path

    def start(self, timeout: float) -> str:
        if self.fail:
            raise TeacherServerError(self.fail)
        self.running = True
        return self.base_url

    def is_running(self) -> bool:
        return self.running

    def stop(self, grace: float = 10.0) -> None:
        self.running, self.stopped = False, True


def test_the_port_comes_from_the_settings_base_url() -> None:
    assert teacher_port("") == 0
    assert teacher_port("http://127.0.0.1:8765/v1") == 8765
    assert teacher_port("http://localhost/v1") == 0


def test_a_failed_start_lights_red_and_says_why(qtbot: Any, tmp_path: Path) -> None:
    teacher = LocalTeacher(lambda: FakeServer(tmp_path / "log", fail="port 8765 is in use"))
    teacher.start()
    qtbot.waitUntil(lambda: teacher.state is TeacherState.FAILED)
    assert "8765 is in use" in teacher.detail and not teacher.busy
    teacher.shutdown()


def test_a_server_that_dies_is_seen_and_one_it_started_stops_with_the_app(
    qtbot: Any, tmp_path: Path
) -> None:
    (tmp_path / "log").write_text("llama_model_load: out of memory\n", encoding="utf-8")
    servers: list[FakeServer] = []

    def make() -> FakeServer:
        servers.append(FakeServer(tmp_path / "log"))
        return servers[-1]

    teacher = LocalTeacher(make)  # type: ignore[arg-type]
    teacher.start()
    qtbot.waitUntil(lambda: teacher.state is TeacherState.RUNNING)
    servers[0].running = False  # it crashed
    qtbot.waitUntil(lambda: teacher.state is TeacherState.FAILED, timeout=10000)
    assert "out of memory" in teacher.detail
    teacher.start()
    qtbot.waitUntil(lambda: teacher.state is TeacherState.RUNNING)
    teacher.shutdown()
    assert servers[1].stopped


def test_an_agent_is_told_to_press_start_not_to_open_a_terminal(
    qtbot: Any, window: Any, parts: Parts
) -> None:
    parts.teacher_error = LocalTeacherNotRunning(
        "The local teacher is not running; start it with `xiaoer teacher serve`"
    )
    window.services.report("Asking the teacher", parts.teacher_error)
    text = window.banner.label.text()
    assert "Start" in text and "xiaoer" not in text and "terminal" not in text
    assert window.teacher_control.isVisible()  # the local teacher is the default provider


@pytest.mark.slow
def test_start_and_stop_the_real_local_teacher_from_the_window(
    qtbot: Any, context: AppContext, embedded_model_path: Path, answer_quit: list[str]
) -> None:
    pytest.importorskip("uvicorn", reason="the local teacher needs llama-cpp-python[server]")
    from app.ui.main_window import MainWindow

    profile = weights.PROFILES[weights.DEFAULT_PROFILE]
    context.make_teacher_server = lambda: TeacherServer(
        embedded_model_path, n_ctx=512, n_threads=1, chat_format=profile.chat_format
    )
    window = MainWindow(context)
    qtbot.addWidget(window)
    window.show()
    control, teacher = window.teacher_control, window.services.local_teacher
    assert control.isVisible() and teacher.state is TeacherState.STOPPED
    assert control.button.text() == "Start"

    qtbot.mouseClick(control.button, Qt.MouseButton.LeftButton)
    assert teacher.state is TeacherState.STARTING  # at once: the start runs off the UI thread
    assert not control.button.isEnabled()
    qtbot.waitUntil(lambda: teacher.state is TeacherState.RUNNING, timeout=180_000)
    pid, url = teacher.pid, teacher.detail
    assert pid is not None and teacher_server._pid_alive(pid)
    assert teacher_server.running_server() == url  # clients find it through its state file
    assert control.label.text() == "Local teacher: running" and control.button.text() == "Stop"

    qtbot.mouseClick(control.button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: teacher.state is TeacherState.STOPPED, timeout=30_000)
    assert not teacher_server._pid_alive(pid)
    assert teacher_server.running_server() is None
    assert control.button.text() == "Start"

    # Started again, then the window closes: the server it started goes with it.
    qtbot.mouseClick(control.button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: teacher.state is TeacherState.RUNNING, timeout=180_000)
    pid = teacher.pid
    assert pid is not None
    window.close()
    assert not teacher_server._pid_alive(pid)
