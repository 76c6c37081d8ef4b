"""The end model's draft for a chat's turn: queued on the model worker, streamed into the editor
(or beside the candidate the agent chose), then joined to the ranking, saved and scored."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QObject
from PySide6.QtGui import QTextCursor

from app.engine.conversation import Turn
from app.ui.workers import DraftOutcome
from app.ui.workspace import DraftRecord

if TYPE_CHECKING:
    from app.ui.conversation_view import ConversationView


class ModelDraft(QObject):
    """Follows the model worker's signals for this chat's job."""

    def __init__(self, view: ConversationView) -> None:
        super().__init__(view)
        self.view = view
        self.services = view.services
        self.job_id: int | None = None
        self.draft_id: int | None = None
        """The model's draft in the store (ratings of the model's candidate go to it)."""
        self.model_pending = False
        """This turn has candidates only: the end model was not ready to write its draft."""
        self.saving = False
        """The finished draft is being written to the store (Send waits for it)."""
        self.stream_text = ""
        worker = self.services.model
        worker.draft_started.connect(self._on_started)
        worker.draft_text.connect(self._on_text)
        worker.draft_finished.connect(self._on_finished)
        worker.draft_failed.connect(self._on_failed)

    @property
    def generating(self) -> bool:
        return self.job_id is not None

    def reset(self) -> None:
        self.saving = False
        self.draft_id = None
        self.model_pending = False
        self.stream_text = ""

    def start(self, turns: list[Turn]) -> None:
        self.model_pending = False
        self.job_id = self.services.model.draft(turns, self.services.shots_for)
        self.view.panel.status.setText(self.tr("queued…"))

    def cancel(self) -> None:
        if self.job_id is not None:
            self.services.model.cancel(self.job_id)

    def drop(self) -> None:
        """The agent sent another candidate: the draft is not needed."""
        self.cancel()
        self.job_id = None

    def _on_started(self, job_id: int) -> None:
        if job_id == self.job_id:
            self.view.panel.status.setText(self.tr("writing…"))

    def _on_text(self, job_id: int, text: str) -> None:
        if job_id != self.job_id:
            return
        self.stream_text = text
        panel = self.view.panel
        if self.view.current is None:
            self.view.choice.put(text)
            panel.editor.moveCursor(QTextCursor.MoveOperation.End)
        else:
            panel.candidates.show_writing(text)

    def _on_failed(self, job_id: int, message: str) -> None:
        if job_id != self.job_id:
            return
        self.job_id = None
        self.view.panel.status.setText(self.tr("no draft"))
        self.view.panel.candidates.show_writing(None)
        self.services.report(self.tr("Drafting a reply"), message)
        self.view.update_buttons()

    def _on_finished(self, job_id: int, outcome: DraftOutcome) -> None:
        if job_id != self.job_id:
            return
        view = self.view
        self.job_id = None
        view.panel.candidates.show_writing(None)
        if view.current is None:
            view.choice.put(outcome.text)
        status = self.tr("stopped") if outcome.cancelled else self.tr("ready")
        if outcome.shots:
            status += " · " + self.tr("past dialogues shown: {0}").format(outcome.shots)
        if outcome.notes:
            status += " · " + "; ".join(outcome.notes)
        view.panel.status.setText(status)
        if outcome.text and not outcome.cancelled and view.request is not None:
            # The model's draft joins the ranking (on the suggestion worker, after retrieval).
            token = view.draft_token
            self.services.rerank(
                view.request,
                outcome.text,
                lambda ranking: view.ranked(token, ranking),
                view.suggest_failed,
            )
        if outcome.text and view.reply_to_id is not None:
            self._save(view.reply_to_id, outcome)
        view.update_buttons()

    def _save(self, reply_to_id: int, outcome: DraftOutcome) -> None:
        view = self.view
        record = DraftRecord(
            reply_to_id,
            outcome.text,
            self.services.model.profile,
            outcome.latency_ms,
            outcome.prompt_tokens,
            outcome.completion_tokens,
            outcome.adapter,
        )
        # Saved on the scoring thread (a commit may wait for the disk), then scored there.
        self.saving = True
        token = view.draft_token
        workspace = self.services.workspace

        def saved(draft_id: int) -> None:
            if token != view.draft_token:
                return  # a newer draft was asked for meanwhile
            self.saving = False
            self.draft_id = draft_id
            view.update_buttons()
            view.review.score()

        def failed(exc: BaseException) -> None:
            if token == view.draft_token:
                self.saving = False
                view.update_buttons()
            self.services.report(self.tr("Saving the draft"), exc)

        self.services.scoring.submit(lambda: workspace.record_draft(record), saved, failed)
