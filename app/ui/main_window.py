"""The main window: the conversation queue, open chats, the evolution panel, errors, shortcuts."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from PySide6.QtCore import QCoreApplication, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeyEvent, QKeySequence, QMouseEvent, QShortcut
from PySide6.QtWidgets import (
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QProgressDialog,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QTabWidget,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from app.cloud import providers
from app.ui.channels import Channel, Incoming, ManualChannel, ReplayChannel
from app.ui.conversation_view import ConversationView
from app.ui.evolution import apply_active_adapter, should_evolve, sync_evolution_settings
from app.ui.evolution_panel import EvolutionPanel
from app.ui.icons import icon
from app.ui.local_teacher import TeacherControl, local_teacher_chosen
from app.ui.services import AppContext, Services
from app.ui.settings import WindowState, save_settings, save_state
from app.ui.settings_dialog import SettingsDialog
from app.ui.suggestions import SHOWN
from app.ui.workspace import ConversationSummary

log = logging.getLogger(__name__)

POLL_MS = 250
"""How often the channels are asked for new customer messages."""


@dataclass(frozen=True)
class ShortcutSpec:
    name: str
    keys: str
    description: str


def shortcut_table() -> list[ShortcutSpec]:
    """Every keyboard shortcut, in the order the help overlay lists them."""
    return [
        ShortcutSpec(
            "send",
            "Ctrl+Return",
            QCoreApplication.translate("Shortcuts", "Send the draft (as edited)"),
        ),
        ShortcutSpec(
            "regenerate", "Ctrl+R", QCoreApplication.translate("Shortcuts", "Regenerate the draft")
        ),
        ShortcutSpec(
            "stop", "Esc", QCoreApplication.translate("Shortcuts", "Stop writing the draft")
        ),
        ShortcutSpec(
            "thumbs_up", "Ctrl+Up", QCoreApplication.translate("Shortcuts", "Rate the draft good")
        ),
        ShortcutSpec(
            "thumbs_down",
            "Ctrl+Down",
            QCoreApplication.translate(
                "Shortcuts", "Rate the draft bad (the teacher is asked for a label)"
            ),
        ),
        ShortcutSpec(
            "ask_cloud", "Ctrl+K", QCoreApplication.translate("Shortcuts", "Ask the cloud teacher")
        ),
        ShortcutSpec(
            "next", "Ctrl+J", QCoreApplication.translate("Shortcuts", "Next waiting conversation")
        ),
        ShortcutSpec(
            "next_tab", "Ctrl+PgDown", QCoreApplication.translate("Shortcuts", "Next open chat")
        ),
        ShortcutSpec(
            "close_chat",
            "Ctrl+W",
            QCoreApplication.translate("Shortcuts", "Close the chat (conversation done)"),
        ),
        ShortcutSpec(
            "new_customer",
            "Ctrl+N",
            QCoreApplication.translate("Shortcuts", "New customer (manual channel)"),
        ),
        ShortcutSpec(
            "search", "Ctrl+F", QCoreApplication.translate("Shortcuts", "Search the queue")
        ),
        ShortcutSpec(
            "candidate",
            "Alt+1 … Alt+3",
            QCoreApplication.translate(
                "Shortcuts", "Put reply candidate 1–3 into the editor (1 is the draft)"
            ),
        ),
        ShortcutSpec(
            "phrase",
            "Ctrl+1 … Ctrl+9",
            QCoreApplication.translate("Shortcuts", "Insert quick phrase 1–9"),
        ),
        ShortcutSpec(
            "export",
            "Ctrl+E",
            QCoreApplication.translate("Shortcuts", "Export the chat (Markdown or CSV)"),
        ),
        ShortcutSpec(
            "evolution",
            "Ctrl+Shift+E",
            QCoreApplication.translate("Shortcuts", "Workspace / evolution panel"),
        ),
        ShortcutSpec("settings", "Ctrl+,", QCoreApplication.translate("Shortcuts", "Settings")),
        ShortcutSpec(
            "help", "F1", QCoreApplication.translate("Shortcuts", "Show or hide this help")
        ),
    ]


class HelpOverlay(QFrame):
    """The keyboard shortcuts, over the whole window; any key or click closes it."""

    def __init__(self, specs: list[ShortcutSpec], parent: QWidget) -> None:
        super().__init__(parent)
        self.setObjectName("helpOverlay")
        self.setStyleSheet(
            "#helpOverlay { background: rgba(20, 20, 20, 200); } "
            "QLabel { color: white; font-size: 14px; }"
        )
        layout = QVBoxLayout(self)
        layout.addStretch(1)
        title = QLabel(self.tr("Keyboard shortcuts"))
        title.setStyleSheet("font-size: 20px; font-weight: bold; color: white")
        title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout.addWidget(title)
        rows = "".join(
            f"<tr><td align='right' style='padding-right:16px'><b>{s.keys}</b></td>"
            f"<td>{s.description}</td></tr>"
            for s in specs
        )
        table = QLabel(f"<table>{rows}</table>")
        table.setObjectName("helpTable")
        table.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout.addWidget(table)
        layout.addStretch(1)
        self.hide()

    def toggle(self) -> None:
        if self.isVisible():
            self.hide()
            return
        parent = self.parentWidget()
        assert parent is not None
        self.setGeometry(parent.rect())
        self.raise_()
        self.show()
        self.setFocus()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        self.hide()

    def mousePressEvent(self, event: QMouseEvent) -> None:
        self.hide()


class ErrorBanner(QFrame):
    """Errors in plain words at the top of the window, with what to do; closable."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("errorBanner")
        self.setStyleSheet(
            "#errorBanner { background: #fce8e6; border: 1px solid #f5c6cb; border-radius: 4px; }"
            " QLabel { color: #a50e0e; }"
        )
        layout = QHBoxLayout(self)
        self.label = QLabel("")
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        close = QPushButton(icon("close"), "")
        close.setObjectName("bannerClose")
        close.setToolTip(self.tr("Close"))
        close.setFlat(True)
        close.setFixedWidth(28)
        close.clicked.connect(self.hide)
        layout.addWidget(self.label, 1)
        layout.addWidget(close)
        self.hide()

    def show_message(self, where: str, message: str) -> None:
        self.label.setText(f"<b>{where}</b>: {message}")
        self.show()


