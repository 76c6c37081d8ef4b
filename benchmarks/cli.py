"""``xiaoer bench TARGET``: which benchmark each target runs (``app/cli.py`` parses the
arguments and calls ``run`` through ``app.source_checkout``)."""

from __future__ import annotations

import argparse
from typing import Any


def run(target: str, args: argparse.Namespace) -> dict[str, Any]:
    if target == "teacher":
        from benchmarks.runtime import bench_teacher

        return bench_teacher(args.labels, args.max_tokens, args.profile)
    if target == "engine":
        from benchmarks.runtime import bench_engine

        return bench_engine(args.model, args.runs, args.max_tokens)
    if target == "score":
        from benchmarks.runtime import bench_score

        return bench_score(args.runs, args.batch)
    if target == "redact":
        from benchmarks.runtime import bench_redact, peak_rss_mb

        return {"benchmark": "redact", **bench_redact(), "peak_rss_mb": round(peak_rss_mb(), 1)}
    if target == "ui":
        from benchmarks.ui import bench_ui

        return bench_ui(args.model, args.max_tokens)
    if target == "evolve":
        from benchmarks.evolve import bench_evolve

        return bench_evolve(args.labels_evolve, args.steps)
    if target == "onboard":
        from benchmarks.evolve import bench_onboard

        return bench_onboard(args.pairs, args.steps or 6)
    if target == "knowledge":
        from benchmarks.knowledge import bench_knowledge

        return bench_knowledge([int(n) for n in str(args.entries).split(",") if n.strip()])
    if target == "team":
        from benchmarks.team import run as bench_team

        return bench_team(args)
    raise ValueError(f"Unknown benchmark {target!r}")
