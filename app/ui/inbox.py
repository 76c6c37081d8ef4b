"""Where customers come from: the manual channel (the agent pastes a message) and the replay of a
JDDC corpus, polled on a timer; what arrives goes to the open chats."""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QFileDialog, QInputDialog, QWidget

from app.ui.channels import Channel, ManualChannel, ReplayChannel
from app.ui.chats import Chats
from app.ui.services import Services

POLL_MS = 250
"""How often the channels are asked for new customer messages."""


class Inbox(QObject):
    """The channels, polled every ``POLL_MS``; a reply the agent sends goes back to its channel."""

    replaying = Signal(bool)
    message = Signal(str, int)
    """(text, milliseconds) for the status bar."""

    def __init__(self, services: Services, chats: Chats, window: QWidget) -> None:
        super().__init__(window)
        self.services = services
        self.chats = chats
        self.window = window
        self.manual = ManualChannel()
        self.channels: list[Channel] = [self.manual]
        self.replay: ReplayChannel | None = None
        self.poll_timer = QTimer(self)
        self.poll_timer.setInterval(POLL_MS)
        self.poll_timer.timeout.connect(self.poll)
        self.poll_timer.start()
        chats.agent_sent.connect(self._agent_replied)

    def poll(self) -> None:
        now = time.monotonic()
        for channel in self.channels:
            try:
                arrived = channel.poll(now)
            except Exception as exc:
                self.services.report(self.tr("Channel {0}").format(channel.name), exc)
                continue
            for incoming in arrived:
                self.chats.receive(incoming)

    def _agent_replied(self, channel_name: str, key: str, text: str) -> None:
        for channel in self.channels:
            if channel.name == channel_name:
                channel.agent_replied(key, text, time.monotonic())

    def new_customer(self) -> None:
        """Manual channel: the agent pastes or types a new customer's first message."""
        text, ok = QInputDialog.getMultiLineText(
            self.window, self.tr("New customer"), self.tr("The customer's message:")
        )
        if not ok or not text.strip():
            return
        incoming = self.manual.submit(text.strip())
        conversation_id = self.chats.receive(incoming)
        self.manual.poll(time.monotonic())  # already received
        if conversation_id is not None:
            self.chats.open_conversation(conversation_id)

    def toggle_replay(self) -> None:
        if self.replay is not None:
            self.channels.remove(self.replay)
            self.replay = None
            self.replaying.emit(False)
            return
        path = self.services.settings.replay_corpus
        if not path:
            path, _ = QFileDialog.getOpenFileName(
                self.window, self.tr("Replay corpus (JDDC 2019 chat file)"), "", "*.txt;;*"
            )
            if not path:
                return
        self.start_replay(Path(path))

    def start_replay(self, path: Path, interval_s: float | None = None) -> ReplayChannel | None:
        try:
            channel = ReplayChannel.from_file(
                path, interval_s or self.services.settings.replay_interval_s
            )
        except (OSError, ValueError) as exc:
            self.services.report(self.tr("Starting the replay"), exc)
            return None
        self.replay = channel
        self.channels.append(channel)
        self.replaying.emit(True)
        self.message.emit(
            self.tr("Replaying {0} conversations from {1}").format(channel.remaining, path.name),
            5000,
        )
        return channel

    def stop(self) -> None:
        self.poll_timer.stop()
