"""Held-out evaluation of the end model with or without an adapter (``xiaoer eval``)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from app.evolve.data import TrainingExample, as_turns
from app.evolve.gate import Served, draft_replies
from app.fsio import loads_json
from app.store import AdapterVersion

TEACHER_CONCURRENCY = 4
SCORE_KEYS = ("similarity_to_reference", "matching", "final")


def read_pairs(
    enc: Path, dec: Path, offset: int = 0, limit: int | None = None
) -> list[TrainingExample]:
    """JDDC-2018-format context → reply pairs, from line ``offset`` on."""
    from app.scoring.corpus import read_jddc2018

    stop = None if limit is None else offset + limit
    pairs = itertools.islice(read_jddc2018(enc, dec), offset, stop)
    return [TrainingExample(tuple(p.context), p.reply, "corpus") for p in pairs if p.context]


def mean_ci95(values: Sequence[float]) -> tuple[float, float]:
    """The mean and the half-width of its normal-approximation 95% interval."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, 0.0
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, 1.96 * math.sqrt(var / n)


def _summarise(scores: dict[str, list[float]], prefix: str = "") -> dict[str, float]:
    summary = {}
    for key, values in scores.items():
        mean, half = mean_ci95(values)
        summary[f"{prefix}{key}_mean"] = round(mean, 4)
        summary[f"{prefix}{key}_ci95"] = round(half, 4)
    return summary


def paired_deltas(
    scores: dict[str, list[float]], baseline: dict[str, list[float]]
) -> dict[str, float]:
    """Per-context differences (``scores`` − ``baseline``), summarised as ``delta_<key>_mean/_ci95``.

    Both were scored on the same contexts, so the interval of the mean difference is much
    narrower than those of the two means: context difficulty cancels out.
    """
    deltas = {
        key: [a - b for a, b in zip(values, baseline[key], strict=True)]
        for key, values in scores.items()
    }
    return _summarise(deltas, prefix="delta_")


def read_items(path: Path) -> list[dict[str, Any]]:
    """The rows of an items file (``xiaoer eval --items``): one context's replies and scores each."""
    try:
        with path.open(encoding="utf-8") as fh:
            rows = [loads_json(line) for line in fh if line.strip()]
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not an items file from `xiaoer eval --items` ({exc})") from exc
    if not rows or not all(isinstance(r, dict) and SCORE_KEYS[0] in r for r in rows):
        raise ValueError(f"{path}: not an items file from `xiaoer eval --items` (no scored rows)")
    return rows


def item_deltas(
    rows: Sequence[dict[str, Any]], base: Sequence[dict[str, Any]], mismatch: str
) -> dict[str, float]:
    """Paired differences ``rows`` − ``base`` of two items files' scores; ``mismatch`` is the
    error when they don't hold the same contexts in the same order."""
    same = len(rows) == len(base) and all(
        (a.get("context"), a.get("reference")) == (b.get("context"), b.get("reference"))
        for a, b in zip(rows, base, strict=True)
    )
    if not same:
        raise ValueError(mismatch)
    keys = [k for k in SCORE_KEYS if k in rows[0] and k in base[0]]
    return paired_deltas(
        {k: [r[k] for r in rows] for k in keys}, {k: [b[k] for b in base] for k in keys}
    )


def compare_items(base: Sequence[Path], runs: Sequence[Sequence[Path]]) -> dict[str, Any]:
    """Runs against a base over one or more held-out splits (``xiaoer compare``).

    ``base`` has one items file per split; each run the same number, split by split. Each side's
    files are put end to end, then each run's paired differences from the base are summarised;
    with several runs (seeds, say), also those of their scores averaged context by context.
    """
    base_rows = [row for path in base for row in read_items(path)]
    summary: dict[str, Any] = {"n": len(base_rows), "base": [str(p) for p in base], "runs": []}
    all_rows = []
    for files in runs:
        names = " ".join(map(str, files))
        if len(files) != len(base):
            raise ValueError(
                f"each run needs {len(base)} items file(s), one per base file and in the same"
                f" order; got {len(files)}: {names}"
            )
        rows = [row for path in files for row in read_items(path)]
        mismatch = (
            f"{names}: not the base's contexts (the same --pairs/--offset/--limit, in order?)"
        )
        summary["runs"].append(
            {"items": [str(p) for p in files], **item_deltas(rows, base_rows, mismatch)}
        )
        all_rows.append(rows)
    if len(all_rows) > 1:
        keys = [k for k in SCORE_KEYS if all(k in rows[0] for rows in all_rows)]
        averaged = [
            {**row, **{k: sum(rows[i][k] for rows in all_rows) / len(all_rows) for k in keys}}
            for i, row in enumerate(all_rows[0])
        ]
        summary["averaged"] = item_deltas(
            averaged, base_rows, "the averaged runs: not the base's contexts"
        )
    return summary


