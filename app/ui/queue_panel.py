"""The window's customer queue (who waits, for how long, a search box) and its error banner."""

from __future__ import annotations

from datetime import UTC, datetime

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.ui.icons import icon
from app.ui.workspace import ConversationSummary


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
