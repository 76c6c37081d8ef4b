"""The reply candidates above the draft editor: where each came from, its score, the guard's badge.

The ranking itself (retrieval, re-ranking, the guard) is ``app.suggest``'s; these widgets only
show its ``Suggestion`` objects: the best three, one keypress (Alt+1…3) from the editor, and the
model's draft while it is still being written. ``MaskHighlighter`` marks the platform's
placeholders (``[数字x]``, ``[订单x]`` …) left in the editor for the agent to fill.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QCoreApplication, Qt, Signal
from PySide6.QtGui import QColor, QFont, QMouseEvent, QSyntaxHighlighter, QTextCharFormat
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget

from app.suggest.guard import Commitment
from app.suggest.masks import MASK
from app.ui.icons import IconLabel

if TYPE_CHECKING:
    from app.suggest.candidates import Suggestion

SHOWN = 3
"""Candidates one keypress away (Alt+1…3); the first is the draft."""

MASK_PATTERN = MASK
"""JD's placeholders for masked private data in past replies: [数字x], [订单x], [金额x] …"""

GUARD_COLOURS = ("#fde2c8", "#8a3b00")
"""The guard's warning: background and text colour."""
SOURCE_STYLE = "QLabel {{ border-radius: 4px; padding: 1px 6px; background: {bg}; color: #222; }}"
SOURCE_COLOURS = {"past": "#d2e3fc", "faq": "#e6f4ea", "model": "#f3e8fd"}


def source_name(source: str) -> str:
    """Where a candidate came from, in the UI language."""
    names = {
        "past": QCoreApplication.translate("Suggestions", "past reply"),
        "faq": QCoreApplication.translate("Suggestions", "FAQ"),
        "model": QCoreApplication.translate("Suggestions", "model"),
    }
    return names.get(source, source)


def commitment_kind_name(kind: str) -> str:
    names = {
        "time": QCoreApplication.translate("Suggestions", "time"),
        "price": QCoreApplication.translate("Suggestions", "price"),
        "refund": QCoreApplication.translate("Suggestions", "refund"),
        "compensation": QCoreApplication.translate("Suggestions", "compensation"),
        "gift": QCoreApplication.translate("Suggestions", "gift"),
    }
    return names.get(kind, kind)


def unsupported_text(unsupported: Sequence[Commitment]) -> str:
    """The guard's finding for a badge, e.g. "未经支持的承诺（时间）：20分钟内发货"; "" when none."""
    return "; ".join(
        QCoreApplication.translate("Suggestions", "Unsupported promise ({0}): {1}").format(
            commitment_kind_name(c.kind), c.text
        )
        for c in unsupported
    )


def score_text(score: float, uncalibrated: bool) -> str:
    text = f"{score:.2f}"
    if uncalibrated:
        text += " · " + QCoreApplication.translate("Suggestions", "uncalibrated")
    return text


def unfilled_masks(text: str) -> list[str]:
    """The placeholders still in ``text``, each once, in order."""
    return list(dict.fromkeys(MASK_PATTERN.findall(text)))


class MaskHighlighter(QSyntaxHighlighter):
    """Marks every unfilled placeholder in the draft editor, so the agent fills it before sending."""

    def __init__(self, document: Any) -> None:
        super().__init__(document)
        self.mask_format = QTextCharFormat()
        self.mask_format.setBackground(QColor("#ffe066"))
        self.mask_format.setForeground(QColor("#7a4f00"))
        self.mask_format.setFontWeight(QFont.Weight.Bold)

    def highlightBlock(self, text: str) -> None:
        for m in MASK_PATTERN.finditer(text):
            self.setFormat(m.start(), m.end() - m.start(), self.mask_format)


