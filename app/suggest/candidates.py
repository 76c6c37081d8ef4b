"""Reply suggestions for a customer's turn: the shop's past replies and FAQ answers at once, the
model's draft when it arrives, all ranked by the learned ranker.

How the candidates are found and measured (docs/experiments/2026-12-04-grounded-suggestions.md
has the numbers behind each choice):

1. The knowledge index returns the ``FIRST_STAGE`` past dialogues whose customer question is most
   similar to ours; they are re-ordered by question similarity + similarity of their last few
   turns to ours, and the best ``EVIDENCE`` of them are the *evidence*: what the shop's agents
   replied in situations like this one, each weighted by how alike the situation is.
2. Candidates are those replies, the shop's stock replies (the ones nearest the centre of all its
   answers, see `KnowledgeVectors.stock_ids`), the best-matching FAQ answers, and later the
   model's draft.
3. Each candidate's *consensus* is its weighted mean similarity to the evidence replies: the
   similarity it can expect to the reply an agent would write (minimum Bayes risk). With the
   other features it goes into the `Ranker`.
4. A candidate that makes a commitment (time, price, refund…) nothing supports (`guard`), or
   that only repeats the customer, goes below every other candidate.
5. The first suggestion is the ranker's best; the second and third are chosen to cover what the
   first does not (greedy facility location over the evidence), so the three differ.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from app.engine.conversation import Turn
from app.knowledge import KnowledgeBase, KnowledgeEntry, KnowledgeHit
from app.scoring.echo import repeats_customer
from app.suggest.guard import Commitment, check_commitments
from app.suggest.masks import MaskSpan, conversation_values, fill_masks
from app.suggest.ranker import (
    FEATURES,
    Ranker,
    active_ranker,
    load_stage_matcher,
    two_stage_scores,
)
from app.suggest.vectors import KnowledgeVectors, context_window

FIRST_STAGE = 300
"""Past dialogues fetched by question similarity (re-ordered by question + recent context)."""
EVIDENCE = 100
"""The most similar past dialogues whose replies serve as evidence of what the agent would say."""
TEMPERATURE = 0.2
"""Evidence weight exp((s − s_best) / T) for the combined similarity s (question + context)."""
FAQ_K = 5
SHOWN = 10
"""Candidates returned (the UI shows three; the rest are there for a longer list)."""
DIVERSE = 3
"""The first this many suggestions are chosen to differ from each other."""
GUARD_CHECKED = 30
"""Candidates (best first) the guard reads; below them nothing is shown anyway."""
Source = Literal["past", "faq", "model"]
Floats = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Suggestion:
    """One candidate reply, ready to show: where it came from and how it scored."""

    text: str
    """The reply with the masks the conversation could fill filled in."""
    source: Source
    score: float
    """The ranker's predicted USE similarity to the reply the agent would write (an order only
    when ``calibrated`` is False)."""
    entry: KnowledgeEntry | None
    """The past dialogue or FAQ entry it came from; None for the model's draft."""
    features: dict[str, float]
    unsupported: tuple[Commitment, ...] = ()
    """Commitments (time, price, refund…) that neither the conversation nor the shop's
    knowledge supports; a badge in the UI."""
    masks: tuple[MaskSpan, ...] = ()
    """Placeholders left for the agent to fill, as spans of ``text``."""
    calibrated: bool = False
    """False until a ranker trained on the shop's history is active; such a score must never
    count as "good enough" to skip the teacher."""
    echo: bool = False
    """It only repeats the customer's message."""

    @property
    def grounded(self) -> bool:
        return not self.unsupported and not self.echo


@dataclass
class _Candidate:
    text: str
    source: Source
    entry: KnowledgeEntry | None
    answer_vector: npt.NDArray[np.float32]
    query_sim: float
    context_sim: float
    retrieved: bool
    filled_text: str = ""
    masks: tuple[MaskSpan, ...] = ()