def _item_scores(
    pairs: Sequence[TrainingExample],
    replies: Sequence[str],
    scorer: Any,
    clouds: Sequence[str] | None,
) -> dict[str, list[float]]:
    """Each reply's similarity to the human reply, its match with the context, and — with the
    teacher's replies — its Final Score."""
    from app.scoring.scorers import ScoreItem

    contexts = [list(p.context) for p in pairs]
    references = [p.reply for p in pairs]
    scores = {
        "similarity_to_reference": [
            float(s) for s in scorer.similarity_model.similarity(replies, references)
        ]
    }
    if clouds is None:
        scores["matching"] = [float(m) for m in scorer.matching(contexts, replies)]
    else:  # the Final Score's own matching: the matcher runs once per reply
        items = [ScoreItem(c, r, t) for c, r, t in zip(contexts, replies, clouds, strict=True)]
        results = scorer.score_many(items)
        scores["matching"] = [s.matching for s in results]
        scores["final"] = [s.final for s in results]
    return scores


def evaluate(
    pairs: Sequence[TrainingExample],
    adapter: AdapterVersion | None,
    base_model: str,
    scorer: Any,
    teacher: Any | None = None,
    *,
    compare: bool = False,
    baseline: AdapterVersion | None = None,
) -> dict[str, Any]:
    """Draft a reply for each context; compare it with the human agent's reply (similarity), score
    its match with the context, and — with a teacher — its Final Score against the teacher's reply.

    With ``compare``, ``baseline`` (None: the base model) answers the same contexts too, and the
    summary adds its means and the paired differences (``delta_*``). ``items`` holds one row per
    context; ``examples`` the first five, shortened.
    """
    if not pairs:
        raise ValueError("No pairs to evaluate")
    replies = draft_replies(Served.of(adapter), pairs, base_model)
    baseline_replies = draft_replies(Served.of(baseline), pairs, base_model) if compare else None
    clouds = None
    if teacher is not None:
        # Several requests in flight: a cloud answers them side by side, the local server is never
        # idle between two (labels/min ~3.5× one at a time here); the service caps the number.
        with ThreadPoolExecutor(max_workers=TEACHER_CONCURRENCY) as pool:
            clouds = list(pool.map(lambda p: teacher.ask(as_turns(p.context)).reply, pairs))
    scores = _item_scores(pairs, replies, scorer, clouds)
    summary: dict[str, Any] = {"n": len(pairs), "adapter": adapter.version if adapter else None}
    summary.update(_summarise(scores))
    summary.setdefault("final_mean", None)
    if clouds is not None:
        # How close the teacher itself comes to the human agent, beside the end model.
        teacher_similarity = scorer.similarity_model.similarity(clouds, [p.reply for p in pairs])
        values = [float(s) for s in teacher_similarity]
        summary.update(_summarise({"teacher_similarity_to_reference": values}))
    baseline_scores = None
    if baseline_replies is not None:
        baseline_scores = _item_scores(pairs, baseline_replies, scorer, clouds)
        summary["baseline"] = {
            "adapter": baseline.version if baseline else None,
            **_summarise(baseline_scores),
        }
        summary.update(paired_deltas(scores, baseline_scores))
    items = _items(pairs, replies, scores, clouds, baseline_replies, baseline_scores)
    summary["examples"] = [
        {k: item[k] for k in ("context", "reference", "reply", "baseline_reply") if k in item}
        for item in items[:5]
    ]
    summary["items"] = items
    return summary


def _items(
    pairs: Sequence[TrainingExample],
    replies: Sequence[str],
    scores: dict[str, list[float]],
    clouds: Sequence[str] | None,
    baseline_replies: Sequence[str] | None,
    baseline_scores: dict[str, list[float]] | None,
) -> list[dict[str, Any]]:
    """One row per context: the replies, the teacher's, and every score (``xiaoer eval --items``)."""
    items = []
    for i, pair in enumerate(pairs):
        item: dict[str, Any] = {
            "context": pair.context[-1],
            "reference": pair.reply,
            "reply": replies[i],
        }
        item.update({key: round(values[i], 4) for key, values in scores.items()})
        if clouds is not None:
            item["teacher_reply"] = clouds[i]
        if baseline_replies is not None and baseline_scores is not None:
            item["baseline_reply"] = baseline_replies[i]
            item.update(
                {f"baseline_{key}": round(values[i], 4) for key, values in baseline_scores.items()}
            )
        items.append(item)
    return items
