"""The window's actions: the toolbar, every keyboard shortcut, and the help overlay listing them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PySide6.QtCore import QCoreApplication, QObject, Qt
from PySide6.QtGui import QAction, QKeyEvent, QKeySequence, QMouseEvent, QShortcut
from PySide6.QtWidgets import QFrame, QLabel, QToolBar, QVBoxLayout, QWidget

from app.ui.suggestions import SHOWN

if TYPE_CHECKING:
    from app.ui.main_window import MainWindow


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


class WindowActions(QObject):
    """The toolbar's actions and the shortcuts, each calling into the part of the window that
    does the work (the open chat, the queue, the inbox, the evolution page)."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        bar = QToolBar(self.tr("Main"))
        bar.setObjectName("mainToolbar")
        bar.setMovable(False)
        window.addToolBar(bar)
        chats, inbox = window.chats, window.inbox
        self.new_customer = self._action(
            self.tr("New customer"), inbox.new_customer, "Ctrl+N", "newCustomer"
        )
        self.replay = self._action(self.tr("Start replay"), inbox.toggle_replay, None, "replay")
        self.evolution = self._action(
            self.tr("Evolution"), window.toggle_evolution, "Ctrl+Shift+E", "evolution"
        )
        self.evolution.setCheckable(True)
        self.settings = self._action(
            self.tr("Settings"), window.open_settings, "Ctrl+,", "settings"
        )
        self.export = self._action(self.tr("Export chat"), chats.export_current, "Ctrl+E", "export")
        self.help = self._action(self.tr("Shortcuts"), window.overlay.toggle, "F1", "help")
        for act in (
            self.new_customer,
            self.replay,
            self.export,
            self.evolution,
            self.settings,
            self.help,
        ):
            bar.addAction(act)
        inbox.replaying.connect(
            lambda on: self.replay.setText(
                self.tr("Stop replay") if on else self.tr("Start replay")
            )
        )

        for keys, slot in (
            ("Ctrl+Return", self._view_call("send")),
            ("Ctrl+Enter", self._view_call("send")),
            ("Ctrl+R", self._view_call("request_draft")),
            ("Esc", self._escape),
            ("Ctrl+K", self._view_call("ask_cloud")),
            ("Ctrl+Up", lambda: self._rate(True)),
            ("Ctrl+Down", lambda: self._rate(False)),
            ("Ctrl+J", chats.next_waiting),
            ("Ctrl+PgDown", chats.next_tab),
            ("Ctrl+W", chats.close_current),
            ("Ctrl+F", self._focus_search),
        ):
            QShortcut(QKeySequence(keys), window).activated.connect(slot)
        for n in range(1, 10):
            QShortcut(QKeySequence(f"Ctrl+{n}"), window).activated.connect(
                lambda n=n: self._phrase(n)
            )
        for n in range(1, SHOWN + 1):
            QShortcut(QKeySequence(f"Alt+{n}"), window).activated.connect(
                lambda n=n: self._candidate(n)
            )

    def _action(
        self, text: str, slot: Callable[[], object], keys: str | None, name: str
    ) -> QAction:
        act = QAction(text, self.window)
        act.setObjectName(name)
        if keys:
            act.setShortcut(QKeySequence(keys))
            act.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            act.setToolTip(f"{text} ({keys})")
        act.triggered.connect(slot)
        self.window.addAction(act)
        return act

    def _view_call(self, method: str) -> Callable[[], None]:
        def call() -> None:
            view = self.window.chats.current_view()
            if view is not None:
                getattr(view, method)()

        return call

    def _escape(self) -> None:
        if self.window.overlay.isVisible():
            self.window.overlay.hide()
            return
        view = self.window.chats.current_view()
        if view is not None:
            view.stop()

    def _rate(self, up: bool) -> None:
        view = self.window.chats.current_view()
        if view is not None:
            view.rate(up)

    def _phrase(self, n: int) -> None:
        view = self.window.chats.current_view()
        phrases = self.window.services.settings.quick_phrases
        if view is not None and n <= len(phrases):
            view.insert_phrase(phrases[n - 1])

    def _candidate(self, n: int) -> None:
        view = self.window.chats.current_view()
        if view is not None:
            view.choose_candidate(n)

    def _focus_search(self) -> None:
        self.window.pages.setCurrentIndex(0)
        self.window.queue.search.setFocus()
        self.window.queue.search.selectAll()
