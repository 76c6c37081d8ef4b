"""The reply candidates of a chat's turn and the one in the editor.

A new ranking puts its best candidate into the editor until the agent picks one (Alt+n) or edits
the text; ratings are kept per candidate; the guard's warning follows the text in the editor; a
retrieved candidate gets a draft row when it is first rated or sent, so it joins the evolution
data like the model's drafts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QTextCursor

from app.engine.conversation import Turn
from app.suggest.guard import check_commitments
from app.ui.draft_panel import DraftPanel
from app.ui.services import Ranking, Services
from app.ui.suggestions import MASK_PATTERN, SHOWN
from app.ui.workspace import SentCandidates

GUARD_DELAY_MS = 300
"""The guard checks the agent's edits once typing pauses this long."""

Key = tuple[str, str]


class CandidateChoice(QObject):
    """``candidates`` are ``app.suggest``'s ``Suggestion`` objects, best first."""

    taken = Signal()
    """A candidate went into the editor."""

    def __init__(
        self,
        panel: DraftPanel,
        services: Services,
        turns: Callable[[], list[Turn]],
        streaming: Callable[[], str | None],
        parent: QObject | None = None,
    ) -> None:
        """``turns``: the conversation (the guard's evidence); ``streaming``: the model's draft
        as far as it has been written while it is being written, else None."""
        super().__init__(parent)
        self.panel = panel
        self.services = services
        self.turns = turns
        self.streaming = streaming
        self.candidates: list[Any] = []
        self.uncalibrated = True
        """No trained ranker was active for the ranking: its scores are not calibrated."""
        self.current: Any | None = None
        """The candidate in the editor; None while the model's draft streams into it."""
        self.auto = True
        """The agent has neither picked nor edited: a new ranking puts its best into the editor."""
        self.ratings: dict[Key, bool | None] = {}
        self.knowledge_drafts: dict[Key, int] = {}
        """Draft rows made for retrieved candidates the agent rated or sent."""
        self.putting = False
        """The view (not the agent) is setting the editor's text."""
        self.guard_timer = QTimer(self)
        self.guard_timer.setSingleShot(True)
        self.guard_timer.setInterval(GUARD_DELAY_MS)
        self.guard_timer.timeout.connect(self.guard_edited)
        panel.candidates.chosen.connect(lambda index: self.choose(index + 1))

    @staticmethod
    def key(candidate: Any | None) -> Key:
        if candidate is None:
            return ("model", "")
        return (candidate.source, "" if candidate.source == "model" else candidate.text)

    def current_is_model(self) -> bool:
        return self.current is None or self.current.source == "model"

    @property
    def thumbs(self) -> bool | None:
        """The agent's rating of the candidate in the editor (True good, False bad)."""
        return self.ratings.get(self.key(self.current))

    def rated(self, thumbs: bool | None) -> None:
        self.ratings[self.key(self.current)] = thumbs
        self.panel.up_button.setChecked(thumbs is True)
        self.panel.down_button.setChecked(thumbs is False)

    def ranked(self, ranking: Ranking) -> None:
        """A ranking arrived: retrieval's at once, then again with the model's draft in it."""
        self.candidates = list(ranking.suggestions)
        self.uncalibrated = ranking.uncalibrated
        if self.auto and self.candidates:
            self.take(self.candidates[0])
        elif self.current is not None:
            # The same candidate, scored again in the new ranking.
            key = self.key(self.current)
            self.current = next((c for c in self.candidates if self.key(c) == key), self.current)
        self.show()

    def put(self, text: str) -> None:
        """Set the editor's text as the view (not the agent) does."""
        self.putting = True
        try:
            self.panel.editor.setPlainText(text)
        finally:
            self.putting = False
        self.panel.show_mask_hint()

    def edited(self) -> None:
        """The editor's text changed: when the agent changed it, no ranking replaces it any more."""
        if not self.putting:
            self.auto = False
            self.panel.show_mask_hint()
            if self.candidates:
                self.guard_timer.start()

    def guard_edited(self) -> None:
        """The agent edited the text: check its promises against the same evidence (the
        conversation and the retrieved knowledge), so the badge says what is in the editor."""
        evidence = [t.text for t in self.turns()] + [
            c.text for c in self.candidates if c.source != "model"
        ]
        result = check_commitments(self.panel.editor.toPlainText(), evidence)
        self.panel.show_guard(result.unsupported)

    def take(self, candidate: Any) -> None:
        """Put a candidate into the editor."""
        self.guard_timer.stop()
        self.current = candidate
        self.put(candidate.text)
        thumbs = self.thumbs
        self.panel.up_button.setChecked(thumbs is True)
        self.panel.down_button.setChecked(thumbs is False)
        self.show()
        self.taken.emit()

    def show(self) -> None:
        shown = self.candidates[:SHOWN]
        index = next((i for i, c in enumerate(shown) if c is self.current), None)
        self.panel.candidates.show_candidates(shown, self.uncalibrated, index)
        self.panel.candidates.show_writing(self.streaming() if self.current is not None else None)
        current = self.current
        if current is None:
            self.panel.show_guard(())
        elif self.panel.editor.toPlainText() == current.text:
            self.panel.show_guard(current.unsupported)  # the ranker's finding
        else:
            self.guard_edited()

    def choose(self, n: int) -> None:
        """Alt+n: candidate n (1-based) into the editor, its first placeholder selected."""
        if not 1 <= n <= min(SHOWN, len(self.candidates)):
            return
        self.auto = False
        self.take(self.candidates[n - 1])
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

    def draft_for_current(self, reply_to_id: int | None, model_draft: int | None) -> int | None:
        """The draft row that a rating or a send of the editor's candidate goes to; a retrieved
        candidate gets one (model profile ``knowledge:past`` / ``knowledge:faq``) when first
        needed. ``model_draft``: the model's draft row."""
        candidate = self.current
        if candidate is None or candidate.source == "model" or reply_to_id is None:
            return model_draft
        key = self.key(candidate)
        if key not in self.knowledge_drafts:
            self.knowledge_drafts[key] = self.services.workspace.record_candidate_draft(
                reply_to_id, candidate
            )
        return self.knowledge_drafts[key]

    def draft_of(self, candidate: Any, model_draft: int | None) -> int | None:
        if candidate.source == "model":
            return model_draft
        return self.knowledge_drafts.get(self.key(candidate))

    def shown(self, reply_to_id: int | None, model_draft: int | None) -> SentCandidates | None:
        """What the store learns with a sent reply: the ranking, which candidate was sent, and
        the candidates' draft rows."""
        if reply_to_id is None or not self.candidates:
            return None
        chosen = next((i for i, c in enumerate(self.candidates) if c is self.current), None)
        drafts = {
            i: d
            for i, c in enumerate(self.candidates)
            if (d := self.draft_of(c, model_draft)) is not None
        }
        return SentCandidates(reply_to_id, self.candidates, chosen, drafts)

    def label_draft(self, model_draft: int | None) -> int | None:
        """The draft a teacher's label answers: the editor's candidate's row, else the model's."""
        return self.knowledge_drafts.get(self.key(self.current), model_draft)

    def reset(self) -> None:
        """A new turn: no candidates, the editor empty, nothing rated."""
        self.candidates = []
        self.current = None
        self.auto = True
        self.ratings.clear()
        self.knowledge_drafts.clear()
        self.put("")
        self.panel.up_button.setChecked(False)
        self.panel.down_button.setChecked(False)
        self.panel.show_guard(())
        self.panel.candidates.show_candidates([], self.uncalibrated, None)
        self.panel.candidates.show_writing(None)

    def stop(self) -> None:
        self.guard_timer.stop()
