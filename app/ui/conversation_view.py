"""One open chat: the transcript, and the draft panel where the end model's reply streams in."""

from __future__ import annotations

import html
import json
from datetime import UTC, datetime

from PySide6.QtCore import Qt, Signal
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
from app.scoring.record import score_draft
from app.ui.services import Services
from app.ui.workers import DraftOutcome
from app.ui.workspace import DraftRecord, MessageView

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

        texts = QSplitter(Qt.Orientation.Horizontal)
        self.editor = QPlainTextEdit()
        self.editor.setObjectName("draftEditor")
        self.editor.setPlaceholderText(
            self.tr("The end model's draft appears here; edit it freely.")
        )
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
        self.up_button = QPushButton("👍")
        self.up_button.setCheckable(True)
        self.up_button.setToolTip(self.tr("Good draft (Ctrl+Up)"))
        self.down_button = QPushButton("👎")
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
        self.reply_to_id: int | None = None
        self.thumbs: bool | None = None
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
        p.editor.textChanged.connect(self._update_buttons)
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

    def _update_buttons(self) -> None:
        p = self.panel
        has_text = bool(p.editor.toPlainText().strip())
        p.send_button.setEnabled(has_text and not self.generating and not self.saving)
        p.stop_button.setEnabled(self.generating)
        p.regenerate_button.setEnabled(
            self.reply_to_id is not None or self._last_customer_id() is not None
        )
        for b in (p.up_button, p.down_button):
            b.setEnabled(self.draft_id is not None)
        p.cloud_button.setEnabled(self._last_customer_id() is not None and not self.cloud_pending)
        p.editor.setReadOnly(self.generating)

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
        """The customer spoke last and no draft answers it yet."""
        if not self._messages or self._messages[-1].role != "customer" or self.generating:
            return False
        return self.reply_to_id != self._messages[-1].id

    def _settings_changed(self) -> None:
        self.panel.set_phrases(self.services.settings.quick_phrases)
        self.panel.show_score(self.last_score, self.services.settings.low_score_threshold)

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

    def request_draft(self) -> None:
        """Draft (again) a reply to the customer's latest message."""
        reply_to = self._last_customer_id()
        if reply_to is None:
            return
        if self.job_id is not None:
            self.services.model.cancel(self.job_id)
        turns = self._turns()
        self._reset_draft()
        self.reply_to_id = reply_to
        self.job_id = self.services.model.draft(turns, self.services.shots_for)
        self.panel.status.setText(self.tr("queued…"))
        self._update_buttons()

    def _reset_draft(self) -> None:
        self._draft_token += 1
        self.saving = False
        self.draft_id = None
        self.thumbs = None
        self.cloud_reply = None
        self.last_score = None
        p = self.panel
        p.editor.clear()
        p.up_button.setChecked(False)
        p.down_button.setChecked(False)
        p.cloud_box.hide()
        p.cloud_view.clear()
        p.show_score(None, 0.0)

    def stop(self) -> None:
        if self.job_id is not None:
            self.services.model.cancel(self.job_id)

    def _on_started(self, job_id: int) -> None:
        if job_id == self.job_id:
            self.panel.status.setText(self.tr("writing…"))

    def _on_text(self, job_id: int, text: str) -> None:
        if job_id != self.job_id:
            return
        self.panel.editor.setPlainText(text)
        self.panel.editor.moveCursor(QTextCursor.MoveOperation.End)

    def _on_failed(self, job_id: int, message: str) -> None:
        if job_id != self.job_id:
            return
        self.job_id = None
        self.panel.status.setText(self.tr("no draft"))
        self.services.report(self.tr("Drafting a reply"), message)
        self._update_buttons()

    def _on_finished(self, job_id: int, outcome: DraftOutcome) -> None:
        if job_id != self.job_id:
            return
        self.job_id = None
        self.panel.editor.setPlainText(outcome.text)
        status = self.tr("stopped") if outcome.cancelled else self.tr("ready")
        if outcome.shots:
            status += " · " + self.tr("past dialogues shown: {0}").format(outcome.shots)
        if outcome.notes:
            status += " · " + "; ".join(outcome.notes)
        self.panel.status.setText(status)
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

    # --- scores, ratings, the teacher ------------------------------------------------------

    def score(self) -> None:
        draft_id, cloud = self.draft_id, self.cloud_reply
        if draft_id is None:
            return
        services = self.services
        settings = services.settings

        def job() -> ScoreResult:
            return score_draft(
                services.store, services.scorer(), draft_id, cloud, settings.alpha, settings.theta
            )

        def done(result: ScoreResult) -> None:
            if draft_id != self.draft_id:
                return
            self.last_score = result
            self.panel.show_score(result, services.settings.low_score_threshold)
            weak = result.final < services.settings.low_score_threshold
            if weak and self.cloud_reply is None and services.settings.label_weak_drafts:
                self.ask_cloud()

        services.scoring.submit(
            job, done, lambda exc: services.report(self.tr("Scoring the draft"), exc)
        )

    def rate(self, thumbs_up: bool) -> None:
        if self.draft_id is None:
            return
        self.thumbs = None if self.thumbs is thumbs_up else thumbs_up
        self.panel.up_button.setChecked(self.thumbs is True)
        self.panel.down_button.setChecked(self.thumbs is False)
        try:
            self.services.workspace.rate(self.draft_id, self.thumbs)
        except Exception as exc:
            self.services.report(self.tr("Saving the rating"), exc)
            return
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
        draft_id = self.draft_id
        services = self.services
        self.cloud_pending = True
        self.panel.cloud_box.show()
        self.panel.cloud_view.setPlainText(self.tr("Asking the teacher…"))
        self._update_buttons()

        def job() -> TeacherResult:
            return services.teacher().ask(turns, message_id=reply_to, draft_id=draft_id)

        def done(result: TeacherResult) -> None:
            self.cloud_pending = False
            self._update_buttons()
            if draft_id != self.draft_id:
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
        if self.generating:
            return
        self.panel.editor.insertPlainText(phrase)
        self.panel.editor.setFocus()
        self._update_buttons()

    # --- sending -----------------------------------------------------------------------------

    def send(self) -> None:
        text = self.panel.editor.toPlainText().strip()
        if not text or self.generating or self.saving:
            return
        try:
            self.services.workspace.send(self.conversation_id, text, self.draft_id, self.thumbs)
        except Exception as exc:
            self.services.report(self.tr("Sending the reply"), exc)
            return
        self._reset_draft()
        self.reply_to_id = self._last_customer_id()
        self.panel.status.setText(
            self.tr("sent at {0}").format(datetime.now(UTC).astimezone().strftime("%H:%M:%S"))
        )
        self.set_reference(None)
        self.reload()
        self.sent.emit(self.conversation_id, text)
        self.changed.emit(self.conversation_id)
