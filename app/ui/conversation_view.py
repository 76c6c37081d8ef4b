"""One open chat: the transcript, and the draft panel where the end model's reply streams in."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from PySide6.QtCore import QCoreApplication, Qt, QTimer, Signal
from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import (
    QComboBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from app.cloud.service import TeacherResult
from app.engine.conversation import Turn
from app.scoring.formula import ScoreResult
from app.scoring.record import is_calibrated, score_draft
from app.suggest.guard import Commitment, check_commitments
from app.ui.icons import IconLabel, icon
from app.ui.services import Ranking, Services, SuggestionRequest
from app.ui.suggestions import (
    GUARD_COLOURS,
    MASK_PATTERN,
    SHOWN,
    CandidateList,
    MaskHighlighter,
    unfilled_masks,
    unsupported_text,
)
from app.ui.workers import DraftOutcome
from app.ui.workspace import DraftRecord, MessageView, SentCandidates

GUARD_DELAY_MS = 300
"""The guard checks the agent's edits once typing pauses this long."""

BADGE_STYLE = "QLabel {{ border-radius: 4px; padding: 2px 6px; background: {bg}; color: {fg}; }}"


def badge_colours(value: float | None, threshold: float) -> tuple[str, str]:
    if value is None:
        return "#e0e0e0", "#555"
    if value < threshold:
        return "#f8d7da", "#721c24"
    return "#d4edda", "#155724"


class DraftPanel(QFrame):
    """The streamed draft, what to do with it, its scores, and the teacher's reply beside it."""

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


