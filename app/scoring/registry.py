"""Choosing scorers by name, and the versioned in-domain matchers kept in the store."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from app import paths
from app.scoring.formula import DEFAULT_ALPHA, DEFAULT_THETA
from app.scoring.matcher_features import MatcherInfo, PairLike, ProgressFn
from app.scoring.scorers import (
    E5Matching,
    InDomainMatching,
    MatchingModel,
    ReplyScorer,
    Scores,
    ScoringError,
    SentenceTransformerSimilarity,
    SimilarityModel,
    USESimilarity,
    prepare,
)
from app.store import Store, open_store


class USEMatching:
    """USE cosine of query and reply: an off-the-shelf baseline for ``eval-matcher``."""

    def __init__(self, use: USESimilarity | None = None) -> None:
        self._use = use or USESimilarity()
        self.version = f"use-cosine:{self._use.version}"

    def matching(self, contexts: Sequence[Sequence[str]], replies: Sequence[str]) -> Scores:
        queries = [prepare(ctx[-1]) if ctx else "" for ctx in contexts]
        return np.asarray(self._use.similarity(queries, list(replies)))


def matchers_dir() -> Path:
    path = paths.data_dir() / "matchers"
    path.mkdir(parents=True, exist_ok=True)
    return path


def load_similarity(spec: str = "use") -> SimilarityModel:
    """``use`` (default) or ``st:PATH`` (a sentence-transformers directory, e.g. a SimBERT
    download)."""
    if spec == "use":
        return USESimilarity()
    if spec.startswith("st:"):
        return SentenceTransformerSimilarity(spec[3:])
    raise ScoringError(f"Unknown similarity model {spec!r}: use or st:PATH")


def load_matching(
    spec: str = "active", store: Store | None = None, use: USESimilarity | None = None
) -> MatchingModel:
    """``active`` (the active trained matcher, else the base one), ``base``/``e5``, ``use``,
    a trained matcher's version or a matcher directory. ``use``, when given, is the USE model (and
    vector cache) that the in-domain matcher and the USE baseline share with similarity."""
    encoder = use.cached if use is not None else None
    if spec in ("base", "e5"):
        return E5Matching()
    if spec == "use":
        return USEMatching(use)
    if Path(spec).is_dir():
        return InDomainMatching(spec, encoder)
    store = store or open_store()
    with store.session() as session:
        if spec == "active":
            row = store.active_matcher(session)
            if row is None:
                return E5Matching()
        else:
            row = store.get_matcher(session, spec)
            if row is None:
                raise ScoringError(f"No trained matcher '{spec}' (see: xiaoer matcher list)")
        path = row.path
    return InDomainMatching(path, encoder)


def load_scorer(
    similarity: str = "use",
    matching: str = "active",
    alpha: float = DEFAULT_ALPHA,
    theta: float = DEFAULT_THETA,
    store: Store | None = None,
) -> ReplyScorer:
    """The default scorer: USE similarity and the active matcher, sharing one USE model and cache."""
    sim = load_similarity(similarity)
    shared = sim if isinstance(sim, USESimilarity) else None
    return ReplyScorer(sim, load_matching(matching, store, shared), alpha, theta)


def train_and_register(
    pairs: Sequence[PairLike],
    store: Store | None = None,
    activate: bool = True,
    progress: ProgressFn | None = None,
) -> tuple[str, dict[str, float]]:
    """Train an in-domain matcher on the shop's pairs, record it in the store, and (by default)
    make it the active one. Returns its version and held-out metrics."""
    import time

    from app.scoring.matcher_train import train_matcher

    out = matchers_dir() / time.strftime("%Y%m%d-%H%M%S")
    info = train_matcher(pairs, out, progress=progress)
    register_matcher(store or open_store(), info, activate)
    return info.version, dict(info.metrics)


def register_matcher(store: Store, info: MatcherInfo, activate: bool = True) -> None:
    """Record a trained matcher in the store and (by default) make it the active one."""
    with store.session() as session:
        store.add_matcher_version(
            session,
            info.version,
            "indomain",
            str(info.path),
            {**info.metrics, "n_pairs": info.n_pairs, "train_s": info.train_seconds},
        )
        if activate:
            store.set_active_matcher(session, info.version)
