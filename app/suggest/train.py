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
from collections.abc import Callable
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
from app.suggest.vectors import KnowledgeVectors

SAMPLE = 800
"""Past dialogues the ranker learns from (each gives ~600 candidates): about a minute on two cores."""
MIN_DIALOGUES = 50
"""Below this much history there is nothing to learn from: the untrained ranker stays."""
HELD_OUT = 0.2
SEARCH_BATCH = 64
ProgressFn = Callable[[dict[str, Any]], None]


def _examples(
    kb: KnowledgeBase, vectors: KnowledgeVectors, entries: list[KnowledgeEntry]
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(features, targets, is-retrieved) per sampled dialogue."""
    untrained = Ranker.untrained()
    out = []
    for start in range(0, len(entries), SEARCH_BATCH):
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
                untrained,
                kb,
                SHOWN,
                exclude_conversation=vectors.conversation(entry.id),
            )
            if not state.candidates:
                continue
            rows, _ = state._features(state.candidates)
            answers = np.stack([cand.answer_vector for cand in state.candidates])
            targets = np.clip(answers @ truth[i], 0.0, 1.0)
            retrieval = np.array(
                [
                    cand.query_sim + cand.context_sim if cand.retrieved else -9.0
                    for cand in state.candidates
                ]
            )
            out.append((rows, targets, retrieval))
    return out


def _first_pick_means(
    ranker: Ranker, examples: list[tuple[np.ndarray, np.ndarray, np.ndarray]]
) -> dict[str, float]:
    if not examples:
        return {}
    picks: dict[str, list[float]] = {"ranker": [], "consensus": [], "retrieval": [], "oracle": []}
    consensus = FEATURES.index("consensus")
    for rows, targets, retrieval in examples:
        picks["ranker"].append(float(targets[int(np.argmax(ranker.score(rows)))]))
        picks["consensus"].append(float(targets[int(np.argmax(rows[:, consensus]))]))
        picks["retrieval"].append(float(targets[int(np.argmax(retrieval))]))
        picks["oracle"].append(float(targets.max()))
    return {f"heldout_top1_{k}": round(float(np.mean(v)), 4) for k, v in picks.items()} | {
        "heldout_contexts": len(examples)
    }


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
    fit_examples = _examples(kb, vectors, fit_entries)
    check_examples = _examples(kb, vectors, check_entries)
    if not fit_examples:
        return None
    x = np.concatenate([rows for rows, _, _ in fit_examples])
    y = np.concatenate([targets for _, targets, _ in fit_examples])
    ranker = fit_ranker(x, y)
    metrics = {
        **_first_pick_means(ranker, check_examples),
        "train_dialogues": len(fit_examples),
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
