"""The gate's verdict as a pure function of the Final Scores: no model, no store."""

from __future__ import annotations

import pytest

from app.evolve.gate import GateItem, gate


def probe(candidate: float, active: float) -> GateItem:
    return GateItem("你好", "probe", candidate, active, "cand reply", "active reply")


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