class QueuePanel(QWidget):
    """Customers waiting: unread counts, how long they have waited, a search box."""

    activated = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.search = QLineEdit()
        self.search.setObjectName("queueSearch")
        self.search.setPlaceholderText(self.tr("Search customers and messages (Ctrl+F)"))
        self.search.setClearButtonEnabled(True)
        self.list = QListWidget()
        self.list.setObjectName("queueList")
        self.list.setWordWrap(True)
        layout.addWidget(self.search)
        layout.addWidget(self.list, 1)
        self.summaries: list[ConversationSummary] = []
        self.unread: dict[int, int] = {}
        self.search.textChanged.connect(self.refresh_view)
        self.list.itemActivated.connect(self._activated)
        self.list.itemClicked.connect(self._activated)

    def _activated(self, item: QListWidgetItem) -> None:
        self.activated.emit(int(item.data(Qt.ItemDataRole.UserRole)))

    def set_summaries(self, summaries: list[ConversationSummary]) -> None:
        self.summaries = summaries
        self.refresh_view()

    def visible_ids(self) -> list[int]:
        return [
            int(self.list.item(i).data(Qt.ItemDataRole.UserRole)) for i in range(self.list.count())
        ]

    def refresh_view(self) -> None:
        needle = self.search.text().strip().lower()
        current = self.list.currentItem()
        current_id = current.data(Qt.ItemDataRole.UserRole) if current is not None else None
        now = datetime.now(UTC)
        # Longest-waiting first, then the rest in arrival order.
        ordered = sorted(
            self.summaries,
            key=lambda s: (s.waiting_since is None, s.waiting_since or now, s.id),
        )
        self.list.clear()
        for s in ordered:
            if needle and needle not in f"{s.customer} {s.last_text} {s.channel}".lower():
                continue
            unread = self.unread.get(s.id, 0)
            waiting = ""
            if s.waiting_since is not None:
                seconds = int((now - s.waiting_since).total_seconds())
                waiting = f"  {seconds // 60}:{seconds % 60:02d}"
            badge = f"  ({unread})" if unread else ""
            last = s.last_text if len(s.last_text) <= 40 else s.last_text[:39] + "…"
            item = QListWidgetItem(f"{s.customer} · {s.channel}{badge}{waiting}\n{last}")
            item.setData(Qt.ItemDataRole.UserRole, s.id)
            if s.waiting_since is not None:
                item.setIcon(icon("clock"))  # waiting for an answer, for as long as the text says
            if unread:
                font = item.font()
                font.setBold(True)
                item.setFont(font)
            self.list.addItem(item)
            if s.id == current_id:
                self.list.setCurrentItem(item)


