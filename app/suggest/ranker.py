"""The ranker: a learned linear combination of candidate features that predicts how similar a
candidate is to the reply the shop's agent would write (USE similarity, the app's metric).

It is trained on the shop's own history (`train_ranker`): for a sample of past dialogues, the
candidates are built exactly as for a live conversation but with that dialogue's own conversation
left out, and the target is each candidate's similarity to the reply the agent actually sent.
A ridge regression (scikit-learn) on standardised features learns the weights in a second or two
on 10k entries. Until a trained ranker is active, `Ranker.untrained()` ranks by consensus alone
(the best single feature in docs/experiments/2026-12-04-grounded-suggestions.md) and its scores
are marked uncalibrated.

A ranker trained after an import has a second stage (`SecondStage`) for the replies that come
from outside the knowledge (the model's draft, a reply the agent typed, another shop's replies):
the first stage can judge those only by how similar their words are to the conversation, so the
in-domain matcher, trained on the same history, reads the conversation and the reply, and a
second ridge regression on [first-stage score, matcher logit] gives their score. Past replies
and FAQ answers keep their first-stage score: their own question and context are the better
evidence (measured in docs/experiments/2026-12-04-grounded-suggestions.md).

Versions are rows of the store's ``matcher_versions`` table with kind ``"ranker"``; the one
active ranker is chosen like the in-domain matcher (`Store.set_active_matcher(..., kind=)`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from app.fsio import atomic_write_bytes

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
RANKER_KIND = "ranker"
RANKER_FILE = "ranker.json"
FEATURES = (
    "consensus",
    "query_sim",
    "context_sim",
    "centrality",
    "log_chars",
    "masks",
    "reply_query_sim",
    "reply_context_sim",
)
"""What `app.suggest.candidates` measures for every candidate:
consensus    similarity-weighted mean USE similarity of its answer to the answers of the past
             dialogues most similar to ours (a minimum-Bayes-risk estimate of the metric)
query_sim    USE similarity of its question to our customer's last message
context_sim  USE similarity of its last few turns to ours
centrality   similarity of its answer to the centroid of all the shop's answers (a stock reply?)
log_chars    log(1 + characters of the answer)
masks        platform masks left unfilled in it
reply_query_sim    USE similarity of its answer to our customer's last message (does it answer
                   this at all? matters for replies not retrieved: the model's draft, typed text)
