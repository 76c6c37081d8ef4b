"""Precision and recall of the commitment guard on a labelled set (`xiaoer eval-guard`).

Precision and recall come with Wilson 95 % intervals: the sets are small (tens of cases).

A case is a JSON line {"reply", "evidence": [...], "unsupported": [kinds], "label":
"supported" | "unsupported"}. A case is flagged when the guard finds an unsupported commitment;
precision and recall are those of flagging the cases labelled "unsupported". Per kind, a case
counts once for each kind in its labelled or its flagged kinds.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.suggest.guard import KINDS, check_commitments

LABELS = ("supported", "unsupported")
# The labelled set lives with the tests in a source checkout (the wheel does not ship it).
FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "fixtures"
DEFAULT_CASE_FILES = (FIXTURES / "commitments.jsonl", FIXTURES / "commitments_heldout.jsonl")


@dataclass(frozen=True)
class LabelledCase:
    reply: str
    evidence: tuple[str, ...]
    unsupported: tuple[str, ...]  # the kinds no evidence supports
    label: str


def load_cases(path: Path) -> list[LabelledCase]:
    """Read a labelled set; a broken line is an error naming the file and the line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc.reason})") from None
    cases = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            cases.append(_case(json.loads(line)))
        except (json.JSONDecodeError, TypeError, KeyError, ValueError) as exc:
            raise ValueError(f"{path}:{number}: not a labelled case ({exc})") from None
    if not cases:
        raise ValueError(f"{path}: no cases")
    return cases


def _case(row: Any) -> LabelledCase:
    if not isinstance(row, dict):
        raise TypeError("expected a JSON object")
    reply, evidence, kinds, label = row["reply"], row["evidence"], row["unsupported"], row["label"]
    if not isinstance(reply, str) or not isinstance(evidence, list) or not isinstance(kinds, list):
        raise TypeError("reply must be a string, evidence and unsupported lists")
    if not all(isinstance(e, str) for e in evidence):
        raise TypeError("evidence must hold strings")
    if label not in LABELS:
        raise ValueError(f"label must be one of {LABELS}, not {label!r}")
    if any(k not in KINDS for k in kinds):
        raise ValueError(f"unsupported kinds must be among {KINDS}")
    if (label == "unsupported") != bool(kinds):
        raise ValueError("an 'unsupported' case names its kinds; a 'supported' one names none")
    return LabelledCase(reply, tuple(evidence), tuple(kinds), label)


def _ratio(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def wilson_ci95(successes: int, trials: int) -> list[float] | None:
    """The Wilson score 95 % interval of a proportion (sound for small n and for 0 or n)."""
    if not trials:
        return None
    z = 1.959964
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = (
        z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    )
    return [round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)]


def evaluate(cases: Sequence[LabelledCase]) -> dict[str, Any]:
    """n, precision, recall and F1 of flagging unsupported cases, and per-kind counts.

    `without_evidence` is the same guard blind to the evidence (every asserted promise flagged):
    what checking the evidence adds.
    """
    tp = fp = fn = tn = 0
    blind_tp = blind_fp = 0
    kinds = {k: {"tp": 0, "fp": 0, "fn": 0} for k in KINDS}
    for case in cases:
        result = check_commitments(case.reply, case.evidence)
        flagged, labelled = not result.ok, case.label == "unsupported"
        tp += flagged and labelled
        fp += flagged and not labelled
        fn += labelled and not flagged
        tn += not flagged and not labelled
        blind_tp += bool(result.commitments) and labelled
        blind_fp += bool(result.commitments) and not labelled
        found, gold = set(result.unsupported_kinds()), set(case.unsupported)
        for kind in found | gold:
            key = "tp" if kind in found and kind in gold else "fp" if kind in found else "fn"
            kinds[kind][key] += 1
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    f1 = round(2 * precision * recall / (precision + recall), 4) if precision and recall else None
    return {
        "n": len(cases),
        "n_unsupported": tp + fn,
        "precision": precision,
        "precision_ci95": wilson_ci95(tp, tp + fp),
        "recall": recall,
        "recall_ci95": wilson_ci95(tp, tp + fn),
        "f1": f1,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "kinds": kinds,
        "without_evidence": {
            "precision": _ratio(blind_tp, blind_tp + blind_fp),
            "recall": _ratio(blind_tp, tp + fn),
        },
    }


def evaluate_files(paths: Iterable[Path]) -> dict[str, dict[str, Any]]:
    """`evaluate` for each file, keyed by the file's name without its extension."""
    return {path.stem: evaluate(load_cases(path)) for path in paths}
