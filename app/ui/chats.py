"""The open chats: one tab per conversation, customers' messages delivered into them, the queue
kept in step, and a chat's export."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import QFileDialog, QLabel, QStackedWidget, QTabWidget, QWidget

from app.ui.channels import Incoming
from app.ui.conversation_view import ConversationView
from app.ui.queue_panel import QueuePanel
from app.ui.services import Services
from app.ui.settings import WindowState


class Chats(QObject):
    """The tabs of open chats beside the queue; ``centre`` is the widget the window shows (the
    tabs, or a hint while no chat is open)."""

    opened = Signal()
    """A chat was brought to the front: the window shows the workspace page."""
    message = Signal(str, int)
    """(text, milliseconds) for the status bar."""
    agent_sent = Signal(str, str, str)
    """(channel, the channel's key, text): the agent's reply, for the channel to pass on."""

    def __init__(
        self,
        services: Services,
        queue: QueuePanel,
        model_ready: Callable[[], bool],
        window: QWidget,
    ) -> None:
        super().__init__(window)
        self.services = services
        self.workspace = services.workspace
        self.queue = queue
        self.model_ready = model_ready
        self.window = window
        self.views: dict[int, ConversationView] = {}
        self.keys: dict[int, tuple[str, str]] = {}
        """conversation id → (channel, the channel's key), for telling channels of replies."""
        self._references: dict[int, str] = {}
        """Replay: the real agent's answer, for a conversation not open in a tab yet."""
        self.tabs = QTabWidget()
        self.tabs.setObjectName("chatTabs")
        self.tabs.setTabsClosable(True)
        self.tabs.setDocumentMode(True)
        self.empty = QLabel(
            self.tr(
                "No chat open. Customers appear on the left: start the replay, or add a customer "
                "with Ctrl+N."
            )
        )
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.centre = QStackedWidget()
        self.centre.addWidget(self.empty)
        self.centre.addWidget(self.tabs)
        queue.activated.connect(self.open_conversation)
        self.tabs.tabCloseRequested.connect(self._tab_close_requested)
        self.tabs.currentChanged.connect(self._tab_changed)

    # --- customers' messages and the queue ----------------------------------------------------

    def receive(self, incoming: Incoming) -> int | None:
        """A customer message arrived: into the store, the queue, and the open chat if any."""
        try:
            conversation_id, _ = self.workspace.receive(
                incoming.channel, incoming.customer, incoming.text, incoming.display_name
            )
        except Exception as exc:
            self.services.report(self.tr("Receiving a customer message"), exc)
            return None
        self.keys[conversation_id] = (incoming.channel, incoming.key)
        view = self.views.get(conversation_id)
        if view is None or self.current_view() is not view:
            self.queue.unread[conversation_id] = self.queue.unread.get(conversation_id, 0) + 1
        if view is not None:
            view.reload()
            if incoming.reference is not None:
                view.set_reference(incoming.reference)
            self._schedule_draft(view)
        elif incoming.reference is not None:
            self._references[conversation_id] = incoming.reference
        self.refresh_queue()
        return conversation_id

    def _schedule_draft(self, view: ConversationView) -> None:
        # Several messages may arrive in one poll: draft once, after the last.
        def later() -> None:
            if view.conversation_id in self.views and view.needs_draft():
                view.request_draft(model=self.model_ready())

        QTimer.singleShot(0, later)

    def refresh_queue(self) -> None:
        try:
            self.queue.set_summaries(self.workspace.summaries("open"))
        except Exception as exc:
            self.services.report(self.tr("Reading the conversations"), exc)

    def model_loaded(self) -> None:
        """The end model is ready: chats waiting for it get their drafts."""
        for view in self.views.values():
            if view.model_pending:
                view.draft_when_ready()
            elif view.needs_draft():
                view.request_draft()

    def next_waiting(self) -> None:
        """Open the conversation that has waited longest for an answer."""
        waiting = [s for s in self.queue.summaries if s.waiting_since is not None]
        if not waiting:
            return
        current = self.current_view()
        waiting.sort(key=lambda s: (s.waiting_since, s.id))
        choice = next(
            (s for s in waiting if current is None or s.id != current.conversation_id), waiting[0]
        )
        self.open_conversation(choice.id)

    def next_tab(self) -> None:
        if self.tabs.count():
            self.tabs.setCurrentIndex((self.tabs.currentIndex() + 1) % self.tabs.count())

    # --- tabs ---------------------------------------------------------------------------------

    def current_view(self) -> ConversationView | None:
        widget = self.tabs.currentWidget()
        return widget if isinstance(widget, ConversationView) else None

    def open_conversation(self, conversation_id: int) -> ConversationView | None:
        self.opened.emit()
        view = self.views.get(conversation_id)
        if view is None:
            summary = next((s for s in self.queue.summaries if s.id == conversation_id), None)
            if summary is None:
                summary = self.workspace.summary(conversation_id)
            if summary is None:
                return None
            channel, key = self.keys.get(conversation_id, (summary.channel, None))
            try:
                view = ConversationView(self.services, conversation_id, channel, key)
            except Exception as exc:
                self.services.report(self.tr("Opening the conversation"), exc)
                return None
            view.sent.connect(self._agent_sent)
            view.changed.connect(lambda _id: self.refresh_queue())
            self.views[conversation_id] = view
            self.tabs.addTab(view, summary.customer)
            reference = self._references.pop(conversation_id, None)
            if reference:
                view.set_reference(reference)
            if view.needs_draft():
                view.request_draft(model=self.model_ready())
        self.tabs.setCurrentWidget(view)
        self.centre.setCurrentIndex(1)
        self.queue.unread.pop(conversation_id, None)
        self.queue.refresh_view()
        return view

    def _tab_changed(self, index: int) -> None:
        view = self.current_view()
        self.centre.setCurrentIndex(1 if view is not None else 0)
        if view is not None:
            self.queue.unread.pop(view.conversation_id, None)
            self.queue.refresh_view()

    def _tab_close_requested(self, index: int) -> None:
        widget = self.tabs.widget(index)
        if isinstance(widget, ConversationView):
            self.close_view(widget, finish=False)

    def close_view(self, view: ConversationView, finish: bool) -> None:
        """Close a tab; ``finish`` also closes the conversation (it leaves the queue)."""
        view.dispose()
        self.tabs.removeTab(self.tabs.indexOf(view))
        self.views.pop(view.conversation_id, None)
        if finish:
            try:
                self.workspace.close_conversation(view.conversation_id)
            except Exception as exc:
                self.services.report(self.tr("Closing the conversation"), exc)
            self.refresh_queue()
        view.deleteLater()
        self.centre.setCurrentIndex(1 if self.tabs.count() else 0)

    def close_current(self) -> None:
        view = self.current_view()
        if view is not None:
            self.close_view(view, finish=True)

    def _agent_sent(self, conversation_id: int, text: str) -> None:
        channel, key = self.keys.get(conversation_id, ("", ""))
        if key:
            self.agent_sent.emit(channel, key, text)

    # --- export and state ---------------------------------------------------------------------

    def export_current(self) -> None:
        view = self.current_view()
        if view is None:
            return
        path, _ = QFileDialog.getSaveFileName(
            self.window,
            self.tr("Export the chat"),
            f"conversation-{view.conversation_id}.md",
            "Markdown (*.md);;CSV (*.csv)",
        )
        if path:
            self.export_to(view.conversation_id, Path(path))

    def export_to(self, conversation_id: int, path: Path) -> None:
        try:
            text = (
                self.workspace.export_csv(conversation_id)
                if path.suffix.lower() == ".csv"
                else self.workspace.export_markdown(conversation_id)
            )
            path.write_text(text, encoding="utf-8")
        except Exception as exc:
            self.services.report(self.tr("Exporting the chat"), exc)
            return
        self.message.emit(self.tr("Exported to {0}").format(path), 5000)

    def restore(self, state: WindowState) -> None:
        open_ids = {s.id for s in self.queue.summaries}
        for conversation_id in state.open_conversations:
            if conversation_id in open_ids:
                self.open_conversation(conversation_id)
        if state.current_conversation in self.views:
            self.tabs.setCurrentWidget(self.views[state.current_conversation])

    def state(self) -> WindowState:
        ids = [
            w.conversation_id
            for i in range(self.tabs.count())
            if isinstance(w := self.tabs.widget(i), ConversationView)
        ]
        current = self.current_view()
        return WindowState(ids, current.conversation_id if current else None)
