"""The gate's verdict as a pure function of the Final Scores (no model, no store), and how
probes are judged beyond the scorer (the commitment guard and USE)."""

from __future__ import annotations

import pytest

from app.evolve.data import TrainingExample
from app.evolve.gate import SAME_REPLY, GateItem, gate, judge_probes


def probe(candidate: float, active: float, agreement: float | None = None) -> GateItem:
    return GateItem("你好", "probe", candidate, active, "cand reply", "active reply", agreement)


def held(candidate: float, active: float) -> GateItem:
    return GateItem("能便宜点吗？", "teacher", candidate, active)


def test_a_better_candidate_with_no_regression_is_promoted() -> None:
    result = gate("v2", [probe(0.8, 0.6), probe(0.7, 0.7)], margin=0.01, tolerance=0.15)
    assert result.promoted
    assert (result.version, result.candidate_final, result.active_final) == ("v2", 0.75, 0.65)
    assert result.reason == "mean Final 0.750 ≥ 0.650 + 0.01"
    assert result.items[0] == {
        "context": "你好",
        "kind": "probe",
        "candidate": 0.8,
        "active": 0.6,
        "candidate_reply": "cand reply",
        "active_reply": "active reply",
        "agreement": None,
    }


def test_a_gain_below_the_margin_is_rejected() -> None:
    result = gate("v2", [probe(0.705, 0.7)], margin=0.01, tolerance=0.15)
    assert not result.promoted
    assert result.reason == "mean Final 0.705 is not above 0.700 + 0.01"


def test_one_probe_dropping_past_the_tolerance_blocks_a_better_mean() -> None:
    items = [probe(0.9, 0.3), probe(0.9, 0.4), probe(0.4, 0.6)]
    result = gate("v2", items, margin=0.01, tolerance=0.15)
    assert result.candidate_final > result.active_final
    assert not result.promoted
    assert result.reason == "a probe dropped by 0.200 (> tolerance 0.15)"
    assert gate("v2", items, margin=0.01, tolerance=0.25).promoted


def test_only_probes_count_for_the_tolerance_but_held_back_labels_count_in_the_mean() -> None:
    items = [probe(0.6, 0.6), held(0.2, 0.9), held(0.9, 0.1)]
    result = gate("v2", items, margin=0.01, tolerance=0.0)
    assert result.promoted, "a held-back label may drop; only a probe's drop blocks"
    assert not gate("v2", [probe(0.6, 0.6), held(0.1, 0.9)], 0.01, 0.15).promoted


def test_a_gate_with_no_probe_is_an_error() -> None:
    with pytest.raises(ValueError):
        gate("v2", [held(0.9, 0.1)], margin=0.01, tolerance=0.15)


def test_a_probe_answered_the_same_way_does_not_block_on_the_scorers_noise() -> None:
    items = [probe(0.9, 0.3), probe(0.54, 0.93, agreement=0.96)]
    assert gate("v2", items, margin=0.01, tolerance=0.15).promoted
    items[1] = probe(0.54, 0.93, agreement=SAME_REPLY - 0.01)
    result = gate("v2", items, margin=0.01, tolerance=0.15)
    assert not result.promoted and result.reason == "a probe dropped by 0.390 (> tolerance 0.15)"


def test_a_promise_to_a_bare_message_scores_zero_and_probes_get_their_agreement() -> None:
    items = [
        TrainingExample(("你好",), "", "probe"),
        TrainingExample(("能便宜点吗？",), "", "probe"),
        TrainingExample(("能便宜点吗？",), "亲，价格是统一的哦", "holdout"),
    ]
    cand_replies = ["您好，有什么我可以帮您的吗？", "亲，价格是统一的哦", "可以便宜20元"]
    base_replies = ["你好，有什么我可以帮你的吗？", "当然可以，价格便宜了20元。", "可以便宜20元"]
    cand, base = [0.5, 0.3, 0.4], [0.9, 0.9, 0.4]
    agreement = judge_probes(items, cand_replies, base_replies, cand, base)
    assert base == [0.9, 0.0, 0.4], "the invented discount scores 0; a held-back pair is not judged"
    assert cand == [0.5, 0.3, 0.4]
    assert set(agreement) == {0, 1}
    assert agreement[0] >= SAME_REPLY > agreement[1]