class CandidateRow(QFrame):
    """One candidate: its key, source, score, the guard's badge and the start of its text."""

    clicked = Signal(int)

    def __init__(self, index: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.index = index
        self.setObjectName(f"candidate{index + 1}")
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 1, 4, 1)
        self.key = QLabel(f"Alt+{index + 1}")
        self.key.setStyleSheet("color: #888")
        self.source = QLabel()
        self.source.setObjectName("candidateSource")
        self.score = QLabel()
        self.score.setObjectName("candidateScore")
        self.score.setStyleSheet("color: #555")
        self.guard = IconLabel("warning", "candidateGuard")
        self.guard.setBoxStyle(*GUARD_COLOURS)
        self.text = QLabel()
        self.text.setObjectName("candidateText")
        self.text.setTextFormat(Qt.TextFormat.PlainText)
        # A long reply is cut at the panel's edge (the tooltip has it all) rather than widening
        # the window to fit it.
        self.text.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        for w in (self.key, self.source, self.score, self.guard):
            layout.addWidget(w)
        layout.addWidget(self.text, 1)
        self.full_text = ""

    def show_candidate(
        self, suggestion: Suggestion | None, uncalibrated: bool, current: bool
    ) -> None:
        if suggestion is None:
            self.hide()
            return
        self.full_text = suggestion.text
        self.source.setText(source_name(suggestion.source))
        self.source.setStyleSheet(
            SOURCE_STYLE.format(bg=SOURCE_COLOURS.get(suggestion.source, "#eee"))
        )
        self.score.setText(score_text(suggestion.score, uncalibrated))
        self.score.setToolTip(
            self.tr(
                "The ranker's score; uncalibrated until a ranker trained on the shop's own "
                "chats is active (import past dialogues under Settings → Shop knowledge)"
            )
            if uncalibrated
            else self.tr("The ranker's score")
        )
        guard = unsupported_text(suggestion.unsupported)
        self.guard.setText(guard)
        self.guard.setVisible(bool(guard))
        self.text.setText(suggestion.text.replace("\n", " "))
        self.text.setToolTip(suggestion.text)
        self.setStyleSheet(
            f"#{self.objectName()} {{ border: 1px solid #1a73e8; border-radius: 4px; }}"
            if current
            else ""
        )
        self.show()

    def show_writing(self, text: str) -> None:
        """The model's draft, still being written (it joins the ranking when done)."""
        self.full_text = text
        self.key.setText("…")
        self.source.setText(source_name("model"))
        self.source.setStyleSheet(SOURCE_STYLE.format(bg=SOURCE_COLOURS["model"]))
        self.score.setText(self.tr("writing…"))
        self.score.setToolTip("")
        self.guard.hide()
        self.text.setText(text.replace("\n", " "))
        self.setStyleSheet("")
        self.show()

    def mousePressEvent(self, event: QMouseEvent) -> None:
        self.clicked.emit(self.index)


class CandidateList(QWidget):
    """The best ``SHOWN`` candidates; a click (or Alt+n) puts one into the editor."""

    chosen = Signal(int)
    """The index (0-based) of the candidate the agent picked."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("candidateList")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(1)
        self.rows = [CandidateRow(i) for i in range(SHOWN)]
        for row in self.rows:
            row.clicked.connect(self.chosen.emit)
            layout.addWidget(row)
            row.hide()
        self.writing = CandidateRow(SHOWN)
        self.writing.setObjectName("candidateWriting")
        layout.addWidget(self.writing)
        self.writing.hide()
        self.hide()

    def show_candidates(
        self, suggestions: Sequence[Suggestion], uncalibrated: bool, current: int | None
    ) -> None:
        for i, row in enumerate(self.rows):
            row.show_candidate(
                suggestions[i] if i < len(suggestions) else None, uncalibrated, i == current
            )
        self._update_visibility()

    def show_writing(self, text: str | None) -> None:
        if text is None:
            self.writing.hide()
        else:
            self.writing.show_writing(text)
        self._update_visibility()

    def visible_rows(self) -> list[CandidateRow]:
        return [row for row in self.rows if not row.isHidden()]

    def _update_visibility(self) -> None:
        self.setVisible(bool(self.visible_rows()) or not self.writing.isHidden())
