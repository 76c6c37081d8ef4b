"""One evolution child process (``xiaoer evolve --now --jsonl``, ``xiaoer onboard … --jsonl``)
read line by line through QProcess: its JSON-lines events, its exit code and stderr's tail."""

from __future__ import annotations

import logging
import signal
from collections import deque
from typing import Any

from PySide6.QtCore import QObject, QProcess, Signal

from app.ui.evolution import parse_event

log = logging.getLogger(__name__)


class EvolveRun(QObject):
    """One ``xiaoer evolve --now --jsonl`` child process, read line by line through QProcess."""

    event_received = Signal(dict)
    finished = Signal(int, str)
    """(exit code, the last lines of stderr) once the process has ended."""

    def __init__(self, command: list[str], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.command = command
        self.process = QProcess(self)
        self.process.setProgram(command[0])
        self.process.setArguments(command[1:])
        self.process.readyReadStandardOutput.connect(self._read_stdout)
        self.process.readyReadStandardError.connect(self._read_stderr)
        self.process.finished.connect(self._finished)
        self.process.errorOccurred.connect(self._error)
        self._buffer = b""
        self._stderr: deque[str] = deque(maxlen=50)
        self.events: list[dict[str, Any]] = []
        self._ended = False
        self.killed = False
        """Whether the process ended by SIGKILL (most likely out of memory)."""

    def start(self) -> None:
        log.info("starting evolution: %s", " ".join(self.command))
        self.process.start()

    @property
    def running(self) -> bool:
        return self.process.state() != QProcess.ProcessState.NotRunning

    def stop(self) -> None:
        """SIGTERM: the evolution process cancels cleanly (contract)."""
        if self.running:
            self.process.terminate()

    def wait(self, ms: int = 15000) -> bool:
        if not self.running:
            return True
        if not self.process.waitForFinished(ms):
            self.process.kill()
            return self.process.waitForFinished(3000)
        return True

    def _read_stdout(self) -> None:
        self._buffer += bytes(self.process.readAllStandardOutput().data())
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            event = parse_event(line)
            if event is not None:
                self.events.append(event)
                self.event_received.emit(event)
            elif line.strip():
                log.info("evolve: %s", line.decode("utf-8", errors="replace"))

    def _read_stderr(self) -> None:
        text = bytes(self.process.readAllStandardError().data()).decode("utf-8", errors="replace")
        for line in text.splitlines():
            if line.strip():
                self._stderr.append(line)
                log.info("evolve stderr: %s", line)

    def _finished(self, code: int, status: QProcess.ExitStatus) -> None:
        if self._ended:
            return
        self._ended = True
        self._read_stdout()
        if self._buffer.strip():
            event = parse_event(self._buffer)
            if event is not None:
                self.events.append(event)
                self.event_received.emit(event)
        # Killed by a signal: Qt gives the signal's number. SIGKILL is what the kernel's
        # out-of-memory killer sends.
        self.killed = status == QProcess.ExitStatus.CrashExit and code == signal.SIGKILL
        if status == QProcess.ExitStatus.CrashExit and code == 0:
            code = -1
        self.finished.emit(code, "\n".join(self._stderr))

    def _error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart and not self._ended:
            self._ended = True
            self.finished.emit(-1, self.process.errorString())
