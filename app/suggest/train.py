"""Training the ranker on the shop's own history, by hand or in the background after an import.

For a sample of past dialogues, the candidates are built exactly as for a live customer turn but
with the dialogue's own conversation left out of the knowledge (it would know the answer), and
each candidate's target is its USE similarity to the reply the agent actually sent. A fifth of
the sampled conversations is held out of fitting to report how the ranker's first pick compares
with plain retrieval's and with consensus alone.

The in-domain matcher of the ranker's second stage trains first, on the past dialogues of the
conversations the ranker does not sample: the second stage then learns how far to trust the
matcher from conversations the matcher never saw, as it will meet them live.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.knowledge import KnowledgeBase, KnowledgeEntry
from app.scoring.corpus import DialoguePair
from app.scoring.matcher_features import MatcherInfo
from app.suggest.candidates import FIRST_STAGE, SHOWN, _TurnState
from app.suggest.ranker import (
    FEATURES,
    Ranker,
    SecondStage,
    fit_ranker,
    fit_second_stage,
    register_ranker,
    two_stage_scores,
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
RETOLD = 5
"""Replies of the most similar past dialogues also given to the second stage as if typed: the
draft it scores live is on-topic without being the agent's reply, and without these it would
only have seen off-topic replies and the agent's own."""
SENT = 800
"""The agents' most recent replies sent in the app that training also learns from."""
SEARCH_BATCH = 64
MATCHER_PAIRS = 10_000
"""The most past dialogues the second stage's matcher trains on: about four minutes on two
cores (docs/measurements.md)."""
MATCHER_MIN_PAIRS = 20
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
    """The candidates of each sampled dialogue with its own conversation left out, plus, as
    replies from outside the knowledge: `RANDOM_REPLIES` replies of random other conversations
    (off-topic, like a bad draft), the agent's own reply, and `RETOLD` past replies (for the
    second stage only)."""
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
        retold = state._outside([cand.text for cand in state.candidates[:RETOLD]])
        example = _example(state, [*state.candidates, *off_topic, *own, *retold], truth)
        example.retold = len(retold)
        out.append(example)
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
    texts = [cand.filled_text for cand in cands]
    return RankingExample(rows, targets, retrieval, len(state.candidates), state.context, texts)


@dataclass
class RankingExample:
    rows: np.ndarray
    targets: np.ndarray
    retrieval: np.ndarray
    pool: int
    """The first ``pool`` rows are the live candidates; the rest are replies from outside the
    knowledge: off-topic ones, the agent's own, then ``retold``."""
    context: list[str]
    texts: list[str]
    retold: int = 0
    """The last ``retold`` rows are past replies as if typed, for the second stage only."""

    @property
    def first_stage(self) -> slice:
        """The rows the first stage learns from."""
        return slice(0, len(self.rows) - self.retold)


def _first_pick_means(
    ranker: Ranker, examples: list[RankingExample], matcher: Any = None
) -> dict[str, float]:
    """Mean similarity to the agent's reply of the first pick among the live candidates: by the
    ranker, consensus alone, retrieval, and the best one (the ceiling). With a second stage,
    also how often the agent's own reply, as if typed, outscores the off-topic replies (the
    other replies from outside the knowledge) by the first stage alone and by both."""
    if not examples:
        return {}
    picks: dict[str, list[float]] = {"ranker": [], "consensus": [], "retrieval": [], "oracle": []}
    consensus = FEATURES.index("consensus")
    own: dict[str, list[float]] = {"first_stage": [], "two_stage": []}
    for ex in examples:
        rows, targets = ex.rows[: ex.pool], ex.targets[: ex.pool]
        picks["ranker"].append(float(targets[int(np.argmax(ranker.score(rows)))]))
        picks["consensus"].append(float(targets[int(np.argmax(rows[:, consensus]))]))
        picks["retrieval"].append(float(targets[int(np.argmax(ex.retrieval[: ex.pool]))]))
        picks["oracle"].append(float(targets.max()))
        if ranker.second is not None and matcher is not None:
            outside = list(range(ex.pool, ex.first_stage.stop))  # off-topic ones, its own last
            alone = ranker.score(ex.rows[outside])
            both = two_stage_scores(ranker, matcher, ex.context, ex.texts, ex.rows, outside)
            own["first_stage"].append(float(np.argmax(alone) == len(outside) - 1))
            own["two_stage"].append(float(np.argmax(both[outside]) == len(outside) - 1))
    means = {f"heldout_top1_{k}": round(float(np.mean(v)), 4) for k, v in picks.items()}
    means |= {f"heldout_own_reply_{k}": round(float(np.mean(v)), 4) for k, v in own.items() if v}
    return means | {"heldout_contexts": len(examples)}