class ConversationView(QWidget):
    """A chat the agent has open: its transcript above, its draft below."""

    sent = Signal(int, str)
    """(conversation id, text) after the agent's reply is in the transcript."""
    changed = Signal(int)
    """The transcript changed (a message added)."""

    def __init__(
        self,
        services: Services,
        conversation_id: int,
        channel: str,
        key: str | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.services = services
        self.conversation_id = conversation_id
        self.channel = channel
        self.key = key
        self.job_id: int | None = None
        self.draft_id: int | None = None
        """The model's draft in the store (ratings of the model's candidate go to it)."""
        self.reply_to_id: int | None = None
        self.request: SuggestionRequest | None = None
        """This turn's candidates at the suggestion worker."""
        self.candidates: list[Any] = []
        """The ranking (``app.suggest``'s ``Suggestion`` objects), best first."""
        self.uncalibrated = True
        """No trained ranker was active for the ranking: its scores are not calibrated."""
        self.current: Any | None = None
        """The candidate in the editor; None while the model's draft streams into it."""
        self.auto = True
        """The agent has neither picked nor edited: a new ranking puts its best into the editor."""
        self.model_pending = False
        """This turn has candidates only: the end model was not ready to write its draft."""
        self._stream_text = ""
        self._putting = False
        self._thumbs: dict[tuple[str, str], bool | None] = {}
        self._knowledge_drafts: dict[tuple[str, str], int] = {}
        """Draft rows made for retrieved candidates the agent rated or sent."""
        self.closed = False
        """The tab was closed (its widgets may be gone): late results are dropped."""
        self._guard_timer = QTimer(self)
        self._guard_timer.setSingleShot(True)
        self._guard_timer.setInterval(GUARD_DELAY_MS)
        self._guard_timer.timeout.connect(self._guard_edited)
        self.cloud_reply: str | None = None
        self.cloud_pending = False
        self.saving = False
        """The finished draft is being written to the store (Send waits for it)."""
        self._draft_token = 0
        self.last_score: ScoreResult | None = None
        self._messages: list[MessageView] = []

        layout = QVBoxLayout(self)
        split = QSplitter(Qt.Orientation.Vertical)
        top = QWidget()
        top_layout = QVBoxLayout(top)
        top_layout.setContentsMargins(0, 0, 0, 0)
        self.transcript = QTextBrowser()
        self.transcript.setObjectName("transcript")
        self.transcript.setOpenLinks(False)
        top_layout.addWidget(self.transcript, 1)
        customer_row = QHBoxLayout()
        self.customer_input = QLineEdit()
        self.customer_input.setObjectName("customerInput")
        self.customer_input.setPlaceholderText(
            self.tr("Paste or type the customer's message and press Enter")
        )
        self.customer_button = QPushButton(self.tr("Add customer message"))
        customer_row.addWidget(self.customer_input, 1)
        customer_row.addWidget(self.customer_button)
        top_layout.addLayout(customer_row)
        self.panel = DraftPanel()
        split.addWidget(top)
        split.addWidget(self.panel)
        split.setSizes([420, 300])
        layout.addWidget(split)

        p = self.panel
        p.send_button.clicked.connect(self.send)
        p.regenerate_button.clicked.connect(self.request_draft)
        p.stop_button.clicked.connect(self.stop)
        p.up_button.clicked.connect(lambda: self.rate(True))
        p.down_button.clicked.connect(lambda: self.rate(False))
        p.cloud_button.clicked.connect(self.ask_cloud)
        p.phrases.activated.connect(self._phrase_chosen)
        p.editor.textChanged.connect(self._editor_changed)
        p.candidates.chosen.connect(lambda index: self.choose_candidate(index + 1))
        self.customer_input.returnPressed.connect(self._customer_typed)
        self.customer_button.clicked.connect(self._customer_typed)
        worker = services.model
        worker.draft_started.connect(self._on_started)
        worker.draft_text.connect(self._on_text)
        worker.draft_finished.connect(self._on_finished)
        worker.draft_failed.connect(self._on_failed)
        services.settings_changed.connect(self._settings_changed)
        p.set_phrases(services.settings.quick_phrases)
        self.reload()
        self._update_buttons()

    # --- state -------------------------------------------------------------------------------

    @property
    def generating(self) -> bool:
        return self.job_id is not None

    @property
    def following_model(self) -> bool:
        """The model's draft is streaming into the editor (no other candidate is in it)."""
        return self.generating and self.current is None

    def _current_is_model(self) -> bool:
        return self.current is None or self.current.source == "model"

    @property
    def thumbs(self) -> bool | None:
        """The agent's 👍/👎 on the candidate in the editor."""
        return self._thumbs.get(self._key(self.current))

    @staticmethod
    def _key(candidate: Any | None) -> tuple[str, str]:
        if candidate is None:
            return ("model", "")
        return (candidate.source, "" if candidate.source == "model" else candidate.text)

    def _update_buttons(self) -> None:
        p = self.panel
        has_text = bool(p.editor.toPlainText().strip())
        model = self._current_is_model()
        p.send_button.setEnabled(
            has_text and not self.following_model and not (self.saving and model)
        )
        p.stop_button.setEnabled(self.generating)
        p.regenerate_button.setEnabled(
            self.reply_to_id is not None or self._last_customer_id() is not None
        )
        for b in (p.up_button, p.down_button):
            b.setEnabled(self.draft_id is not None if model else self.reply_to_id is not None)
        p.cloud_button.setEnabled(self._last_customer_id() is not None and not self.cloud_pending)
        p.editor.setReadOnly(self.following_model)

    def _last_customer_id(self) -> int | None:
        for m in reversed(self._messages):
            if m.role == "customer":
                return m.id
        return None

    def _turns(self) -> list[Turn]:
        """The conversation up to the customer's latest message, from the transcript on screen."""
        turns = [
            Turn("customer" if m.role == "customer" else "agent", m.text)
            for m in self._messages
            if m.role in ("customer", "agent")
        ]
        while turns and turns[-1].role != "customer":
            turns.pop()
        return turns

    def needs_draft(self) -> bool:
        """The customer spoke last and no draft answers it yet (or only candidates do)."""
        if not self._messages or self._messages[-1].role != "customer" or self.generating:
            return False
        return self.reply_to_id != self._messages[-1].id or self.model_pending

    def _settings_changed(self) -> None:
        self.panel.set_phrases(self.services.settings.quick_phrases)
        self._show_model_score()

    def _show_model_score(self) -> None:
        """The scores of the model's draft, while it is the candidate in the editor."""
        result = self.last_score if self._current_is_model() else None
        self.panel.show_score(result, self.services.settings.low_score_threshold)

    # --- the transcript ----------------------------------------------------------------------

    def reload(self) -> None:
        self._messages = self.services.workspace.messages(self.conversation_id)
        parts = []
        for m in self._messages:
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
        self._update_buttons()

    def set_reference(self, reference: str | None) -> None:
        """Replay: what the real agent answered, for comparison."""
        if reference:
            self.panel.reference.setText(self.tr("The real agent answered: {0}").format(reference))
            self.panel.reference.show()
        else:
            self.panel.reference.hide()

    def add_customer_message(self, text: str) -> None:
        text = text.strip()
        if not text:
            return
        try:
            self.services.workspace.add_customer_message(self.conversation_id, text)
        except Exception as exc:
            self.services.report(self.tr("Saving the customer's message"), exc)
            return
        self.reload()
        self.changed.emit(self.conversation_id)
        self.request_draft()

    def _customer_typed(self) -> None:
        text = self.customer_input.text()
        self.customer_input.clear()
        self.add_customer_message(text)

    # --- drafting ----------------------------------------------------------------------------

    def request_draft(self, model: bool | None = None) -> None:
        """Candidates and the model's draft (again) for the customer's latest message.

        ``model``: whether the end model can write now (default: whether it is loaded). When it
        can't, the retrieved candidates come alone and the draft follows in `draft_when_ready`.
        """
        reply_to = self._last_customer_id()
        if reply_to is None:
            return
        if self.job_id is not None:
            self.services.model.cancel(self.job_id)
        turns = self._turns()
        self._reset_draft()
        self.reply_to_id = reply_to
        # The retrieved candidates come from their own worker, without waiting for the model.
        token = self._draft_token
        self.request = self.services.suggest(
            turns, lambda ranking: self._ranked(token, ranking), self._suggest_failed
        )
        if model is None:
            model = self.services.model.model is not None
        if model:
            self._start_model_draft(turns)
        else:
            self.model_pending = True
            self.panel.status.setText(self.tr("no end model yet: candidates only"))
            self._update_buttons()

    def draft_when_ready(self) -> None:
        """The end model is ready: it writes its draft for a turn that has candidates only,
        keeping them (and whatever the agent has done with them)."""
        if self.model_pending and not self.generating and self._last_customer_id() is not None:
            if self.reply_to_id == self._last_customer_id():
                self._start_model_draft(self._turns())
            else:
                self.request_draft(model=True)

    def _start_model_draft(self, turns: list[Turn]) -> None:
        self.model_pending = False
        self.job_id = self.services.model.draft(turns, self.services.shots_for)
        self.panel.status.setText(self.tr("queued…"))
        self._update_buttons()

    def _reset_draft(self) -> None:
        self._draft_token += 1
        self.saving = False
        self.draft_id = None
        self.cloud_reply = None
        self.last_score = None
        self.request = None
        self.model_pending = False
        self.candidates = []
        self.current = None
        self.auto = True
        self._stream_text = ""
        self._thumbs.clear()
        self._knowledge_drafts.clear()
        p = self.panel
        self._put("")
        p.up_button.setChecked(False)
        p.down_button.setChecked(False)
        p.cloud_box.hide()
        p.cloud_view.clear()
        p.show_score(None, 0.0)
        p.show_guard(())
        p.candidates.show_candidates([], self.uncalibrated, None)
        p.candidates.show_writing(None)

    def stop(self) -> None:
        if self.job_id is not None:
            self.services.model.cancel(self.job_id)

    def dispose(self) -> None:
        """The tab is closing: stop the draft; results still on their way are dropped."""
        self.stop()
        self.closed = True
        self._draft_token += 1  # the draft's save and its rankings see a newer turn
        self.draft_id = None  # and its score another draft
        self._guard_timer.stop()

    def _on_started(self, job_id: int) -> None:
        if job_id == self.job_id:
            self.panel.status.setText(self.tr("writing…"))

    def _on_text(self, job_id: int, text: str) -> None:
        if job_id != self.job_id:
            return
        self._stream_text = text
        if self.current is None:
            self._put(text)
            self.panel.editor.moveCursor(QTextCursor.MoveOperation.End)
        else:
            self.panel.candidates.show_writing(text)

    def _on_failed(self, job_id: int, message: str) -> None:
        if job_id != self.job_id:
            return
        self.job_id = None
        self.panel.status.setText(self.tr("no draft"))
        self.panel.candidates.show_writing(None)
        self.services.report(self.tr("Drafting a reply"), message)
        self._update_buttons()

    def _on_finished(self, job_id: int, outcome: DraftOutcome) -> None:
        if job_id != self.job_id:
            return
        self.job_id = None
        self.panel.candidates.show_writing(None)
        if self.current is None:
            self._put(outcome.text)
        status = self.tr("stopped") if outcome.cancelled else self.tr("ready")
        if outcome.shots:
            status += " · " + self.tr("past dialogues shown: {0}").format(outcome.shots)
        if outcome.notes:
            status += " · " + "; ".join(outcome.notes)
        self.panel.status.setText(status)
        if outcome.text and not outcome.cancelled and self.request is not None:
            # The model's draft joins the ranking (on the suggestion worker, after retrieval).
            token = self._draft_token
            self.services.rerank(
                self.request,
                outcome.text,
                lambda ranking: self._ranked(token, ranking),
                self._suggest_failed,
            )
        if outcome.text and self.reply_to_id is not None:
            record = DraftRecord(
                self.reply_to_id,
                outcome.text,
                self.services.model.profile,
                outcome.latency_ms,
                outcome.prompt_tokens,
                outcome.completion_tokens,
                outcome.adapter,
            )
            # Saved on the scoring thread (a commit may wait for the disk), then scored there.
            self.saving = True
            token = self._draft_token
            workspace = self.services.workspace

            def saved(draft_id: int) -> None:
                if token != self._draft_token:
                    return  # a newer draft was asked for meanwhile
                self.saving = False
                self.draft_id = draft_id
                self._update_buttons()
                self.score()

            def failed(exc: BaseException) -> None:
                if token == self._draft_token:
                    self.saving = False
                    self._update_buttons()
                self.services.report(self.tr("Saving the draft"), exc)

            self.services.scoring.submit(lambda: workspace.record_draft(record), saved, failed)
        self._update_buttons()

    # --- candidates --------------------------------------------------------------------------

    def _ranked(self, token: int, ranking: Ranking) -> None:
        """A ranking arrived: retrieval's at once, then again with the model's draft in it."""
        if token != self._draft_token:
            return  # for an earlier turn or draft
        self.candidates = list(ranking.suggestions)
        self.uncalibrated = ranking.uncalibrated
        if self.auto and self.candidates:
            self._take(self.candidates[0])
        elif self.current is not None:
            # The same candidate, scored again in the new ranking.
            key = self._key(self.current)
            self.current = next((c for c in self.candidates if self._key(c) == key), self.current)
        self._show_candidates()

    def _suggest_failed(self, exc: BaseException) -> None:
        where = QCoreApplication.translate("ConversationView", "Finding reply candidates")
        self.services.report(where, exc)

    def _put(self, text: str) -> None:
        """Set the editor's text as the view (not the agent) does."""
        self._putting = True
        try:
            self.panel.editor.setPlainText(text)
        finally:
            self._putting = False
        self.panel.show_mask_hint()

    def _editor_changed(self) -> None:
        if not self._putting:
            self.auto = False  # the agent's text: no ranking replaces it any more
            self.panel.show_mask_hint()
            if self.candidates:
                self._guard_timer.start()
        self._update_buttons()

    def _guard_edited(self) -> None:
        """The agent edited the text: check its promises against the same evidence (the
        conversation and the retrieved knowledge), so the badge says what is in the editor."""
        evidence = [t.text for t in self._turns()] + [
            c.text for c in self.candidates if c.source != "model"
        ]
        result = check_commitments(self.panel.editor.toPlainText(), evidence)
        self.panel.show_guard(result.unsupported)

    def _take(self, candidate: Any) -> None:
        """Put a candidate into the editor."""
        self._guard_timer.stop()
        self.current = candidate
        self._put(candidate.text)
        thumbs = self.thumbs
        self.panel.up_button.setChecked(thumbs is True)
        self.panel.down_button.setChecked(thumbs is False)
        self._show_model_score()
        self._show_candidates()
        self._update_buttons()

    def _show_candidates(self) -> None:
        shown = self.candidates[:SHOWN]
        index = next((i for i, c in enumerate(shown) if c is self.current), None)
        p = self.panel
        p.candidates.show_candidates(shown, self.uncalibrated, index)
        writing = self.generating and self.current is not None
        p.candidates.show_writing(self._stream_text if writing else None)
        self._show_guard()

    def _show_guard(self) -> None:
        current = self.current
        if current is None:
            self.panel.show_guard(())
        elif self.panel.editor.toPlainText() == current.text:
            self.panel.show_guard(current.unsupported)  # the ranker's finding
        else:
            self._guard_edited()

    def choose_candidate(self, n: int) -> None:
        """Alt+n: candidate n (1-based) into the editor, its first placeholder selected."""
        if not 1 <= n <= min(SHOWN, len(self.candidates)):
            return
        self.auto = False
        self._take(self.candidates[n - 1])
        editor = self.panel.editor
        found = MASK_PATTERN.search(editor.toPlainText())
        cursor = editor.textCursor()
        if found:  # the agent types over the first placeholder
            cursor.setPosition(found.start())
            cursor.setPosition(found.end(), QTextCursor.MoveMode.KeepAnchor)
        else:
            cursor.movePosition(QTextCursor.MoveOperation.End)
        editor.setTextCursor(cursor)
        editor.setFocus()

    def _draft_for_current(self) -> int | None:
        """The draft row that a rating or a send of the editor's candidate goes to; a retrieved
        candidate gets one (model profile ``knowledge:past`` / ``knowledge:faq``) when first
        needed, so its ratings and edits join the evolution data like the model's drafts."""
        candidate = self.current
        if candidate is None or candidate.source == "model" or self.reply_to_id is None:
            return self.draft_id
        key = self._key(candidate)
        if key not in self._knowledge_drafts:
            self._knowledge_drafts[key] = self.services.workspace.record_candidate_draft(
                self.reply_to_id, candidate
            )
        return self._knowledge_drafts[key]

    def _draft_of(self, candidate: Any) -> int | None:
        if candidate.source == "model":
            return self.draft_id
        return self._knowledge_drafts.get(self._key(candidate))

    # --- scores, ratings, the teacher ------------------------------------------------------

    def score(self) -> None:
        draft_id, cloud = self.draft_id, self.cloud_reply
        if draft_id is None:
            return
        services = self.services
        settings = services.settings

        def job() -> tuple[ScoreResult, bool]:
            scorer = services.scorer()
            result = score_draft(
                services.store, scorer, draft_id, cloud, settings.alpha, settings.theta
            )
            return result, is_calibrated(result.mode, scorer.versions["matching"])

        def done(scored: tuple[ScoreResult, bool]) -> None:
            result, calibrated = scored
            if draft_id != self.draft_id:
                return
            self.last_score = result
            self._show_model_score()
            # As the evolution loop: a score no trained matcher made never says "good enough".
            weak = result.final < services.settings.low_score_threshold or not calibrated
            if weak and self.cloud_reply is None and services.settings.label_weak_drafts:
                self.ask_cloud()

        services.scoring.submit(
            job, done, lambda exc: services.report(self.tr("Scoring the draft"), exc)
        )

    def rate(self, thumbs_up: bool) -> None:
        """👍/👎 the candidate in the editor (a second press of the same one takes it back)."""
        thumbs = None if self.thumbs is thumbs_up else thumbs_up
        try:
            draft_id = self._draft_for_current()
            if draft_id is None:
                return
            self.services.workspace.rate(draft_id, thumbs)
        except Exception as exc:
            self.services.report(self.tr("Saving the rating"), exc)
            return
        self._thumbs[self._key(self.current)] = thumbs
        self.panel.up_button.setChecked(thumbs is True)
        self.panel.down_button.setChecked(thumbs is False)
        if (
            self.thumbs is False
            and self.cloud_reply is None
            and self.services.settings.label_weak_drafts
        ):
            self.ask_cloud()

    def ask_cloud(self) -> None:
        """Ask the teacher (through the privacy firewall) and show its reply beside the draft."""
        if self.cloud_pending:
            return
        reply_to = self.reply_to_id or self._last_customer_id()
        if reply_to is None:
            return
        turns = self._turns()
        # The label answers the candidate in the editor when it has a draft row, else the model's.
        draft_id = self._knowledge_drafts.get(self._key(self.current), self.draft_id)
        token = self._draft_token
        services = self.services
        self.cloud_pending = True
        self.panel.cloud_box.show()
        self.panel.cloud_view.setPlainText(self.tr("Asking the teacher…"))
        self._update_buttons()

        def job() -> TeacherResult:
            return services.teacher().ask(turns, message_id=reply_to, draft_id=draft_id)

        def done(result: TeacherResult) -> None:
            if self.closed:
                return
            self.cloud_pending = False
            self._update_buttons()
            if token != self._draft_token:
                return
            self.cloud_reply = result.reply
            self.panel.cloud_view.setPlainText(result.reply)
            sent = json.dumps(result.sent.messages, ensure_ascii=False, indent=1)
            self.panel.cloud_view.setToolTip(
                self.tr("What was sent to {0} ({1}):").format(
                    result.answer.provider, result.answer.model
                )
                + "\n"
                + sent
            )
            self.panel.cloud_label.setText(
                self.tr("Teacher's reply ({0})").format(result.answer.provider)
                + (self.tr(" · cached") if result.cached else "")
            )
            self.score()

        def failed(exc: BaseException) -> None:
            if self.closed:  # the tab's widgets are gone; the banner is the window's
                where = QCoreApplication.translate("ConversationView", "Asking the teacher")
                services.report(where, exc)
                return
            self.cloud_pending = False
            self.panel.cloud_view.setPlainText(
                self.tr("The teacher could not answer: {0}").format(exc)
            )
            self._update_buttons()
            services.report(self.tr("Asking the teacher"), exc)

        services.cloud.submit(job, done, failed)

    def _phrase_chosen(self, index: int) -> None:
        phrase = self.panel.phrases.itemData(index)
        self.panel.phrases.setCurrentIndex(0)
        if phrase:
            self.insert_phrase(str(phrase))

    def insert_phrase(self, phrase: str) -> None:
        if self.following_model:
            return
        self.panel.editor.insertPlainText(phrase)
        self.panel.editor.setFocus()
        self._update_buttons()

    # --- sending -----------------------------------------------------------------------------

    def send(self) -> None:
        """Send the editor's text; the store learns which candidate it came from (and the
        ranking it was picked from)."""
        text = self.panel.editor.toPlainText().strip()
        if not text or self.following_model or (self.saving and self._current_is_model()):
            return
        try:
            draft_id = self._draft_for_current()
            shown = None
            if self.reply_to_id is not None and self.candidates:
                chosen = next((i for i, c in enumerate(self.candidates) if c is self.current), None)
                drafts = {
                    i: d
                    for i, c in enumerate(self.candidates)
                    if (d := self._draft_of(c)) is not None
                }
                shown = SentCandidates(self.reply_to_id, self.candidates, chosen, drafts)
            self.services.workspace.send(self.conversation_id, text, draft_id, self.thumbs, shown)
        except Exception as exc:
            self.services.report(self.tr("Sending the reply"), exc)
            return
        if self.job_id is not None:  # the agent sent another candidate: the draft is not needed
            self.services.model.cancel(self.job_id)
            self.job_id = None
        self._reset_draft()
        self.reply_to_id = self._last_customer_id()
        self.panel.status.setText(
            self.tr("sent at {0}").format(datetime.now(UTC).astimezone().strftime("%H:%M:%S"))
        )
        self.set_reference(None)
        self.reload()
        self.sent.emit(self.conversation_id, text)
        self.changed.emit(self.conversation_id)
