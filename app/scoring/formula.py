"""The ECC paper's reply score (Section III).

Final = α · similarity(end reply, cloud reply) + (1 − α) · matching(query, end reply),
except when the cloud reply's own matching score is below Θ: then the matcher is judged unreliable
for this query and Final = similarity alone. Without a cloud reply, Final = matching alone; so too
when the cloud reply only repeats the customer's message (``cloud_repeats``). Such a reply is no
answer to compare with: its matching is 0 by the echo rule (``app.scoring.echo``), so the fallback
would judge the draft by its similarity to the echo alone and give a draft that repeats the customer
too a Final near 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

DEFAULT_ALPHA = 0.8
DEFAULT_THETA = 0.2

Mode = Literal["full", "fallback", "match_only"]


@dataclass(frozen=True)
class ScoreResult:
    similarity: float | None
    """End reply vs cloud reply, in [0, 1]; None without a cloud reply."""
    matching: float
    """Query vs end reply, in [0, 1]."""
    cloud_matching: float | None
    """Query vs cloud reply, in [0, 1]: decides the fallback."""
    final: float
    fallback: bool
    mode: Mode
    alpha: float
    theta: float


def _unit(name: str, value: float) -> float:
    if math.isnan(value):
        raise ValueError(f"{name} is NaN")
    if not -1e-6 <= value <= 1 + 1e-6:
        raise ValueError(f"{name} must lie in [0, 1], got {value}")
    return min(max(value, 0.0), 1.0)


def final_score(
    matching: float,
    similarity: float | None = None,
    cloud_matching: float | None = None,
    alpha: float = DEFAULT_ALPHA,
    theta: float = DEFAULT_THETA,
    cloud_repeats: bool = False,
) -> ScoreResult:
    alpha = _unit("alpha", alpha)
    theta = _unit("theta", theta)
    matching = _unit("matching", matching)
    if similarity is None:
        return ScoreResult(None, matching, None, matching, False, "match_only", alpha, theta)
    similarity = _unit("similarity", similarity)
    if cloud_matching is None:
        raise ValueError("cloud_matching is needed whenever a cloud reply was scored")
    cloud_matching = _unit("cloud_matching", cloud_matching)
    if cloud_repeats:
        return ScoreResult(
            similarity, matching, cloud_matching, matching, False, "match_only", alpha, theta
        )
    if cloud_matching < theta:
        return ScoreResult(
            similarity, matching, cloud_matching, similarity, True, "fallback", alpha, theta
        )
    final = alpha * similarity + (1 - alpha) * matching
    return ScoreResult(similarity, matching, cloud_matching, final, False, "full", alpha, theta)
