"""Held-out evaluation of the end model with or without an adapter (``xiaoer eval``)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from app.evolve.data import Example, as_turns
from app.evolve.loop import Served, draft_replies
from app.store import AdapterVersion

TEACHER_CONCURRENCY = 4


def read_pairs(enc: Path, dec: Path, offset: int = 0, limit: int | None = None) -> list[Example]:
    """JDDC-2018-format context → reply pairs, from line ``offset`` on."""
    from app.scoring.corpus import read_jddc2018

    stop = None if limit is None else offset + limit
    pairs = itertools.islice(read_jddc2018(enc, dec), offset, stop)
    return [Example(tuple(p.context), p.reply, "corpus") for p in pairs if p.context]


def mean_ci95(values: Sequence[float]) -> tuple[float, float]:
    """The mean and the half-width of its normal-approximation 95% interval."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, 0.0
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, 1.96 * math.sqrt(var / n)


def evaluate(
    pairs: Sequence[Example],
    adapter: AdapterVersion | None,
    base_model: str,
    scorer: Any,
    teacher: Any | None = None,
) -> dict[str, Any]:
    """Draft a reply for each context; compare it with the human agent's reply (similarity), score
    its match with the context, and — with a teacher — its Final Score against the teacher's reply.
    """
    from app.scoring.scorers import ScoreItem

    if not pairs:
        raise ValueError("No pairs to evaluate")
    replies = draft_replies(Served.of(adapter), pairs, base_model)
    contexts = [list(p.context) for p in pairs]
    similarity = [
        float(s) for s in scorer.similarity_model.similarity(replies, [p.reply for p in pairs])
    ]
    matching = [float(m) for m in scorer.matching_model.matching(contexts, replies)]
    summary: dict[str, Any] = {"n": len(pairs), "adapter": adapter.version if adapter else None}
    for key, values in (("similarity_to_reference", similarity), ("matching", matching)):
        mean, half = mean_ci95(values)
        summary[f"{key}_mean"] = round(mean, 4)
        summary[f"{key}_ci95"] = round(half, 4)
    summary["final_mean"] = None
    if teacher is not None:
        # Several requests in flight: a cloud answers them side by side, the local server is never
        # idle between two (labels/min ~3.5× one at a time here); the service caps the number.
        with ThreadPoolExecutor(max_workers=TEACHER_CONCURRENCY) as pool:
            clouds = list(pool.map(lambda p: teacher.ask(as_turns(p.context)).reply, pairs))
        items = [ScoreItem(c, r, t) for c, r, t in zip(contexts, replies, clouds, strict=True)]
        mean, half = mean_ci95([s.final for s in scorer.score_many(items)])
        summary["final_mean"], summary["final_ci95"] = round(mean, 4), round(half, 4)
        # How close the teacher itself comes to the human agent, beside the end model.
        teacher_similarity = scorer.similarity_model.similarity(clouds, [p.reply for p in pairs])
        mean, half = mean_ci95([float(s) for s in teacher_similarity])
        summary["teacher_similarity_to_reference_mean"] = round(mean, 4)
        summary["teacher_similarity_to_reference_ci95"] = round(half, 4)
    summary["examples"] = [
        {"context": p.context[-1], "reference": p.reply, "reply": r}
        for p, r in list(zip(pairs, replies, strict=True))[:5]
    ]
    return summary
