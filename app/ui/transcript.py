"""A chat's transcript (speech bubbles) and the line for typing a customer's message into it."""

from __future__ import annotations

import html
from collections.abc import Sequence

from PySide6.QtCore import Signal
from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from app.engine.conversation import Turn
from app.ui.workspace import MessageView


class TranscriptPane(QWidget):
    """``typed`` carries what the agent entered as the customer's message (manual channel)."""

    typed = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.transcript = QTextBrowser()
        self.transcript.setObjectName("transcript")
        self.transcript.setOpenLinks(False)
        layout.addWidget(self.transcript, 1)
        row = QHBoxLayout()
        self.customer_input = QLineEdit()
        self.customer_input.setObjectName("customerInput")
        self.customer_input.setPlaceholderText(
            self.tr("Paste or type the customer's message and press Enter")
        )
        self.customer_button = QPushButton(self.tr("Add customer message"))
        row.addWidget(self.customer_input, 1)
        row.addWidget(self.customer_button)
        layout.addLayout(row)
        self.messages: list[MessageView] = []
        self.customer_input.returnPressed.connect(self._typed)
        self.customer_button.clicked.connect(self._typed)

    def _typed(self) -> None:
        text = self.customer_input.text()
        self.customer_input.clear()
        self.typed.emit(text)

    def last_message(self) -> MessageView | None:
        return self.messages[-1] if self.messages else None

    def last_customer_id(self) -> int | None:
        for m in reversed(self.messages):
            if m.role == "customer":
                return m.id
        return None

    def turns(self) -> list[Turn]:
        """The conversation up to the customer's latest message, as shown."""
        turns = [
            Turn("customer" if m.role == "customer" else "agent", m.text)
            for m in self.messages
            if m.role in ("customer", "agent")
        ]
        while turns and turns[-1].role != "customer":
            turns.pop()
        return turns

    def show_messages(self, messages: Sequence[MessageView]) -> None:
        self.messages = list(messages)
        parts = []
        for m in messages:
            stamp = m.sent_at.astimezone().strftime("%H:%M:%S")
            text = html.escape(m.text).replace("\n", "<br>")
            if m.role == "customer":
                who, colour, align = self.tr("Customer"), "#f1f3f4", "left"
            elif m.role == "agent":
                who, colour, align = self.tr("Shop"), "#dcf8c6", "right"
            else:
                who, colour, align = self.tr("System"), "#fff3cd", "center"
            # A bubble: a coloured cell in a table floated to the speaker's side.
            parts.append(
                f'<p align="{align}" style="margin:6px 0 0 0; color:#888; font-size:small">'
                f"{html.escape(who)} · {stamp}</p>"
                f'<table align="{align}" cellspacing="0" cellpadding="7" '
                f'style="background-color:{colour}; margin-bottom:4px"><tr><td>{text}</td></tr>'
                "</table>"
            )
        self.transcript.setHtml("".join(parts))
        self.transcript.moveCursor(QTextCursor.MoveOperation.End)
        self.transcript.ensureCursorVisible()
