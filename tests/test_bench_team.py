"""``xiaoer bench team`` (benchmarks/team.py): what its JSON line counts. The run itself starts
PostgreSQL, llama.cpp's server with the real model, N agent processes and a training worker: it
is measured (docs/measurements.md), not run here."""

from __future__ import annotations

import json
from pathlib import Path

from app.cli import build_parser
from app.source_checkout import benchmarks_module

team = benchmarks_module("team")


def agent(ratings: list[str], latencies: list[float], swapped_at: float | None = None) -> dict:  # type: ignore[type-arg]
    return {
        "drafts": len(latencies),
        "latencies": latencies,
        "ratings": ratings,
        "db_errors": 1,
        "swapped_at": swapped_at,
    }


def report(results: list[dict], stored: list[str], promoted_at: float | None = 100.0) -> dict:  # type: ignore[type-arg]
    config = team.TeamBench(agents=len(results), minutes=1)
    round_report = {"status": "succeeded", "version": "v1", "promoted": True}
    return team._report(  # type: ignore[no-any-return]
        config, results, stored, "v1", promoted_at, round_report, 10, "fixture", 60.0, 1.0, {}
    )


def test_lost_and_duplicated_ratings_are_counted_against_what_the_agents_sent() -> None:
    results = [agent(["a", "b"], [1.0, 3.0], 104.0), agent(["c"], [2.0], 101.5)]
    out = report(results, stored=["a", "b", "c"])
    assert (out["agents"], out["drafts"], out["ratings_sent"]) == (2, 3, 3)
    assert (out["ratings_stored"], out["ratings_duplicated"], out["ratings_lost"]) == (3, 0, 0)
    assert (out["draft_p50_s"], out["db_errors"]) == (2.0, 2)
    assert out["adapter_propagation_s"] == 4.0  # promotion → the last agent's swap

    out = report(results, stored=["a", "a", "c"])
    assert (out["ratings_stored"], out["ratings_duplicated"], out["ratings_lost"]) == (3, 1, 1)


def test_propagation_is_null_until_every_agent_swapped() -> None:
    results = [agent(["a"], [1.0], 104.0), agent(["b"], [1.0], None)]
    assert report(results, stored=["a", "b"])["adapter_propagation_s"] is None
    assert report(results[:1], stored=["a"], promoted_at=None)["adapter_propagation_s"] is None


def test_the_replay_ends_each_context_with_the_customer(tmp_path: Path) -> None:
    files = (team.FIXTURE / "jddc2018_sample.enc", team.FIXTURE / "jddc2018_sample.dec")
    count, _ = team.write_pairs(tmp_path / "pairs.jsonl", limit=50, files=files)
    rows = [json.loads(line) for line in (tmp_path / "pairs.jsonl").read_text().splitlines()]
    assert count == len(rows) > 0
    assert all(len(r["turns"]) % 2 == 1 and len(r["turns"]) <= team.CONTEXT_TURNS for r in rows)


def test_xiaoer_bench_team_takes_the_issues_command_line() -> None:
    args = build_parser().parse_args(["bench", "team", "--agents", "20", "--minutes", "2"])
    assert (args.target, args.agents, args.minutes, args.no_evolve) == ("team", 20, 2.0, False)