reply_context_sim  USE similarity of its answer to our last few turns
"""
ProgressFn = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class SecondStage:
    """score = intercept + Σ coef · (x − mean) / scale for x = [first-stage score, the matcher's
    logit]: the score of a reply from outside the knowledge."""

    matcher_version: str
    matcher_path: str
    mean: tuple[float, float]
    scale: tuple[float, float]
    coef: tuple[float, float]
    intercept: float

    def score(self, first: npt.ArrayLike, logits: npt.ArrayLike) -> npt.NDArray[np.float64]:
        x = np.column_stack([np.asarray(first, np.float64), np.asarray(logits, np.float64)])
        z = (x - np.asarray(self.mean)) / np.asarray(self.scale)
        return np.asarray(z @ np.asarray(self.coef) + self.intercept, np.float64)

    def to_json(self) -> dict[str, Any]:
        return {
            "matcher_version": self.matcher_version,
            "matcher_path": self.matcher_path,
            "mean": list(self.mean),
            "scale": list(self.scale),
            "coef": list(self.coef),
            "intercept": self.intercept,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> SecondStage:
        def pair(key: str) -> tuple[float, float]:
            a, b = (float(v) for v in raw[key])
            return a, b

        return cls(
            str(raw["matcher_version"]),
            str(raw["matcher_path"]),
            pair("mean"),
            pair("scale"),
            pair("coef"),
            float(raw["intercept"]),
        )


@dataclass(frozen=True)
class Ranker:
    """score(features) = intercept + Σ coef · (feature − mean) / scale."""

    version: str
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    calibrated: bool
    """True for a ranker trained on the shop's data: its score predicts the similarity to the
    agent's reply. False for the untrained default, whose score is only an order."""
    metrics: Mapping[str, float] = field(default_factory=dict)
    features: tuple[str, ...] = FEATURES
    second: SecondStage | None = None

    def __post_init__(self) -> None:
        n = len(self.features)
        if not len(self.mean) == len(self.scale) == len(self.coef) == n:
            raise ValueError("a ranker needs one mean, scale and weight per feature")
        if self.features != FEATURES:
            raise ValueError(f"ranker features {self.features} are not this version's {FEATURES}")

    @classmethod
    def untrained(cls) -> Ranker:
        ones = (1.0,) * len(FEATURES)
        coef = tuple(1.0 if f == "consensus" else 0.0 for f in FEATURES)
        return cls("untrained", (0.0,) * len(FEATURES), ones, coef, 0.0, calibrated=False)

    def score(self, features: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """One score per row of ``features`` (columns in `FEATURES` order)."""
        x = np.atleast_2d(np.asarray(features, np.float64))
        z = (x - np.asarray(self.mean)) / np.asarray(self.scale)
        return np.asarray(z @ np.asarray(self.coef) + self.intercept, np.float64)

    def weights(self) -> dict[str, float]:
        """The learned weight of each feature per standard deviation, for reports."""
        out = {f: round(c, 5) for f, c in zip(self.features, self.coef, strict=True)}
        if self.second is not None:
            out |= {
                "second_first_stage": round(self.second.coef[0], 5),
                "second_matcher": round(self.second.coef[1], 5),
            }
        return out

    # --- files ---------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "version": self.version,
            "features": list(self.features),
            "mean": list(self.mean),
            "scale": list(self.scale),
            "coef": list(self.coef),
            "intercept": self.intercept,
            "calibrated": self.calibrated,
            "metrics": dict(self.metrics),
            "second": None if self.second is None else self.second.to_json(),
        }

    def save(self, directory: Path) -> Path:
        """Writes ``directory/ranker.json`` atomically (temp file, fsync, rename)."""
        path = directory / RANKER_FILE
        data = json.dumps(self.to_json(), ensure_ascii=False, indent=1).encode()
        atomic_write_bytes(path, data)
        return path

    @classmethod
    def load(cls, path: Path) -> Ranker:
        """From a ranker directory or its ``ranker.json``; ValueError names what is wrong."""
        file = path / RANKER_FILE if path.is_dir() else path
        try:
            raw = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{file}: not a readable ranker file ({exc})") from exc
        if not isinstance(raw, dict) or raw.get("format") != FORMAT_VERSION:
            raise ValueError(f"{file}: not a ranker file of format {FORMAT_VERSION}")
        try:
            return cls(
                str(raw["version"]),
                tuple(float(v) for v in raw["mean"]),
                tuple(float(v) for v in raw["scale"]),
                tuple(float(v) for v in raw["coef"]),
                float(raw["intercept"]),
                bool(raw["calibrated"]),
                {str(k): float(v) for k, v in raw.get("metrics", {}).items()},
                tuple(str(f) for f in raw["features"]),
                None if raw.get("second") is None else SecondStage.from_json(raw["second"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{file}: broken ranker file ({exc})") from exc


def _ridge(
    x: npt.NDArray[np.float64], y: npt.NDArray[np.float64], alpha: float
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64], float]:
    """(mean, scale, coef, intercept) of a ridge regression on standardised columns."""
    from sklearn.linear_model import Ridge

    mean = x.mean(0)
    scale = x.std(0)
    scale[scale < 1e-9] = 1.0  # a constant feature gets no weight, not a division by zero
    model = Ridge(alpha=alpha).fit((x - mean) / scale, y)
    return mean, scale, np.asarray(model.coef_, np.float64), float(model.intercept_)


def fit_ranker(
    features: npt.ArrayLike,
    targets: npt.ArrayLike,
    metrics: Mapping[str, float] | None = None,
    alpha: float = 1.0,
) -> Ranker:
    """Ridge regression of ``targets`` (similarity to the agent's reply) on standardised
    ``features`` (rows of `FEATURES`); the weights are learned, never set by hand."""
    x = np.asarray(features, np.float64)
    y = np.asarray(targets, np.float64)
    if x.ndim != 2 or x.shape[1] != len(FEATURES) or len(x) != len(y) or len(x) < 2:
        raise ValueError(f"need rows of {len(FEATURES)} features and one target per row")
    mean, scale, coef, intercept = _ridge(x, y, alpha)
    digest = hashlib.sha256(np.concatenate([mean, scale, coef]).tobytes()).hexdigest()
    version = f"ranker-{time.strftime('%Y%m%d-%H%M%S')}-{digest[:8]}"
    return Ranker(
        version,
        tuple(float(v) for v in mean),
        tuple(float(v) for v in scale),
        tuple(float(v) for v in coef),
        intercept,
        calibrated=True,
        metrics=dict(metrics or {}),
    )


def fit_second_stage(
    first: npt.ArrayLike,
    logits: npt.ArrayLike,
    targets: npt.ArrayLike,
    matcher_version: str,
    matcher_path: Path,
    alpha: float = 1.0,
) -> SecondStage:
    """Ridge regression of ``targets`` on [first-stage score, matcher logit]."""
    x = np.column_stack([np.asarray(first, np.float64), np.asarray(logits, np.float64)])
    y = np.asarray(targets, np.float64)
    if len(x) != len(y) or len(x) < 2:
        raise ValueError("need one first-stage score, logit and target per candidate")
    mean, scale, coef, intercept = _ridge(x, y, alpha)
    return SecondStage(
        matcher_version,
        str(matcher_path),
        (float(mean[0]), float(mean[1])),
        (float(scale[0]), float(scale[1])),
        (float(coef[0]), float(coef[1])),
        intercept,
    )


def load_stage_matcher(ranker: Ranker, encoder: Any = None) -> Any:
    """The in-domain matcher the ranker's second stage reads (``encoder``: the USE model to
    share), or None when it has none or the matcher's files no longer load: the first stage
    alone then ranks, as it was trained to."""
    if ranker.second is None:
        return None
    from app.scoring.indomain import load_matcher

    try:
        matcher = load_matcher(Path(ranker.second.matcher_path), encoder)
    except (OSError, ValueError, KeyError) as exc:
        log.warning("the ranker's matcher %s does not load: %s", ranker.second.matcher_path, exc)
        return None
    if matcher.version != ranker.second.matcher_version:
        log.warning(
            "%s holds matcher %s, not %s",
            ranker.second.matcher_path,
            matcher.version,
            ranker.second.matcher_version,
        )
        return None
    return matcher


def two_stage_scores(
    ranker: Ranker,
    matcher: Any,
    context: Sequence[str],
    texts: Sequence[str],
    rows: npt.ArrayLike,
    outside: Sequence[int] = (),
) -> npt.NDArray[np.float64]:
    """The ranker's score of each candidate (``texts``, their feature ``rows``) for a
    conversation: the first stage's, and for the replies from ``outside`` the knowledge (their
    indices: a draft, typed replies) the second stage's. ``matcher``: the second stage's
    (`load_stage_matcher`); without it the first stage alone scores them."""
    scores = ranker.score(rows)
    second = ranker.second
    read = sorted({int(i) for i in outside})
    if second is None or matcher is None or not read:
        return scores
    logits = matcher.logits(list(context), [texts[i] for i in read])
    scores[read] = second.score(scores[read], logits)
    return scores


def register_ranker(store: Any, ranker: Ranker, directory: Path, activate: bool = True) -> Path:
    """Save ``ranker`` under ``directory``, record it in the store, make it active if asked."""
    path = ranker.save(directory)
    with store.session() as session:
        store.add_matcher_version(
            session, ranker.version, RANKER_KIND, str(directory), dict(ranker.metrics)
        )
        if activate:
            store.set_active_matcher(session, ranker.version, kind=RANKER_KIND)
    return path


def _active_path(store: Any) -> Path | None:
    with store.session() as session:
        row = store.active_matcher(session, kind=RANKER_KIND)
        return None if row is None else Path(row.path)


def active_ranker(store: Any) -> Ranker:
    """The store's active ranker, or the untrained default when none is active or its file is
    gone (a missing file must not stop suggestions)."""
    path = _active_path(store)
    if path is None:
        return Ranker.untrained()
    try:
        return Ranker.load(path)
    except ValueError:
        return Ranker.untrained()


def ranker_is_stale(store: Any) -> bool:
    """Whether the store's active ranker cannot be used: its file is gone or broken, it was
    trained on another version's features (after an upgrade), or its second stage's matcher is
    gone. The app then trains a new one from the knowledge, rather than ranking uncalibrated (or
    with one stage) until the next import."""
    from app.scoring.matcher_features import META_FILE

    path = _active_path(store)
    if path is None:
        return False
    try:
        ranker = Ranker.load(path)
    except ValueError:
        return True
    return ranker.second is not None and not Path(ranker.second.matcher_path, META_FILE).is_file()


def list_rankers(store: Any) -> list[dict[str, Any]]:
    with store.session() as session:
        rows = store.matcher_versions(session, kind=RANKER_KIND)
        return [
            {
                "version": r.version,
                "active": r.active,
                "path": r.path,
                "metrics": r.metrics,
                "created": r.created_at.isoformat(),
            }
            for r in rows
        ]


def feature_rows(rows: Sequence[Mapping[str, float]]) -> npt.NDArray[np.float64]:
    return np.array([[float(r[f]) for f in FEATURES] for r in rows], np.float64)
