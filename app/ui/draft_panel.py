"""The draft panel under a chat: the reply candidates, the editor the draft streams into, its
scores, the guard's warning, the teacher's reply, and the buttons (send, rate, ask)."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app.scoring.formula import ScoreResult
from app.suggest.guard import Commitment
from app.ui.icons import IconLabel, icon
from app.ui.suggestions import (
    GUARD_COLOURS,
    CandidateList,
    MaskHighlighter,
    unfilled_masks,
    unsupported_text,
)

BADGE_STYLE = "QLabel {{ border-radius: 4px; padding: 2px 6px; background: {bg}; color: {fg}; }}"


def badge_colours(value: float | None, threshold: float) -> tuple[str, str]:
    if value is None:
        return "#e0e0e0", "#555"
    if value < threshold:
        return "#f8d7da", "#721c24"
    return "#d4edda", "#155724"


class DraftPanel(QFrame):
    """The streamed draft, what to do with it, its scores, and the teacher's reply beside it."""

    phrase_chosen = Signal(str)
    """A quick phrase picked from the list, to insert into the editor."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("draftPanel")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        layout = QVBoxLayout(self)

        header = QHBoxLayout()
        self.title = QLabel(self.tr("Draft"))
        self.title.setStyleSheet("font-weight: bold")
        self.status = QLabel("")
        self.status.setObjectName("draftStatus")
        header.addWidget(self.title)
        header.addWidget(self.status, 1)
        self.similarity_badge = QLabel()
        self.match_badge = QLabel()
        self.final_badge = QLabel()
        self.fallback_badge = QLabel()
        for badge in (self.similarity_badge, self.match_badge, self.final_badge):
            header.addWidget(badge)
        header.addWidget(self.fallback_badge)
        layout.addLayout(header)

        self.guard_badge = IconLabel("warning", "guardBadge")
        self.guard_badge.setBoxStyle(*GUARD_COLOURS)
        self.guard_badge.setWordWrap(True)
        self.guard_badge.setToolTip(
            self.tr(
                "A promise that neither the conversation nor the shop's knowledge supports: "
                "check it before sending"
            )
        )
        self.guard_badge.hide()
        layout.addWidget(self.guard_badge)
        self.candidates = CandidateList()
        layout.addWidget(self.candidates)

        texts = QSplitter(Qt.Orientation.Horizontal)
        self.editor = QPlainTextEdit()
        self.editor.setObjectName("draftEditor")
        self.editor.setPlaceholderText(
            self.tr("The end model's draft appears here; edit it freely.")
        )
        self.masks = MaskHighlighter(self.editor.document())
        self.mask_hint = QLabel()
        self.mask_hint.setObjectName("maskHint")
        self.mask_hint.setStyleSheet("color: #7a4f00")
        self.mask_hint.hide()
        self.cloud_box = QWidget()
        cloud_layout = QVBoxLayout(self.cloud_box)
        cloud_layout.setContentsMargins(0, 0, 0, 0)
        self.cloud_label = QLabel(self.tr("Teacher's reply"))
        self.cloud_view = QPlainTextEdit()
        self.cloud_view.setObjectName("cloudReply")
        self.cloud_view.setReadOnly(True)
        cloud_layout.addWidget(self.cloud_label)
        cloud_layout.addWidget(self.cloud_view)
        self.cloud_box.hide()
        texts.addWidget(self.editor)
        texts.addWidget(self.cloud_box)
        layout.addWidget(texts, 1)
        layout.addWidget(self.mask_hint)

        self.reference = QLabel()
        self.reference.setObjectName("replayReference")
        self.reference.setWordWrap(True)
        self.reference.setStyleSheet("color: #666")
        self.reference.hide()
        layout.addWidget(self.reference)

        buttons = QHBoxLayout()
        self.send_button = QPushButton(self.tr("Send"))
        self.send_button.setObjectName("sendButton")
        self.regenerate_button = QPushButton(self.tr("Regenerate"))
        self.stop_button = QPushButton(self.tr("Stop"))
        self.up_button = QPushButton(icon("thumbs-up"), "")
        self.up_button.setObjectName("thumbsUp")
        self.up_button.setAccessibleName(self.tr("Good draft"))
        self.up_button.setCheckable(True)
        self.up_button.setToolTip(self.tr("Good draft (Ctrl+Up)"))
        self.down_button = QPushButton(icon("thumbs-down"), "")
        self.down_button.setObjectName("thumbsDown")
        self.down_button.setAccessibleName(self.tr("Bad draft"))
        self.down_button.setCheckable(True)
        self.down_button.setToolTip(
            self.tr("Bad draft (Ctrl+Down): the teacher is asked for a label")
        )
        self.cloud_button = QPushButton(self.tr("Ask cloud"))
        self.phrases = QComboBox()
        self.phrases.setObjectName("quickPhrases")
        self.phrases.setToolTip(self.tr("Quick phrases (Ctrl+1 … Ctrl+9)"))
        for b in (
            self.send_button,
            self.regenerate_button,
            self.stop_button,
            self.up_button,
            self.down_button,
            self.cloud_button,
        ):
            buttons.addWidget(b)
        buttons.addStretch(1)
        buttons.addWidget(self.phrases)
        layout.addLayout(buttons)
        self.phrases.activated.connect(self._phrase_picked)

    def _phrase_picked(self, index: int) -> None:
        phrase = self.phrases.itemData(index)
        self.phrases.setCurrentIndex(0)
        if phrase:
            self.phrase_chosen.emit(str(phrase))

    def show_reference(self, reference: str | None) -> None:
        """Replay: what the real agent answered, for comparison."""
        if reference:
            self.reference.setText(self.tr("The real agent answered: {0}").format(reference))
            self.reference.show()
        else:
            self.reference.hide()

    def set_phrases(self, phrases: list[str]) -> None:
        self.phrases.blockSignals(True)
        self.phrases.clear()
        self.phrases.addItem(self.tr("Quick phrases…"))
        for n, phrase in enumerate(phrases, start=1):
            label = f"{n}. {phrase}" if n <= 9 else phrase
            self.phrases.addItem(label, phrase)
        self.phrases.setCurrentIndex(0)
        self.phrases.blockSignals(False)

    def show_guard(self, unsupported: Sequence[Commitment]) -> None:
        """The guard's badge for the candidate in the editor; hidden when it promises nothing
        unsupported."""
        text = unsupported_text(unsupported)
        self.guard_badge.setText(text)
        self.guard_badge.setVisible(bool(text))

    def show_mask_hint(self) -> None:
        masks = unfilled_masks(self.editor.toPlainText())
        self.mask_hint.setText(
            self.tr("Fill in before sending: {0}").format(" ".join(masks)) if masks else ""
        )
        self.mask_hint.setVisible(bool(masks))

    def show_score(self, result: ScoreResult | None, threshold: float) -> None:
        def put(label: QLabel, name: str, value: float | None) -> None:
            bg, fg = badge_colours(value, threshold if label is self.final_badge else 0.0)
            label.setStyleSheet(BADGE_STYLE.format(bg=bg, fg=fg))
            label.setText(f"{name} {'–' if value is None else f'{value:.2f}'}")

        if result is None:
            for label in (self.similarity_badge, self.match_badge, self.final_badge):
                label.clear()
                label.setStyleSheet("")
            self.fallback_badge.clear()
            return
        put(self.similarity_badge, self.tr("similarity"), result.similarity)
        put(self.match_badge, self.tr("match"), result.matching)
        put(self.final_badge, self.tr("Final"), result.final)
        self.similarity_badge.setToolTip(
            self.tr("Similarity to the teacher's reply; – until the teacher has answered")
        )
        self.match_badge.setToolTip(
            self.tr(
                "How well the draft answers the customer (matcher); a draft that only repeats "
                "the customer's message scores 0"
            )
        )
        self.final_badge.setToolTip(
            self.tr("Final = α·similarity + (1−α)·match (α {0:.2f}, Θ {1:.2f})").format(
                result.alpha, result.theta
            )
        )
        if result.fallback:
            self.fallback_badge.setText(self.tr("fallback: similarity only"))
            self.fallback_badge.setToolTip(
                self.tr("The teacher's own match was below Θ, so Final = similarity")
            )
        elif result.mode == "match_only":
            self.fallback_badge.setText(self.tr("match only"))
            self.fallback_badge.setToolTip(
                self.tr("No teacher reply yet, or it only repeats the customer: Final = match")
            )
        else:
            self.fallback_badge.setText("")