@dataclass
class Suggestions:
    """The ranked candidates for one customer turn; `add_draft` ranks the model's draft in."""

    ranked: list[Suggestion]
    calibrated: bool
    _state: _TurnState | None = field(default=None, repr=False)

    def top(self, n: int = DIVERSE) -> list[Suggestion]:
        return self.ranked[:n]

    def score_texts(self, texts: Sequence[str]) -> list[float]:
        """The ranker's score of other replies for this turn (one the agent typed, a response-
        selection set's candidates), measured like the model's draft; the guard is not applied."""
        if self._state is None or not texts:
            return [0.0] * len(texts)
        return self._state.score_texts(texts)

    def add_draft(self, text: str) -> list[Suggestion]:
        """Rank the model's draft among the candidates (replacing an earlier draft); returns the
        new ranking, also kept in ``ranked``."""
        if self._state is None or not text.strip():
            return self.ranked
        self.ranked = self._state.with_draft(text)
        return self.ranked


class Suggester:
    """Suggestions from the shop's knowledge, ranked by the store's active ranker."""

    def __init__(
        self,
        kb: KnowledgeBase,
        ranker: Ranker | None = None,
        vectors: KnowledgeVectors | None = None,
        *,
        k: int = SHOWN,
    ) -> None:
        self.kb = kb
        self.vectors = vectors if vectors is not None else KnowledgeVectors(kb)
        self.ranker = ranker if ranker is not None else active_ranker(kb.store)
        self.matcher = self._stage_matcher()
        self.k = k
        self._lock = threading.Lock()

    def _stage_matcher(self) -> Any:
        if self.ranker.second is None:
            return None
        encoder = self.kb.encoder  # the process's USE model, and its cache, shared
        return load_stage_matcher(self.ranker, getattr(encoder, "cached", encoder))

    def reload_ranker(self) -> Ranker:
        """Pick up the store's active ranker (after a training in the background), and the
        entries' vectors that the training encoded and saved."""
        self.ranker = active_ranker(self.kb.store)
        self.matcher = self._stage_matcher()
        vectors = KnowledgeVectors(self.kb, self.vectors.path)
        with self._lock:
            if len(vectors) >= len(self.vectors):
                self.vectors = vectors
        return self.ranker

    def suggest(self, turns: Sequence[Turn]) -> Suggestions:
        """Ranked past replies and FAQ answers for the conversation's last customer turn (no
        model involved: fast). Empty when there is no customer turn or no knowledge."""
        customer = [t.text for t in turns if t.role == "customer" and t.text.strip()]
        if not customer:
            return Suggestions([], self.ranker.calibrated)
        context = [t.text for t in turns if t.text.strip()]
        if turns and turns[-1].role == "agent":
            # The agent already wrote after the customer's last turn: answer that turn anyway.
            while context and context[-1] != customer[-1]:
                context.pop()
        return self.suggest_context(context, customer)

    def suggest_context(
        self,
        context: Sequence[str],
        customer_turns: Sequence[str] | None = None,
        *,
        second_stage: bool = True,
    ) -> Suggestions:
        """``suggest`` for plain turns whose last one is the customer's message;
        ``second_stage=False`` ranks by the ranker's first stage alone (to measure the second)."""
        context = [c for c in context if c.strip()]
        if not context:
            return Suggestions([], self.ranker.calibrated)
        customer = list(customer_turns) if customer_turns is not None else list(context)
        q, c = self.kb.encode([context[-1], context_window(context)])
        dialogue = self.kb.search_vectors(q[None, :], FIRST_STAGE, "dialogue")[0]
        faq = self.kb.search_vectors(q[None, :], FAQ_K, "faq")[0]
        with self._lock:  # one encode of new entries at a time
            self.vectors.ensure(h.entry for h in dialogue + faq)
        state = _TurnState.build(
            context, customer, q, c, dialogue, faq, self.vectors, self.ranker, self.kb, self.k
        )
        state.matcher = self.matcher if second_stage else None
        return Suggestions(state.rank(), self.ranker.calibrated, state)


