"""One open chat: the transcript above, the draft panel below, where the end model's reply streams
in beside the retrieved candidates; rating, the teacher and sending.

The view holds the turn's state (the draft job, its row, the token that tells a late result from
a current one); the candidates are `CandidateChoice`'s, the scores and the teacher's reply
`DraftReview`'s.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from PySide6.QtCore import QCoreApplication, Qt, Signal
from PySide6.QtWidgets import QSplitter, QVBoxLayout, QWidget

from app.engine.conversation import Turn
from app.scoring.formula import ScoreResult
from app.ui.candidate_choice import CandidateChoice
from app.ui.draft_panel import DraftPanel
from app.ui.draft_review import DraftReview
from app.ui.model_draft import ModelDraft
from app.ui.services import Ranking, Services, SuggestionRequest
from app.ui.transcript import TranscriptPane


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
        self.reply_to_id: int | None = None
        self.request: SuggestionRequest | None = None
        """This turn's candidates at the suggestion worker."""
        self.closed = False
        """The tab was closed (its widgets may be gone): late results are dropped."""
        self.draft_token = 0
        """Counts turns and drafts: a result for an earlier one is dropped."""

        layout = QVBoxLayout(self)
        split = QSplitter(Qt.Orientation.Vertical)
        self.pane = TranscriptPane()
        self.transcript = self.pane.transcript
        self.customer_input = self.pane.customer_input
        self.panel = DraftPanel()
        split.addWidget(self.pane)
        split.addWidget(self.panel)
        split.setSizes([420, 300])
        layout.addWidget(split)
        self.draft = ModelDraft(self)
        self.choice = CandidateChoice(
            self.panel,
            services,
            self.turns,
            lambda: self.draft.stream_text if self.generating else None,
            self,
        )
        self.review = DraftReview(self)

        p = self.panel
        p.send_button.clicked.connect(self.send)
        # Not connected directly: clicked(bool) would pass False as request_draft's ``model``.
        p.regenerate_button.clicked.connect(lambda: self.request_draft())
        p.stop_button.clicked.connect(self.stop)
        p.up_button.clicked.connect(lambda: self.rate(True))
        p.down_button.clicked.connect(lambda: self.rate(False))
        p.cloud_button.clicked.connect(self.ask_cloud)
        p.phrase_chosen.connect(self.insert_phrase)
        p.editor.textChanged.connect(self.choice.edited)  # first: update_buttons reads its state
        p.editor.textChanged.connect(self.update_buttons)
        self.pane.typed.connect(self.add_customer_message)
        self.choice.taken.connect(self._show_model_score)
        self.choice.taken.connect(self.update_buttons)
        self.review.scored.connect(self._show_model_score)
        self.review.changed.connect(self.update_buttons)
        services.settings_changed.connect(self._settings_changed)
        p.set_phrases(services.settings.quick_phrases)
        self.reload()
        self.update_buttons()

    # --- state -------------------------------------------------------------------------------

    @property
    def candidates(self) -> list[Any]:
        """The ranking (``app.suggest``'s ``Suggestion`` objects), best first."""
        return self.choice.candidates

    @property
    def current(self) -> Any | None:
        """The candidate in the editor; None while the model's draft streams into it."""
        return self.choice.current

    @property
    def thumbs(self) -> bool | None:
        """The agent's rating of the candidate in the editor."""
        return self.choice.thumbs

    @property
    def cloud_reply(self) -> str | None:
        return self.review.cloud_reply

    @property
    def cloud_pending(self) -> bool:
        return self.review.pending

    @property
    def last_score(self) -> ScoreResult | None:
        return self.review.last_score

    @property
    def draft_id(self) -> int | None:
        """The model's draft in the store (ratings of the model's candidate go to it)."""
        return self.draft.draft_id

    @property
    def model_pending(self) -> bool:
        return self.draft.model_pending

    @property
    def saving(self) -> bool:
        return self.draft.saving

    @property
    def generating(self) -> bool:
        return self.draft.generating

    @property
    def following_model(self) -> bool:
        """The model's draft is streaming into the editor (no other candidate is in it)."""
        return self.generating and self.current is None

    def update_buttons(self) -> None:
        p = self.panel
        has_text = bool(p.editor.toPlainText().strip())
        model = self.choice.current_is_model()
        p.send_button.setEnabled(
            has_text and not self.following_model and not (self.saving and model)
        )
        p.stop_button.setEnabled(self.generating)
        p.regenerate_button.setEnabled(
            self.reply_to_id is not None or self.last_customer_id() is not None
        )
        for b in (p.up_button, p.down_button):
            b.setEnabled(self.draft_id is not None if model else self.reply_to_id is not None)
        p.cloud_button.setEnabled(self.last_customer_id() is not None and not self.cloud_pending)
        p.editor.setReadOnly(self.following_model)

    def last_customer_id(self) -> int | None:
        return self.pane.last_customer_id()

    def turns(self) -> list[Turn]:
        """The conversation up to the customer's latest message, from the transcript on screen."""
        return self.pane.turns()

    def needs_draft(self) -> bool:
        """The customer spoke last and no draft answers it yet (or only candidates do)."""
        last = self.pane.last_message()
        if last is None or last.role != "customer" or self.generating:
            return False
        return self.reply_to_id != last.id or self.model_pending

    def _settings_changed(self) -> None:
        self.panel.set_phrases(self.services.settings.quick_phrases)
        self._show_model_score()

    def _show_model_score(self) -> None:
        """The scores of the model's draft, while it is the candidate in the editor."""
        result = self.last_score if self.choice.current_is_model() else None
        self.panel.show_score(result, self.services.settings.low_score_threshold)

    # --- the transcript ----------------------------------------------------------------------

    def reload(self) -> None:
        self.pane.show_messages(self.services.workspace.messages(self.conversation_id))
        self.update_buttons()

    def set_reference(self, reference: str | None) -> None:
        """Replay: what the real agent answered, for comparison."""
        self.panel.show_reference(reference)

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

    # --- drafting ----------------------------------------------------------------------------

    def request_draft(self, model: bool | None = None) -> None:
        """Candidates and the model's draft (again) for the customer's latest message.

        ``model``: whether the end model can write now (default: whether it is loaded). When it
        can't, the retrieved candidates come alone and the draft follows in `draft_when_ready`.
        """
        reply_to = self.last_customer_id()
        if reply_to is None:
            return
        self.draft.cancel()
        turns = self.turns()
        self._reset_draft()
        self.reply_to_id = reply_to
        # The retrieved candidates come from their own worker, without waiting for the model.
        token = self.draft_token
        self.request = self.services.suggest(
            turns, lambda ranking: self.ranked(token, ranking), self.suggest_failed
        )
        if model is None:
            model = self.services.model.model is not None
        if model:
            self.draft.start(turns)
        else:
            self.draft.model_pending = True
            self.panel.status.setText(self.tr("no end model yet: candidates only"))
        self.update_buttons()

    def draft_when_ready(self) -> None:
        """The end model is ready: it writes its draft for a turn that has candidates only,
        keeping them (and whatever the agent has done with them)."""
        if self.model_pending and not self.generating and self.last_customer_id() is not None:
            if self.reply_to_id == self.last_customer_id():
                self.draft.start(self.turns())
                self.update_buttons()
            else:
                self.request_draft(model=True)

    def _reset_draft(self) -> None:
        self.draft_token += 1
        self.request = None
        self.draft.reset()
        self.choice.reset()
        self.review.reset()
        self.panel.show_score(None, 0.0)

    def stop(self) -> None:
        self.draft.cancel()

    def dispose(self) -> None:
        """The tab is closing: stop the draft; results still on their way are dropped."""
        self.stop()
        self.closed = True
        self.draft_token += 1  # the draft's save and its rankings see a newer turn
        self.draft.draft_id = None  # and its score another draft
        self.choice.stop()

    # --- candidates --------------------------------------------------------------------------

    def ranked(self, token: int, ranking: Ranking) -> None:
        if token == self.draft_token:  # else for an earlier turn or draft
            self.choice.ranked(ranking)

    def suggest_failed(self, exc: BaseException) -> None:
        where = QCoreApplication.translate("ConversationView", "Finding reply candidates")
        self.services.report(where, exc)

    def choose_candidate(self, n: int) -> None:
        """Alt+n: candidate n (1-based) into the editor, its first placeholder selected."""
        self.choice.choose(n)

    # --- scores, ratings, the teacher ------------------------------------------------------

    def rate(self, thumbs_up: bool) -> None:
        """Rate the candidate in the editor good or bad (pressing the same again takes it back)."""
        self.review.rate(thumbs_up)

    def ask_cloud(self) -> None:
        """Ask the teacher (through the privacy firewall) and show its reply beside the draft."""
        self.review.ask()

    def insert_phrase(self, phrase: str) -> None:
        if self.following_model:
            return
        self.panel.editor.insertPlainText(phrase)
        self.panel.editor.setFocus()
        self.update_buttons()

    # --- sending -----------------------------------------------------------------------------

    def send(self) -> None:
        """Send the editor's text; the store learns which candidate it came from (and the
        ranking it was picked from)."""
        text = self.panel.editor.toPlainText().strip()
        choice = self.choice
        if not text or self.following_model or (self.saving and choice.current_is_model()):
            return
        try:
            draft_id = choice.draft_for_current(self.reply_to_id, self.draft_id)
            shown = choice.shown(self.reply_to_id, self.draft_id)
            self.services.workspace.send(self.conversation_id, text, draft_id, self.thumbs, shown)
        except Exception as exc:
            self.services.report(self.tr("Sending the reply"), exc)
            return
        self.draft.drop()  # the agent may have sent another candidate: the draft is not needed
        self._reset_draft()
        self.reply_to_id = self.last_customer_id()
        self.panel.status.setText(
            self.tr("sent at {0}").format(datetime.now(UTC).astimezone().strftime("%H:%M:%S"))
        )
        self.set_reference(None)
        self.reload()
        self.sent.emit(self.conversation_id, text)
        self.changed.emit(self.conversation_id)