class MainWindow(QMainWindow):
    def __init__(self, context: AppContext, state: WindowState | None = None) -> None:
        super().__init__()
        self.setObjectName("mainWindow")
        self.setWindowTitle(self.tr("Xiaoer — customer service assistant"))
        self.resize(1200, 780)
        self.services = Services(context, self)
        self.workspace = self.services.workspace
        self.manual = ManualChannel()
        self.channels: list[Channel] = [self.manual]
        self.replay: ReplayChannel | None = None
        self.keys: dict[int, tuple[str, str]] = {}
        """conversation id → (channel, the channel's key), for telling channels of replies."""
        self.views: dict[int, ConversationView] = {}
        self.model_ready = False
        self._closing = False
        self._force_close = False
        self.provision_dialog: QProgressDialog | None = None
        self._last_auto_check = 0.0
        self._references: dict[int, str] = {}
        """Replay: the real agent's answer, for a conversation not open in a tab yet."""

        central = QWidget()
        outer = QVBoxLayout(central)
        self.banner = ErrorBanner()
        outer.addWidget(self.banner)
        self.pages = QStackedWidget()
        outer.addWidget(self.pages, 1)
        self.setCentralWidget(central)

        self.queue = QueuePanel()
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
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.queue)
        split.addWidget(self.centre)
        split.setSizes([300, 900])
        self.pages.addWidget(split)
        self.evolution = EvolutionPanel(self.services)
        self.pages.addWidget(self.evolution)
        self.overlay = HelpOverlay(shortcut_table(), central)

        self.model_status = QLabel(self.tr("loading the end model…"))
        self.ranker_status = QLabel()
        self.ranker_status.setObjectName("rankerStatus")
        self.ranker_bar = QProgressBar()
        self.ranker_bar.setObjectName("rankerProgress")
        self.ranker_bar.setMaximumWidth(160)
        self.ranker_bar.setTextVisible(False)
        self._ranker_stage = ""
        for widget in (self.ranker_status, self.ranker_bar):
            self.statusBar().addPermanentWidget(widget)
            widget.hide()
        self.statusBar().addPermanentWidget(self.model_status)
        self.teacher_control = TeacherControl(self.services.local_teacher)
        self.statusBar().addPermanentWidget(self.teacher_control)
        self.show_teacher_control()
        self._build_actions()

        self.queue.activated.connect(self.open_conversation)
        self.tabs.tabCloseRequested.connect(self._tab_close_requested)
        self.tabs.currentChanged.connect(self._tab_changed)
        self.services.error.connect(self.banner.show_message)
        self.services.model.loaded.connect(self._model_loaded)
        self.services.model.load_failed.connect(self._model_failed)
        self.services.model.provision_progress.connect(self._provision_progress)
        self.services.ranker_progress.connect(self._ranker_progress)
        self.services.ranker_finished.connect(self._ranker_finished)
        self.evolution.adapter_changed.connect(self.apply_adapter)
        self.evolution.run_finished.connect(lambda ok: self.refresh_queue())

        self.poll_timer = QTimer(self)
        self.poll_timer.setInterval(POLL_MS)
        self.poll_timer.timeout.connect(self.poll_channels)
        self.poll_timer.start()
        self.clock = QTimer(self)
        self.clock.setInterval(1000)
        self.clock.timeout.connect(self.queue.refresh_view)
        self.clock.timeout.connect(self._auto_evolve_check)
        self.clock.start()

        self.refresh_queue()
        self._restore(state or WindowState())
        self.services.load_model()
        self.services.warm_suggestions()

    # --- actions and shortcuts ---------------------------------------------------------------

    def _build_actions(self) -> None:
        bar = QToolBar(self.tr("Main"))
        bar.setObjectName("mainToolbar")
        bar.setMovable(False)
        self.addToolBar(bar)

        def action(text: str, slot: object, keys: str | None = None, name: str = "") -> QAction:
            act = QAction(text, self)
            if name:
                act.setObjectName(name)
            if keys:
                act.setShortcut(QKeySequence(keys))
                act.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
                act.setToolTip(f"{text} ({keys})")
            act.triggered.connect(slot)
            self.addAction(act)
            return act

        self.new_customer_action = action(
            self.tr("New customer"), self.new_customer, "Ctrl+N", "newCustomer"
        )
        self.replay_action = action(self.tr("Start replay"), self.toggle_replay, None, "replay")
        self.evolution_action = action(
            self.tr("Evolution"), self.toggle_evolution, "Ctrl+Shift+E", "evolution"
        )
        self.evolution_action.setCheckable(True)
        self.settings_action = action(self.tr("Settings"), self.open_settings, "Ctrl+,", "settings")
        self.export_action = action(self.tr("Export chat"), self.export_current, "Ctrl+E", "export")
        self.help_action = action(self.tr("Shortcuts"), self.overlay.toggle, "F1", "help")
        for act in (
            self.new_customer_action,
            self.replay_action,
            self.export_action,
            self.evolution_action,
            self.settings_action,
            self.help_action,
        ):
            bar.addAction(act)

        def view_call(method: str) -> object:
            def call() -> None:
                view = self.current_view()
                if view is not None:
                    getattr(view, method)()

            return call

        for keys, slot in (
            ("Ctrl+Return", view_call("send")),
            ("Ctrl+Enter", view_call("send")),
            ("Ctrl+R", view_call("request_draft")),
            ("Esc", self._escape),
            ("Ctrl+K", view_call("ask_cloud")),
            ("Ctrl+Up", lambda: self._rate(True)),
            ("Ctrl+Down", lambda: self._rate(False)),
            ("Ctrl+J", self.next_waiting),
            ("Ctrl+PgDown", self.next_tab),
            ("Ctrl+W", self.close_current),
            ("Ctrl+F", self._focus_search),
        ):
            shortcut = QShortcut(QKeySequence(keys), self)
            shortcut.activated.connect(slot)
        for n in range(1, 10):
            shortcut = QShortcut(QKeySequence(f"Ctrl+{n}"), self)
            shortcut.activated.connect(lambda n=n: self._phrase(n))
        for n in range(1, SHOWN + 1):
            shortcut = QShortcut(QKeySequence(f"Alt+{n}"), self)
            shortcut.activated.connect(lambda n=n: self._candidate(n))

    def _escape(self) -> None:
        if self.overlay.isVisible():
            self.overlay.hide()
            return
        view = self.current_view()
        if view is not None:
            view.stop()

    def _rate(self, up: bool) -> None:
        view = self.current_view()
        if view is not None:
            view.rate(up)

    def _phrase(self, n: int) -> None:
        view = self.current_view()
        phrases = self.services.settings.quick_phrases
        if view is not None and n <= len(phrases):
            view.insert_phrase(phrases[n - 1])

    def _candidate(self, n: int) -> None:
        view = self.current_view()
        if view is not None:
            view.choose_candidate(n)

    def _focus_search(self) -> None:
        self.pages.setCurrentIndex(0)
        self.queue.search.setFocus()
        self.queue.search.selectAll()

    def toggle_evolution(self) -> None:
        show = self.pages.currentIndex() == 0
        self.pages.setCurrentIndex(1 if show else 0)
        self.evolution_action.setChecked(show)
        if show:
            self.evolution.refresh()

    # --- the model --------------------------------------------------------------------------

    def _provision_progress(self, done: int, total: int) -> None:
        dialog = self.provision_dialog
        if dialog is None:
            dialog = QProgressDialog(
                self.tr("First start: assembling and verifying the embedded model…"),
                "",
                0,
                1000,
                self,
            )
            dialog.setObjectName("provisionDialog")
            dialog.setWindowTitle(self.tr("Preparing the end model"))
            dialog.setCancelButton(None)
            dialog.setMinimumDuration(0)
            dialog.setAutoClose(False)
            dialog.setAutoReset(False)
            # Not modal: a modal progress dialog spins the event loop inside setValue().
            dialog.setWindowModality(Qt.WindowModality.NonModal)
            self.provision_dialog = dialog
            dialog.show()
        dialog.setLabelText(
            self.tr(
                "First start: assembling and verifying the embedded model… {0} of {1} MB"
            ).format(done // 1_000_000, total // 1_000_000)
        )
        dialog.setValue(int(done * 1000 / max(total, 1)))

    def _ranker_progress(self, stage: str, done: int, total: int) -> None:
        """The ranker trains in the background after a knowledge import: a bar, not a dialog."""
        self._ranker_stage = stage
        if stage == "encode" and total:
            text = self.tr("Training the ranker: reading the shop's chats {0} of {1}…").format(
                done, total
            )
        else:
            text = self.tr("Training the ranker on the shop's chats…")
        self.ranker_status.setText(text)
        self.ranker_bar.setRange(0, total)  # 0 to 0: busy, no count
        self.ranker_bar.setValue(done)
        self.ranker_status.show()
        self.ranker_bar.show()

    def _ranker_finished(self, version: str) -> None:
        self.ranker_bar.hide()
        self.ranker_status.hide()
        if version:
            message = self.tr(
                "Ranker {0} trained and active: candidate scores are calibrated"
            ).format(version)
        elif self._ranker_stage == "skipped":
            message = self.tr(
                "Too little chat history to train a ranker yet: candidate scores stay uncalibrated"
            )
        else:
            return
        self.statusBar().showMessage(message, 15000)

    def _close_provision_dialog(self) -> None:
        if self.provision_dialog is not None:
            self.provision_dialog.close()
            self.provision_dialog.deleteLater()
            self.provision_dialog = None

    def _model_loaded(self, profile: str) -> None:
        self._close_provision_dialog()
        self.model_ready = True
        self.model_status.setText(self.tr("end model: {0}").format(profile))
        self.apply_adapter()
        for view in self.views.values():
            if view.model_pending:
                view.draft_when_ready()
            elif view.needs_draft():
                view.request_draft()

    def _model_failed(self, message: str) -> None:
        self._close_provision_dialog()
        self.model_ready = False
        self.model_status.setText(self.tr("no end model"))
        self.services.report(
            self.tr("The end model could not be loaded"),
            message
            + " "
            + self.tr("Choose another model in Settings; you can still type replies yourself."),
        )

    def apply_adapter(self) -> None:
        """Load the store's active adapter into the running model (on the model worker)."""
        if self.services.model.model is None and not self.model_ready:
            return
        store = self.services.store

        def done(version: str | None) -> None:
            base = self.services.model.profile
            self.model_status.setText(
                self.tr("end model: {0} + adapter {1}").format(base, version)
                if version
                else self.tr("end model: {0}").format(base)
            )

        def failed(exc: BaseException) -> None:
            self.services.report(self.tr("Loading the active adapter"), exc)
            # Show what the model serves now: the base model after an adapter that was refused.
            self.services.model.call(lambda model: model.active_adapter, done)

        self.services.model.call(lambda model: apply_active_adapter(model, store), done, failed)

    # --- channels and the queue -----------------------------------------------------------

    def poll_channels(self) -> None:
        now = time.monotonic()
        for channel in self.channels:
            try:
                arrived = channel.poll(now)
            except Exception as exc:
                self.services.report(self.tr("Channel {0}").format(channel.name), exc)
                continue
            for incoming in arrived:
                self.receive(incoming)

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
                view.request_draft(model=self.model_ready)

        QTimer.singleShot(0, later)

    def refresh_queue(self) -> None:
        try:
            self.queue.set_summaries(self.workspace.summaries("open"))
        except Exception as exc:
            self.services.report(self.tr("Reading the conversations"), exc)

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

    # --- chats --------------------------------------------------------------------------------

    def current_view(self) -> ConversationView | None:
        widget = self.tabs.currentWidget()
        return widget if isinstance(widget, ConversationView) else None

    def open_conversation(self, conversation_id: int) -> ConversationView | None:
        self.pages.setCurrentIndex(0)
        self.evolution_action.setChecked(False)
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
                view.request_draft(model=self.model_ready)
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
        channel_name, key = self.keys.get(conversation_id, ("", ""))
        for channel in self.channels:
            if channel.name == channel_name and key:
                channel.agent_replied(key, text, time.monotonic())

    def new_customer(self) -> None:
        """Manual channel: the agent pastes or types a new customer's first message."""
        text, ok = QInputDialog.getMultiLineText(
            self, self.tr("New customer"), self.tr("The customer's message:")
        )
        if not ok or not text.strip():
            return
        incoming = self.manual.submit(text.strip())
        conversation_id = self.receive(incoming)
        self.manual.poll(time.monotonic())  # already received
        if conversation_id is not None:
            self.open_conversation(conversation_id)

    def toggle_replay(self) -> None:
        if self.replay is not None:
            self.channels.remove(self.replay)
            self.replay = None
            self.replay_action.setText(self.tr("Start replay"))
            return
        path = self.services.settings.replay_corpus
        if not path:
            path, _ = QFileDialog.getOpenFileName(
                self, self.tr("Replay corpus (JDDC 2019 chat file)"), "", "*.txt;;*"
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
        self.replay_action.setText(self.tr("Stop replay"))
        self.statusBar().showMessage(
            self.tr("Replaying {0} conversations from {1}").format(channel.remaining, path.name),
            5000,
        )
        return channel

    def export_current(self) -> None:
        view = self.current_view()
        if view is None:
            return
        path, _ = QFileDialog.getSaveFileName(
            self,
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
        self.statusBar().showMessage(self.tr("Exported to {0}").format(path), 5000)

    # --- settings and automatic evolution ----------------------------------------------------

    def open_settings(self) -> SettingsDialog:
        dialog = SettingsDialog(
            self.services.settings,
            parent=self,
            knowledge=self.services.knowledge,
            knowledge_imported=self.services.knowledge_imported,
            local_teacher=self.services.local_teacher,
        )
        if dialog.exec() and dialog.result_settings is not None:
            self.apply_settings_from(dialog)
        return dialog

    def apply_settings_from(self, dialog: SettingsDialog) -> None:
        settings, teacher = dialog.result_settings, dialog.result_teacher
        assert settings is not None and teacher is not None
        try:
            save_settings(settings)
            providers.save_config(teacher)
            sync_evolution_settings(
                settings.low_score_threshold,
                settings.evolve_policy,
                settings.evolve_min_labels,
                settings.past_dialogues,
                settings.shots,
            )
        except Exception as exc:
            self.services.report(self.tr("Saving the settings"), exc)
            return
        self.show_teacher_control()
        if self.services.apply_settings(settings, dialog.teacher_changed):
            self.model_ready = False
            self.model_status.setText(self.tr("loading the end model…"))
            self.services.load_model()

    def show_teacher_control(self) -> None:
        """The local teacher's light and Start button, while it is the chosen teacher."""
        chosen = local_teacher_chosen()
        self.teacher_control.setVisible(chosen)
        if chosen:
            self.services.local_teacher.refresh()

    def _auto_evolve_check(self) -> None:
        settings = self.services.settings
        now = time.monotonic()
        if settings.evolve_policy == "off" or now - self._last_auto_check < 60:
            return
        self._last_auto_check = now
        if self.evolution.running:
            return
        try:
            due = should_evolve(
                self.services.store, settings.evolve_policy, settings.evolve_min_labels
            )
        except Exception as exc:
            log.warning("automatic evolution check failed: %s", exc)
            return
        if due:
            log.info("automatic evolution (%s)", settings.evolve_policy)
            self.evolution.evolve_now()

    # --- state and closing -------------------------------------------------------------------

    def _restore(self, state: WindowState) -> None:
        open_ids = {s.id for s in self.queue.summaries}
        for conversation_id in state.open_conversations:
            if conversation_id in open_ids:
                self.open_conversation(conversation_id)
        if state.current_conversation in self.views:
            self.tabs.setCurrentWidget(self.views[state.current_conversation])

    def window_state(self) -> WindowState:
        ids = [
            w.conversation_id
            for i in range(self.tabs.count())
            if isinstance(w := self.tabs.widget(i), ConversationView)
        ]
        current = self.current_view()
        return WindowState(ids, current.conversation_id if current else None)

    def busy_reasons(self) -> list[str]:
        reasons = []
        if self.services.model.drafting:
            reasons.append(self.tr("a draft is being written"))
        if self.evolution.running:
            reasons.append(self.tr("training is running"))
        if self.services.ranker_training.busy:
            reasons.append(self.tr("the ranker is training"))
        return reasons

    def close_without_asking(self) -> None:
        """Ctrl-C or SIGTERM: stop drafting and training, save the state, close."""
        self._force_close = True
        self.close()

    def closeEvent(self, event: QCloseEvent) -> None:
        if self._closing:
            event.accept()
            return
        reasons = [] if self._force_close else self.busy_reasons()
        if reasons:
            answer = QMessageBox.question(
                self,
                self.tr("Quit Xiaoer?"),
                self.tr(
                    "Right now {0}. Stop it and quit? Everything rated and sent is saved."
                ).format(self.tr(" and ").join(reasons)),
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                QMessageBox.StandardButton.No,
            )
            if answer != QMessageBox.StandardButton.Yes:
                event.ignore()
                return
        self._closing = True
        self.poll_timer.stop()
        self.clock.stop()
        try:
            save_state(self.window_state())
        except OSError as exc:
            log.warning("could not save the window state: %s", exc)
        self.evolution.stop_and_wait()
        self.services.shutdown()
        event.accept()