@dataclass
class _TurnState:
    """What one turn's ranking needs again when the draft arrives."""

    context: list[str]
    customer: list[str]
    query_vector: npt.NDArray[np.float32]
    context_vector: npt.NDArray[np.float32]
    candidates: list[_Candidate]
    evidence_answers: npt.NDArray[np.float32]
    evidence_weights: Floats
    evidence_texts: list[str]
    evidence_ids: list[int]
    faq_texts: list[str]
    neutral: dict[str, float]
    vectors: KnowledgeVectors
    ranker: Ranker
    kb: KnowledgeBase
    k: int
    matcher: Any = None
    """The ranker's second stage's in-domain matcher (None: the first stage alone ranks)."""

    @classmethod
    def build(
        cls,
        context: list[str],
        customer: list[str],
        q: npt.NDArray[np.float32],
        c: npt.NDArray[np.float32],
        dialogue: list[KnowledgeHit],
        faq: list[KnowledgeHit],
        vectors: KnowledgeVectors,
        ranker: Ranker,
        kb: KnowledgeBase,
        k: int,
        exclude_conversation: str | None = None,
    ) -> _TurnState:
        pool = build_pool(q, c, dialogue, faq, vectors, exclude_conversation)
        cands = pool.candidates
        values = conversation_values(customer)
        for cand in cands:
            filled = fill_masks(cand.text, values)
            cand.filled_text, cand.masks = filled.text, filled.masks
        return cls(
            context,
            customer,
            q,
            c,
            cands,
            pool.evidence_answers,
            pool.weights,
            pool.evidence_texts,
            pool.evidence_ids,
            [h.entry.answer for h in faq],
            pool.neutral,
            vectors,
            ranker,
            kb,
            k,
        )

    def _features(self, cands: Sequence[_Candidate]) -> tuple[Floats, Floats]:
        answers = np.stack([cand.answer_vector for cand in cands])
        agreement = agreement_matrix(answers, self.evidence_answers)
        # A candidate that is itself one of the evidence replies does not count its own vote.
        where = {eid: j for j, eid in enumerate(self.evidence_ids)}
        self_weight = np.zeros(len(cands))
        for i, cand in enumerate(cands):
            j = where.get(cand.entry.id) if cand.entry is not None else None
            if j is not None:
                agreement[i, j] = 0.0
                self_weight[i] = self.evidence_weights[j]
        consensus = (agreement @ self.evidence_weights) / np.maximum(
            self.evidence_weights.sum() - self_weight, 1e-9
        )
        centrality = self.vectors.centrality(answers)
        rows = np.column_stack(
            [
                consensus,
                [cand.query_sim for cand in cands],
                [cand.context_sim for cand in cands],
                centrality,
                [math.log1p(len(cand.filled_text)) for cand in cands],
                [float(len(cand.masks)) for cand in cands],
                answers @ self.query_vector,
                answers @ self.context_vector,
            ]
        ).astype(np.float64)
        return rows, agreement

    def rank(self, draft: _Candidate | None = None) -> list[Suggestion]:
        cands = list(self.candidates) + ([draft] if draft is not None else [])
        if not cands:
            return []
        rows, agreement = self._features(cands)
        scores = self.scores(cands, rows)
        order = list(np.argsort(-scores, kind="stable"))
        checked: dict[int, tuple[tuple[Commitment, ...], bool]] = {}
        for i in order[:GUARD_CHECKED]:
            checked[i] = self._check(cands[i])
        if draft is not None and len(cands) - 1 not in checked:
            checked[len(cands) - 1] = self._check(draft)
        grounded = [i for i in order if i in checked and not checked[i][0] and not checked[i][1]]
        flagged = [i for i in order if i in checked and i not in grounded]
        shown = diverse_first(grounded, agreement, self.evidence_weights, DIVERSE)
        shown += [i for i in grounded if i not in shown]
        shown = (shown + flagged)[: self.k]
        if draft is not None and len(cands) - 1 not in shown:
            shown.append(len(cands) - 1)  # the draft is always offered, ranked where it fell
        out = []
        for i in shown:
            cand = cands[i]
            unsupported, echo = checked[i]
            features = {f: round(float(v), 5) for f, v in zip(FEATURES, rows[i], strict=True)}
            out.append(
                Suggestion(
                    cand.filled_text,
                    cand.source,
                    round(float(scores[i]), 5),
                    cand.entry,
                    features,
                    unsupported,
                    cand.masks,
                    self.ranker.calibrated,
                    echo,
                )
            )
        return out

    def _check(self, cand: _Candidate) -> tuple[tuple[Commitment, ...], bool]:
        own = cand.entry.answer if cand.entry is not None else None
        evidence = [*self.context, *self.faq_texts, *(t for t in self.evidence_texts if t != own)]
        result = check_commitments(cand.filled_text, evidence)
        echo = bool(self.customer) and repeats_customer(self.customer[-1], cand.filled_text)
        return result.unsupported, echo

    def _outside(self, texts: Sequence[str]) -> list[_Candidate]:
        """Replies from outside the knowledge (the model's draft, typed text) as candidates. They
        have no question of their own, so they get the evidence's mean question and context
        similarity: neither helped nor hurt by them."""
        vectors = self.kb.encode(list(texts))
        values = conversation_values(self.customer)
        out = []
        for text, vector in zip(texts, vectors, strict=True):
            cand = _Candidate(
                text,
                "model",
                None,
                vector,
                self.neutral["query_sim"],
                self.neutral["context_sim"],
                retrieved=False,
            )
            filled = fill_masks(text, values)
            cand.filled_text, cand.masks = filled.text, filled.masks
            out.append(cand)
        return out

    def with_draft(self, text: str) -> list[Suggestion]:
        return self.rank(self._outside([text])[0])

    def scores(self, cands: Sequence[_Candidate], rows: Floats) -> Floats:
        """The ranker's scores of candidates (`two_stage_scores`: the second stage reads the
        ones from outside the knowledge)."""
        texts = [cand.filled_text for cand in cands]
        outside = [i for i, cand in enumerate(cands) if cand.entry is None]
        return two_stage_scores(self.ranker, self.matcher, self.context, texts, rows, outside)

    def score_texts(self, texts: Sequence[str]) -> list[float]:
        cands = self._outside(texts)
        rows, _ = self._features(cands)
        return [float(v) for v in self.scores(cands, rows)]


