"""A chat's draft reviewed: scored on the scoring worker, and the teacher asked for its reply (the
label) on the cloud worker, through the privacy firewall; a weak score asks by itself."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from PySide6.QtCore import QCoreApplication, QObject, Signal

from app.cloud.service import TeacherResult
from app.scoring.formula import ScoreResult
from app.scoring.record import is_calibrated, score_draft

if TYPE_CHECKING:
    from app.ui.conversation_view import ConversationView


class DraftReview(QObject):
    """The scores of the model's draft and the teacher's reply for the chat's current turn."""

    scored = Signal()
    """``last_score`` changed."""
    changed = Signal()
    """A teacher request started or ended (the Ask button follows ``pending``)."""

    def __init__(self, view: ConversationView) -> None:
        super().__init__(view)
        self.view = view
        self.services = view.services
        self.cloud_reply: str | None = None
        self.pending = False
        """A teacher request is on its way."""
        self.last_score: ScoreResult | None = None

    def reset(self) -> None:
        self.cloud_reply = None
        self.last_score = None
        self.view.panel.cloud_box.hide()
        self.view.panel.cloud_view.clear()

    def score(self) -> None:
        draft_id, cloud = self.view.draft_id, self.cloud_reply
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
            if draft_id != self.view.draft_id:
                return
            self.last_score = result
            self.scored.emit()
            # As the evolution loop: a score no trained matcher made never says "good enough".
            weak = result.final < services.settings.low_score_threshold or not calibrated
            if weak and self.cloud_reply is None and services.settings.label_weak_drafts:
                self.ask()

        services.scoring.submit(
            job, done, lambda exc: services.report(self.tr("Scoring the draft"), exc)
        )

    def rate(self, thumbs_up: bool) -> None:
        """Rate the candidate in the editor (a second press of the same rating takes it back);
        a bad rating asks the teacher for a label."""
        view = self.view
        thumbs = None if view.thumbs is thumbs_up else thumbs_up
        try:
            draft_id = view.choice.draft_for_current(view.reply_to_id, view.draft_id)
            if draft_id is None:
                return
            self.services.workspace.rate(draft_id, thumbs)
        except Exception as exc:
            self.services.report(self.tr("Saving the rating"), exc)
            return
        view.choice.rated(thumbs)
        if (
            thumbs is False
            and self.cloud_reply is None
            and self.services.settings.label_weak_drafts
        ):
            self.ask()

    def ask(self) -> None:
        """Ask the teacher (through the privacy firewall) and show its reply beside the draft."""
        view = self.view
        if self.pending:
            return
        reply_to = view.reply_to_id or view.last_customer_id()
        if reply_to is None:
            return
        turns = view.turns()
        # The label answers the candidate in the editor when it has a draft row, else the model's.
        draft_id = view.choice.label_draft(view.draft_id)
        token = view.draft_token
        services = self.services
        panel = view.panel
        self.pending = True
        panel.cloud_box.show()
        panel.cloud_view.setPlainText(self.tr("Asking the teacher…"))
        self.changed.emit()

        def job() -> TeacherResult:
            return services.teacher().ask(turns, message_id=reply_to, draft_id=draft_id)

        def done(result: TeacherResult) -> None:
            if view.closed:
                return
            self.pending = False
            self.changed.emit()
            if token != view.draft_token:
                return
            self.cloud_reply = result.reply
            panel.cloud_view.setPlainText(result.reply)
            sent = json.dumps(result.sent.messages, ensure_ascii=False, indent=1)
            panel.cloud_view.setToolTip(
                self.tr("What was sent to {0} ({1}):").format(
                    result.answer.provider, result.answer.model
                )
                + "\n"
                + sent
            )
            panel.cloud_label.setText(
                self.tr("Teacher's reply ({0})").format(result.answer.provider)
                + (self.tr(" · cached") if result.cached else "")
            )
            self.score()

        def failed(exc: BaseException) -> None:
            if view.closed:  # the tab's widgets are gone; the banner is the window's
                where = QCoreApplication.translate("DraftReview", "Asking the teacher")
                services.report(where, exc)
                return
            self.pending = False
            panel.cloud_view.setPlainText(self.tr("The teacher could not answer: {0}").format(exc))
            self.changed.emit()
            services.report(self.tr("Asking the teacher"), exc)

        services.cloud.submit(job, done, failed)
