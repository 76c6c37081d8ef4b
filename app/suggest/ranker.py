"""The ranker: a learned linear combination of candidate features that predicts how similar a
candidate is to the reply the shop's agent would write (USE similarity, the app's metric).

It is trained on the shop's own history (`train_ranker`): for a sample of past dialogues, the
candidates are built exactly as for a live conversation but with that dialogue's own conversation
left out, and the target is each candidate's similarity to the reply the agent actually sent.
A ridge regression (scikit-learn) on standardised features learns the weights in a second or two
on 10k entries. Until a trained ranker is active, `Ranker.untrained()` ranks by consensus alone
(the best single feature in docs/experiments/2026-12-04-grounded-suggestions.md) and its scores
are marked uncalibrated.

Versions are rows of the store's ``matcher_versions`` table with kind ``"ranker"``; the one
active ranker is chosen like the in-domain matcher (`Store.set_active_matcher(..., kind=)`).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from app.fsio import atomic_write_bytes

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
        return {f: round(c, 5) for f, c in zip(self.features, self.coef, strict=True)}

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
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{file}: broken ranker file ({exc})") from exc


def fit_ranker(
    features: npt.ArrayLike,
    targets: npt.ArrayLike,
    metrics: Mapping[str, float] | None = None,
    alpha: float = 1.0,
) -> Ranker:
    """Ridge regression of ``targets`` (similarity to the agent's reply) on standardised
    ``features`` (rows of `FEATURES`); the weights are learned, never set by hand."""
    from sklearn.linear_model import Ridge

    x = np.asarray(features, np.float64)
    y = np.asarray(targets, np.float64)
    if x.ndim != 2 or x.shape[1] != len(FEATURES) or len(x) != len(y) or len(x) < 2:
        raise ValueError(f"need rows of {len(FEATURES)} features and one target per row")
    mean = x.mean(0)
    scale = x.std(0)
    scale[scale < 1e-9] = 1.0  # a constant feature gets no weight, not a division by zero
    model = Ridge(alpha=alpha).fit((x - mean) / scale, y)
    digest = hashlib.sha256(np.concatenate([mean, scale, model.coef_]).tobytes()).hexdigest()
    version = f"ranker-{time.strftime('%Y%m%d-%H%M%S')}-{digest[:8]}"
    return Ranker(
        version,
        tuple(float(v) for v in mean),
        tuple(float(v) for v in scale),
        tuple(float(v) for v in model.coef_),
        float(model.intercept_),
        calibrated=True,
        metrics=dict(metrics or {}),
    )


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
    """Whether the store's active ranker cannot be used: its file is gone or broken, or it was
    trained on another version's features (after an upgrade). The app then trains a new one from
    the knowledge, rather than ranking uncalibrated until the next import."""
    path = _active_path(store)
    if path is None:
        return False
    try:
        Ranker.load(path)
    except ValueError:
        return True
    return False


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