# --- the pool, shared by live suggestions and ranker training -----------------------------------


@dataclass
class Pool:
    candidates: list[_Candidate]
    evidence_ids: list[int]
    evidence_answers: npt.NDArray[np.float32]
    evidence_texts: list[str]
    weights: Floats
    neutral: dict[str, float]
    """The evidence's weighted mean question and context similarity: what a candidate with no
    question of its own (the model's draft) is given, so it is neither helped nor hurt."""


def agreement_matrix(answers: npt.ArrayLike, evidence: npt.ArrayLike) -> Floats:
    """USE similarity (clipped to [0, 1], like the app's similarity) of each answer to each
    evidence answer."""
    a = np.asarray(answers, np.float32)
    e = np.asarray(evidence, np.float32)
    if not len(a) or not len(e):
        return np.zeros((len(a), len(e)))
    return np.clip(np.asarray(a @ e.T, np.float64), 0.0, 1.0)


def build_pool(
    q: npt.NDArray[np.float32],
    c: npt.NDArray[np.float32],
    dialogue: Sequence[KnowledgeHit],
    faq: Sequence[KnowledgeHit],
    vectors: KnowledgeVectors,
    exclude_conversation: str | None = None,
    evidence_size: int = EVIDENCE,
    temperature: float = TEMPERATURE,
) -> Pool:
    """Evidence and candidates for one customer turn (``q``: its last message's vector, ``c``:
    its recent context's). ``exclude_conversation`` leaves one conversation out (training)."""
    hits = [
        h
        for h in dialogue
        if h.entry.id in vectors
        and (
            exclude_conversation is None or vectors.conversation(h.entry.id) != exclude_conversation
        )
    ]
    ids = [h.entry.id for h in hits]
    if ids:
        query_sim = np.array([h.similarity for h in hits])
        context_sim = np.asarray(vectors.context(ids) @ c, np.float64)
        combined = query_sim + context_sim
        order = np.argsort(-combined, kind="stable")[:evidence_size]
    else:
        query_sim = context_sim = combined = np.zeros(0)
        order = np.zeros(0, np.int64)
    evidence_ids = [ids[i] for i in order]
    weights = np.exp((combined[order] - (combined[order[0]] if len(order) else 0.0)) / temperature)
    evidence_answers = (
        vectors.answer(evidence_ids) if evidence_ids else np.zeros((0, len(q)), np.float32)
    )
    neutral = {
        "query_sim": float(np.average(query_sim[order], weights=weights)) if len(order) else 0.0,
        "context_sim": float(np.average(context_sim[order], weights=weights))
        if len(order)
        else 0.0,
    }
    cands: list[_Candidate] = []
    seen: set[str] = set()

    def add(cand: _Candidate) -> None:
        if cand.text not in seen:
            seen.add(cand.text)
            cands.append(cand)

    for rank, i in enumerate(order):
        add(
            _Candidate(
                hits[i].entry.answer,
                "past",
                hits[i].entry,
                evidence_answers[rank],
                float(query_sim[i]),
                float(context_sim[i]),
                retrieved=True,
            )
        )
    for h in faq:
        if h.entry.id in vectors:
            add(
                _Candidate(
                    h.entry.answer,
                    "faq",
                    h.entry,
                    vectors.answer([h.entry.id])[0],
                    float(h.similarity),
                    float(vectors.context([h.entry.id])[0] @ c),
                    retrieved=True,
                )
            )
    stock = [
        i
        for i in vectors.stock_ids()
        if vectors.answer_text(i) not in seen
        and (exclude_conversation is None or vectors.conversation(i) != exclude_conversation)
    ]
    if stock:
        stock_q = vectors.query(stock) @ q
        stock_c = vectors.context(stock) @ c
        stock_a = vectors.answer(stock)
        for j, i in enumerate(stock):
            add(
                _Candidate(
                    vectors.answer_text(i),
                    "past",
                    vectors.stock_entry(i),
                    stock_a[j],
                    float(stock_q[j]),
                    float(stock_c[j]),
                    retrieved=False,
                )
            )
    return Pool(
        cands,
        evidence_ids,
        evidence_answers,
        [hits[i].entry.answer for i in order],
        weights,
        neutral,
    )


def diverse_first(
    order: Sequence[int], agreement: Floats, weights: Floats, n: int, among: int = 50
) -> list[int]:
    """The best candidate, then those (from the best ``among``) that most raise the weighted
    coverage Σ_j w_j · max_{chosen} agreement(c, j) of the evidence: the best of three differs
    more often than the three best."""
    if not order:
        return []
    chosen = [order[0]]
    covered = agreement[order[0]].copy()
    pool = list(order[:among])
    while len(chosen) < min(n, len(order)):
        rest = [i for i in pool if i not in chosen]
        if not rest:
            break
        gains = np.maximum(agreement[rest], covered) @ weights
        best = rest[int(np.argmax(gains))]
        chosen.append(best)
        covered = np.maximum(covered, agreement[best])
    return chosen
