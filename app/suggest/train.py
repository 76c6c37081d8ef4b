"""Training the ranker on the shop's own history, by hand or in the background after an import.

For a sample of past dialogues, the candidates are built exactly as for a live customer turn but
with the dialogue's own conversation left out of the knowledge (it would know the answer), and
each candidate's target is its USE similarity to the reply the agent actually sent. A fifth of
the sampled conversations is held out of fitting to report how the ranker's first pick compares
with plain retrieval's and with consensus alone.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.knowledge import KnowledgeBase, KnowledgeEntry
from app.suggest.candidates import FIRST_STAGE, SHOWN, _TurnState
from app.suggest.ranker import (
    FEATURES,
    Ranker,
    fit_ranker,
    register_ranker,
)
from app.suggest.vectors import KnowledgeVectors, context_window

SAMPLE = 800
"""Past dialogues the ranker learns from (each gives ~600 candidates): about a minute on two cores."""
MIN_DIALOGUES = 50
"""Below this much history there is nothing to learn from: the untrained ranker stays."""
HELD_OUT = 0.2
RANDOM_REPLIES = 10
"""Off-topic replies (of random other conversations) added to each training dialogue's
candidates: a draft or a typed reply can miss the question, which retrieved replies never do,
and the ranker must learn to tell (this is what carries it to other shops' chats)."""
SENT = 800
"""The agents' most recent replies sent in the app that training also learns from."""
SEARCH_BATCH = 64
ProgressFn = Callable[[dict[str, Any]], None]


def held_out_turns(
    kb: KnowledgeBase,
    vectors: KnowledgeVectors,
    entries: list[KnowledgeEntry],
    ranker: Ranker,
    progress: ProgressFn | None = None,
) -> Iterator[tuple[KnowledgeEntry, _TurnState, np.ndarray]]:
    """Each past dialogue's turn built as live, with its own conversation left out of the
    knowledge (it would know the answer), and the vector of the reply the agent sent."""
    for start in range(0, len(entries), SEARCH_BATCH):
        if progress is not None:
            progress({"stage": "features", "done": start, "total": len(entries)})
        batch = entries[start : start + SEARCH_BATCH]
        ids = [e.id for e in batch]
        q, c, truth = vectors.query(ids), vectors.context(ids), vectors.answer(ids)
        # A few extra hits make up for the ones of the entry's own conversation left out.
        found = kb.search_vectors(q, FIRST_STAGE + 20, "dialogue")
        for i, entry in enumerate(batch):
            state = _TurnState.build(
                list(entry.context),
                list(entry.context),
                q[i],
                c[i],
                found[i],
                [],
                vectors,
                ranker,
                kb,
                SHOWN,
                exclude_conversation=vectors.conversation(entry.id),
            )
            if state.candidates:
                yield entry, state, truth[i]


def _examples(
    kb: KnowledgeBase,
    vectors: KnowledgeVectors,
    entries: list[KnowledgeEntry],
    rng: random.Random,
    progress: ProgressFn,
) -> list[RankingExample]:
    """The candidates of each sampled dialogue with its own conversation left out, plus
    `RANDOM_REPLIES` replies of random other conversations (off-topic, like a bad draft)."""
    everyone = vectors.dialogue_ids()
    out = []
    for entry, state, truth in held_out_turns(kb, vectors, entries, Ranker.untrained(), progress):
        conversation = vectors.conversation(entry.id)
        others = [
            j
            for j in rng.sample(everyone, min(len(everyone), RANDOM_REPLIES * 2))
            if vectors.conversation(j) != conversation
        ][:RANDOM_REPLIES]
        off_topic = state._outside([vectors.answer_text(j) for j in others])
        # The agent's own reply is the perfect candidate (target 1): what sets it apart from
        # off-topic replies is what the ranker needs for replies it did not retrieve.
        own = state._outside([entry.answer])
        out.append(_example(state, [*state.candidates, *off_topic, *own], truth))
    return out


def _sent_examples(
    kb: KnowledgeBase, vectors: KnowledgeVectors, limit: int
) -> list[RankingExample]:
    """The agents' replies sent in the app as training dialogues: the candidates the live
    ranking would build for the customer's turn, the reply as sent among them (target 1), and
    every candidate's similarity to it (which candidate the agent picked, or how they edited it,
    is in what they sent)."""
    with kb.store.session() as session:
        sent = kb.store.sent_replies(session, limit)
    untrained = Ranker.untrained()
    out = []
    for start in range(0, len(sent), SEARCH_BATCH):
        batch = sent[start : start + SEARCH_BATCH]
        texts = [
            t for context, reply in batch for t in (context[-1], context_window(context), reply)
        ]
        v = kb.encode(texts).reshape(len(batch), 3, -1)
        found = kb.search_vectors(v[:, 0], FIRST_STAGE, "dialogue")
        for i, (context, reply) in enumerate(batch):
            state = _TurnState.build(
                context, context, v[i, 0], v[i, 1], found[i], [], vectors, untrained, kb, SHOWN
            )
            if state.candidates:
                out.append(_example(state, [*state.candidates, *state._outside([reply])], v[i, 2]))
    return out


def _example(state: _TurnState, cands: list[Any], truth: np.ndarray) -> RankingExample:
    rows, _ = state._features(cands)
    answers = np.stack([cand.answer_vector for cand in cands])
    targets = np.clip(answers @ truth, 0.0, 1.0)
    retrieval = np.array(
        [cand.query_sim + cand.context_sim if cand.retrieved else -9.0 for cand in cands]
    )
    return RankingExample(rows, targets, retrieval, len(state.candidates))


@dataclass
class RankingExample:
    rows: np.ndarray
    targets: np.ndarray
    retrieval: np.ndarray
    pool: int
    """The first ``pool`` rows are the live candidates; the rest are off-topic replies."""


def _first_pick_means(ranker: Ranker, examples: list[RankingExample]) -> dict[str, float]:
    """Mean similarity to the agent's reply of the first pick among the live candidates."""
    if not examples:
        return {}
    picks: dict[str, list[float]] = {"ranker": [], "consensus": [], "retrieval": [], "oracle": []}
    consensus = FEATURES.index("consensus")
    for ex in examples:
        rows, targets = ex.rows[: ex.pool], ex.targets[: ex.pool]
        picks["ranker"].append(float(targets[int(np.argmax(ranker.score(rows)))]))
        picks["consensus"].append(float(targets[int(np.argmax(rows[:, consensus]))]))
        picks["retrieval"].append(float(targets[int(np.argmax(ex.retrieval[: ex.pool]))]))
        picks["oracle"].append(float(targets.max()))
    means = {f"heldout_top1_{k}": round(float(np.mean(v)), 4) for k, v in picks.items()}
    return means | {"heldout_contexts": len(examples)}


def train_ranker(
    kb: KnowledgeBase,
    vectors: KnowledgeVectors | None = None,
    sample: int = SAMPLE,
    seed: int = 13,
    progress: ProgressFn | None = None,
) -> Ranker | None:
    """A ranker fitted on the knowledge base's past dialogues; None with too little history."""
    started = time.perf_counter()
    report = progress or (lambda _event: None)
    vectors = vectors if vectors is not None else KnowledgeVectors(kb)
    report({"stage": "encode", "entries": len(kb)})
    vectors.build_all(lambda done, total: report({"stage": "encode", "done": done, "total": total}))
    entries = [e for e in kb.entries() if e.kind == "dialogue" and e.context and e.id in vectors]
    if len(entries) < MIN_DIALOGUES:
        report({"stage": "skipped", "dialogues": len(entries)})
        return None
    rng = random.Random(seed)
    sampled = rng.sample(entries, min(sample, len(entries)))
    conversations = sorted({vectors.conversation(e.id) for e in sampled})
    held = set(rng.sample(conversations, max(1, int(len(conversations) * HELD_OUT))))
    fit_entries = [e for e in sampled if vectors.conversation(e.id) not in held]
    check_entries = [e for e in sampled if vectors.conversation(e.id) in held]
    report({"stage": "features", "dialogues": len(sampled)})
    fit_examples = _examples(kb, vectors, fit_entries, rng, report)
    check_examples = _examples(kb, vectors, check_entries, rng, report)
    sent_examples = _sent_examples(kb, vectors, SENT)
    fit_examples += sent_examples
    if not fit_examples:
        return None
    x = np.concatenate([ex.rows for ex in fit_examples])
    y = np.concatenate([ex.targets for ex in fit_examples])
    ranker = fit_ranker(x, y)
    metrics = {
        **_first_pick_means(ranker, check_examples),
        "train_dialogues": len(fit_examples),
        "train_sent_replies": len(sent_examples),
        "train_candidates": len(x),
        "train_s": round(time.perf_counter() - started, 1),
    }
    ranker = Ranker(
        ranker.version,
        ranker.mean,
        ranker.scale,
        ranker.coef,
        ranker.intercept,
        ranker.calibrated,
        metrics,
    )
    report({"stage": "done", **metrics, "weights": ranker.weights()})
    return ranker


def train_ranker_after_import(
    store: Any,
    kb: KnowledgeBase,
    progress: ProgressFn | None = None,
    activate: bool = True,
) -> Ranker | None:
    """What a background job runs after a knowledge import: train on the imported history,
    record the ranker in the store and make it the active one. None (and nothing recorded) when
    the history is too small to learn from."""
    ranker = train_ranker(kb, progress=progress)
    if ranker is None:
        return None
    register_ranker(store, ranker, store.path.parent / "rankers" / ranker.version, activate)
    return ranker
