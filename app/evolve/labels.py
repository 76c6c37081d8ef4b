"""Stages 1–2 of a round and the training set: weak drafts → labels → what the next version learns.

1. ``find_candidates()``: drafts with a thumbs-down, an edit, or a Final Score below the threshold,
   that have no label yet.
2. ``fetch_labels()``: the agent's edited text is the label when there is one (a human label beats
   a pseudo-label); otherwise the teacher's reply (through the privacy firewall) is.
3. ``training_set()``: the labels made since the newest version plus a replay sample of earlier
   labels and corpus pairs; the most recent labels are held back for the gate.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.errors import XiaoerError
from app.evolve.data import TrainingExample, as_turns, clean_examples, read_examples
from app.evolve.settings import EvolutionSettings
from app.scoring.echo import repeats_customer
from app.scoring.record import CALIBRATED_MATCHING, draft_context
from app.store import Store

if TYPE_CHECKING:
    from app.evolve.trainer_process import Progress

Label = tuple[int, datetime, TrainingExample]
"""A label linked to a draft: (label id, when it was made, the example)."""


@dataclass(frozen=True)
class Candidate:
    draft_id: int
    context: tuple[str, ...]
    draft: str
    reason: str
    """thumbs_down, edited, low_score, or uncalibrated (scored high by a matcher not trained on
    the shop's chats, with no reference reply)."""
    edited_text: str | None = None


def find_candidates(store: Store, low_score: float) -> list[Candidate]:
    """Unlabelled drafts the next round should learn from, oldest first."""
    with store.session() as session:
        low = store.unlabelled_low_scores(session, low_score)
        # A high score from a matcher not trained on the shop's chats, with no reference to
        # compare with, is uncalibrated (it rated an invented promise 0.99): never good
        # enough to skip the teacher.
        uncalibrated = store.unlabelled_uncalibrated(session, low_score, CALIBRATED_MATCHING)
        ratings = store.unlabelled_bad_ratings(session)
        rated = {r.draft_id: r for r in ratings}  # the latest rating of a draft wins
    found = []
    for draft_id in sorted(low | uncalibrated | set(rated)):
        rating = rated.get(draft_id)
        edited = rating.sent_text if rating is not None and rating.edited else None
        reason = (
            "edited"
            if edited
            else "thumbs_down"
            if rating is not None
            else "low_score"
            if draft_id in low
            else "uncalibrated"
        )
        context, text = draft_context(store, draft_id)
        found.append(Candidate(draft_id, tuple(context), text, reason, edited))
    return found


def fetch_labels(
    store: Store,
    teacher: Any | None,
    candidates: Sequence[Candidate],
    progress: Progress | None = None,
) -> dict[str, int]:
    """Label candidates: the agent's edit, else the teacher's reply. Never loses a candidate:
    one the teacher could not answer stays a candidate (and in the teacher's outbox)."""
    counts = {"agent_edit": 0, "teacher": 0, "failed": 0}
    for cand in candidates:
        try:
            if cand.edited_text:
                _add_label(store, teacher, cand, cand.edited_text, "agent_edit")
                counts["agent_edit"] += 1
                continue
            if teacher is None:
                counts["failed"] += 1
                continue
            result = teacher.ask(as_turns(cand.context), draft_id=cand.draft_id)
            if not _has_label(store, cand.draft_id):  # a cached answer was not linked yet
                _add_label(store, teacher, cand, result.answer.text, "teacher", result)
            counts["teacher"] += 1
        except (XiaoerError, ValueError) as exc:
            counts["failed"] += 1
            if progress:
                progress({"event": "warning", "message": f"draft {cand.draft_id}: {exc}"})
    return counts


def _has_label(store: Store, draft_id: int) -> bool:
    with store.session() as session:
        return store.has_label(session, draft_id)


def _add_label(
    store: Store,
    service: Any | None,
    cand: Candidate,
    text: str,
    source: str,
    result: Any | None = None,
) -> None:
    teacher = getattr(service, "teacher", None)
    with store.session() as session:
        store.add_teacher_reply(
            session,
            draft_id=cand.draft_id,
            provider=getattr(teacher, "provider", None) if result else "agent",
            model=getattr(teacher, "model", None) if result else None,
            query_text=cand.context[-1] if cand.context else "",
            reply_text=text,
            # A teacher's label is the reply as the agent was shown it (TeacherResult);
            # None, with the reason, when it holds another conversation's placeholder.
            label_text=result.label if result is not None else text,
            unusable_reason=getattr(result, "unusable", None),
            prompt_hash=getattr(result, "prompt_hash", None),
            label_source=source,
        )


def stored_labels(store: Store) -> list[Label]:
    """Every label linked to a draft, oldest first."""
    with store.session() as session:
        rows = store.draft_labels(session)
    out = []
    for label_id, created, draft_id, text, source in rows:
        context, _ = draft_context(store, draft_id)
        out.append((label_id, created, TrainingExample(tuple(context), text, source)))
    return out


def new_labels(store: Store, labels: list[Label]) -> list[Label]:
    """The ``labels`` made since the newest adapter version."""
    with store.session() as session:
        latest = store.newest_adapter_time(session)
    return [lab for lab in labels if latest is None or lab[1] > latest]


def learnable(label: TrainingExample, min_chars: int) -> bool:
    """A teacher's curt reply ("好的") is not learned: a few teach the model to answer
    everything that way; nor one that only repeats the customer. The agent's own text is
    always learned."""
    if label.source != "teacher":
        return True
    return len(label.reply) >= min_chars and not (
        label.context and repeats_customer(label.context[-1], label.reply)
    )


def training_set(
    store: Store, settings: EvolutionSettings, labels: list[Label]
) -> tuple[list[TrainingExample], list[TrainingExample]]:
    """(training examples, held-back gate examples) for the next round, from the store's
    ``labels``."""
    rng = random.Random(len(labels))  # the same store state gives the same sample
    hold = labels[-settings.holdback :] if settings.holdback else []
    held_ids = {lab[0] for lab in hold}
    new_ids = {lab[0] for lab in new_labels(store, labels)} - held_ids

    def keep(label: TrainingExample) -> bool:
        return learnable(label, settings.min_label_chars)

    new = [lab[2] for lab in labels if lab[0] in new_ids and keep(lab[2])]
    earlier = [lab[2] for lab in labels if lab[0] not in new_ids | held_ids and keep(lab[2])]
    replay = rng.sample(earlier, min(len(earlier), settings.replay))
    if settings.corpus:
        # The shop's own replies, cleaned as `xiaoer train` cleans a corpus (no curt ones, no
        # stock phrase over and over): mixed with teacher labels, they raised the similarity
        # to the human agents on held-out JDDC (README "Online evolution"). A round that
        # continues from an adapter replays as much history as it has new labels, so that what
        # the warm start and earlier rounds learned is kept (config.CONTINUE_LR_FACTOR).
        pairs = clean_examples(
            read_examples(Path(settings.corpus)), min_chars=settings.min_label_chars
        )
        with store.session() as session:
            continues = store.active_adapter(session) is not None
        wanted = max(settings.replay, len(new)) if continues else settings.replay
        replay += rng.sample(pairs, min(len(pairs), wanted))
    if settings.objective == "kto":
        replay += preference_examples(store)
    return new + replay, [lab[2] for lab in hold]


def preference_examples(store: Store) -> list[TrainingExample]:
    """Drafts rated 👍 or 👎 and sent unedited (or not sent): KTO's desirable/undesirable."""
    with store.session() as session:
        rows = store.unedited_thumbs(session)
    latest = {draft_id: up for draft_id, up in rows}
    out = []
    for draft_id, up in latest.items():
        context, text = draft_context(store, draft_id)
        if text.strip():
            source = "thumbs_up" if up else "thumbs_down"
            out.append(TrainingExample(tuple(context), text, source, bool(up)))
    return out