def train_ranker(
    kb: KnowledgeBase,
    vectors: KnowledgeVectors | None = None,
    sample: int = SAMPLE,
    seed: int = 13,
    progress: ProgressFn | None = None,
    matcher_dir: Path | None = None,
) -> Ranker | None:
    """A ranker fitted on the knowledge base's past dialogues; None with too little history.
    With ``matcher_dir`` (and torch installed) an in-domain matcher is trained there first on
    the dialogues the ranker does not sample, and the ranker gets a second stage that reads it."""
    return _train(kb, vectors, sample, seed, progress, matcher_dir)[0]


def _train(
    kb: KnowledgeBase,
    vectors: KnowledgeVectors | None,
    sample: int,
    seed: int,
    progress: ProgressFn | None,
    matcher_dir: Path | None,
) -> tuple[Ranker | None, MatcherInfo | None]:
    """`train_ranker`, and what its second stage's matcher training gave (None: no matcher)."""
    started = time.perf_counter()
    report = progress or (lambda _event: None)
    vectors = vectors if vectors is not None else KnowledgeVectors(kb)
    report({"stage": "encode", "entries": len(kb)})
    vectors.build_all(lambda done, total: report({"stage": "encode", "done": done, "total": total}))
    entries = [e for e in kb.entries() if e.kind == "dialogue" and e.context and e.id in vectors]
    if len(entries) < MIN_DIALOGUES:
        report({"stage": "skipped", "dialogues": len(entries)})
        return None, None
    rng = random.Random(seed)
    if matcher_dir is not None and importlib.util.find_spec("torch") is None:
        report({"stage": "matcher", "skipped": "torch is not installed"})
        matcher_dir = None
    # With a matcher to train, at least half the history is left to it.
    wanted = sample if matcher_dir is None else min(sample, len(entries) // 2)
    sampled = rng.sample(entries, min(wanted, len(entries)))
    conversations = sorted({vectors.conversation(e.id) for e in sampled})
    matcher = info = None
    if matcher_dir is not None:
        ranked = set(conversations)
        rest = [e for e in entries if vectors.conversation(e.id) not in ranked]
        # Its own random draws: the first stage comes out the same with or without it.
        matcher_rng = random.Random(seed + 1)
        trained = _train_stage_matcher(kb, vectors, rest, matcher_dir, matcher_rng, report)
        if trained is not None:
            matcher, info = trained
    held = set(rng.sample(conversations, max(1, int(len(conversations) * HELD_OUT))))
    fit_entries = [e for e in sampled if vectors.conversation(e.id) not in held]
    check_entries = [e for e in sampled if vectors.conversation(e.id) in held]
    report({"stage": "features", "dialogues": len(sampled)})
    fit_examples = _examples(kb, vectors, fit_entries, rng, report)
    check_examples = _examples(kb, vectors, check_entries, rng, report)
    sent_examples = _sent_examples(kb, vectors, SENT)
    fit_examples += sent_examples
    if not fit_examples:
        return None, info
    x = np.concatenate([ex.rows[ex.first_stage] for ex in fit_examples])
    y = np.concatenate([ex.targets[ex.first_stage] for ex in fit_examples])
    ranker = fit_ranker(x, y)
    if matcher is not None and info is not None:
        # Not on the replies sent in the app: the matcher has seen those.
        unseen = fit_examples[: len(fit_examples) - len(sent_examples)]
        report({"stage": "second", "dialogues": len(unseen)})
        second = _fit_second_stage(ranker, matcher, info.path, unseen)
        ranker = dataclasses.replace(ranker, second=second)
    metrics = {
        **_first_pick_means(ranker, check_examples, matcher),
        "train_dialogues": len(fit_examples),
        "train_sent_replies": len(sent_examples),
        "train_candidates": len(x),
        "train_s": round(time.perf_counter() - started, 1),
    }
    if info is not None:
        metrics["matcher_pairs"] = info.n_pairs
    ranker = dataclasses.replace(ranker, metrics=metrics)
    report({"stage": "done", **metrics, "weights": ranker.weights()})
    return ranker, info


def _train_stage_matcher(
    kb: KnowledgeBase,
    vectors: KnowledgeVectors,
    entries: list[KnowledgeEntry],
    out_dir: Path,
    rng: random.Random,
    report: ProgressFn,
) -> tuple[Any, MatcherInfo] | None:
    """The in-domain matcher trained on the agents' replies sent in the app and on ``entries``
    (at most `MATCHER_PAIRS` in all) into ``out_dir``, loaded to share the knowledge's USE model; None when they are too few or too
    alike to learn from (the ranker then has one stage)."""
    from app.scoring.indomain import load_matcher
    from app.scoring.matcher_train import train_matcher

    with kb.store.session() as session:
        sent = kb.store.sent_replies(session, SENT)
    pairs = [DialoguePair(tuple(c), reply, f"sent:{i}") for i, (c, reply) in enumerate(sent)]
    chosen = rng.sample(entries, min(MATCHER_PAIRS - len(pairs), len(entries)))
    pairs += [DialoguePair(e.context, e.answer, vectors.conversation(e.id)) for e in chosen]
    if len(pairs) < MATCHER_MIN_PAIRS:
        report({"stage": "matcher", "skipped": f"{len(pairs)} past dialogues left for it"})
        return None

    def progress(event: dict[str, Any]) -> None:
        if event.get("stage") == "train":
            report({"stage": "matcher", "done": event["epoch"], "total": event["epochs"]})
        else:
            report({"stage": "matcher", "step": event.get("stage")})

    encoder = kb.encoder
    shared = getattr(encoder, "cached", encoder)
    try:
        info = train_matcher(pairs, out_dir, progress=progress, encoder=shared)
    except ValueError as exc:  # e.g. every reply the same: nothing to tell apart
        report({"stage": "matcher", "skipped": str(exc)})
        return None
    return load_matcher(info.path, shared), info


def _fit_second_stage(
    ranker: Ranker, matcher: Any, path: Path, examples: list[RankingExample]
) -> SecondStage:
    """The second stage learns from the replies from outside the knowledge in each training
    dialogue (off-topic ones, the agent's own, past replies as if typed), with the matcher's
    logit of each."""
    first, logits, targets = [], [], []
    for ex in examples:
        outside = range(ex.pool, len(ex.rows))
        first.append(ranker.score(ex.rows[ex.pool :]))
        logits.append(matcher.logits(ex.context, [ex.texts[i] for i in outside]))
        targets.append(ex.targets[ex.pool :])
    return fit_second_stage(
        np.concatenate(first),
        np.concatenate(logits),
        np.concatenate(targets),
        matcher.version,
        path,
    )


def train_ranker_after_import(
    store: Any,
    kb: KnowledgeBase,
    progress: ProgressFn | None = None,
    activate: bool = True,
    matcher: bool = True,
) -> Ranker | None:
    """What a background job runs after a knowledge import: train on the imported history,
    record the ranker in the store and make it the active one. With ``matcher`` the in-domain
    matcher of its second stage trains first and becomes the store's active matcher too (it
    also scores drafts). None (and nothing recorded) when the history is too small to learn
    from."""
    from app.scoring.registry import register_matcher

    stamp = time.strftime("%Y%m%d-%H%M%S")
    matcher_dir = store.path.parent / "matchers" / f"suggest-{stamp}" if matcher else None
    ranker, info = _train(kb, None, SAMPLE, 13, progress, matcher_dir)
    if ranker is None:
        return None
    if ranker.second is not None and info is not None:
        register_matcher(store, info, activate)
    register_ranker(store, ranker, store.path.parent / "rankers" / ranker.version, activate)
    return ranker
