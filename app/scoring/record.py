"""Scoring a recorded draft and storing the score: the call the UI and the evolution loop make."""

from __future__ import annotations

from app.scoring.formula import ScoreResult
from app.scoring.scorers import ReplyScorer
from app.store import Store

CONTEXT_TURNS = 8
"""How many turns up to the customer's message the matcher sees."""
CALIBRATED_MATCHING = "indomain:"
"""Version prefix of the matchers trained on the shop's own chats (`InDomainMatching`)."""


def is_calibrated(mode: str, matching_scorer_version: str | None) -> bool:
    """Whether a Final Score can say a draft is good enough to skip the teacher: it compared the
    draft with a reference reply, or its matcher was trained on the shop's chats. A match-only
    score from an untrained matcher is uncalibrated (e5 rated an invented promise 0.99)."""
    return mode != "match_only" or (matching_scorer_version or "").startswith(CALIBRATED_MATCHING)


def draft_context(store: Store, draft_id: int, turns: int = CONTEXT_TURNS) -> tuple[list[str], str]:
    """The conversation up to the message a draft answers (oldest first), and the draft's text."""
    with store.session() as session:
        found = store.draft_with_context(session, draft_id, turns)
        if found is None:
            raise LookupError(f"No draft with id {draft_id}")
        draft, messages = found
        return [m.text for m in messages], draft.text


def score_draft(
    store: Store,
    scorer: ReplyScorer,
    draft_id: int,
    cloud_reply: str | None = None,
    alpha: float | None = None,
    theta: float | None = None,
) -> ScoreResult:
    """Score a draft with the paper's formula and record the score with the scorer versions.

    The models run outside any database transaction, so a slow score never holds the write lock.
    """
    context, text = draft_context(store, draft_id)
    result = scorer.score(context, text, cloud_reply, alpha, theta)
    versions = scorer.versions
    with store.session() as session:
        store.record_score(
            session,
            draft_id,
            final=result.final,
            mode=result.mode,
            alpha=result.alpha,
            theta=result.theta,
            similarity=result.similarity,
            matching=result.matching,
            similarity_scorer_version=versions["similarity"],
            matching_scorer_version=versions["matching"],
            fallback_applied=result.fallback,
        )
    return result
