"""The paper's Table VI and Fig. 3: Final Score per probe input, for the base model and for each
method × step checkpoint, plus the training loss curves (``xiaoer report``)."""

from __future__ import annotations

import csv
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app.engine import weights
from app.evolve.data import TrainingExample, as_turns
from app.evolve.gate import Served, draft_replies
from app.evolve.settings import PAPER_PROBES


def checkpoints(run_dir: Path) -> list[tuple[str, Path]]:
    """(column name, peft adapter dir) for each step snapshot of a run, else its final adapter."""
    config = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    method = config["method"]
    steps = run_dir / "steps"
    found = (
        sorted((int(p.name), p) for p in steps.glob("*") if p.is_dir() and p.name.isdigit())
        if steps.is_dir()
        else []
    )
    if found:
        return [(f"{method}@{n}", path) for n, path in found]
    return [(f"{method}@{config['steps']}", run_dir / "adapter")]


def _served(name: str, adapter_dir: Path, scratch: Path) -> Served:
    config = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    if config.get("peft_type") != "LORA":
        return Served(name, "prefix", adapter_dir)
    from app.evolve.export import export_lora_gguf

    gguf = scratch / f"{name.replace('@', '-')}.gguf"
    export_lora_gguf(adapter_dir, weights.resolve(None).path, gguf)
    return Served(name, "lora", gguf)


def loss_curves(run_dirs: Sequence[Path]) -> dict[str, list[tuple[int, float]]]:
    curves: dict[str, list[tuple[int, float]]] = {}
    for run in run_dirs:
        log = run / "train.jsonl"
        if not log.is_file():
            continue
        points: dict[int, float] = {}
        for line in log.read_text(encoding="utf-8").splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("event") == "step":
                points[int(event["step"])] = float(event["loss"])  # a resumed run overwrites
        curves[run.name] = sorted(points.items())
    return curves


def write_report(
    run_dirs: Sequence[Path],
    out: Path,
    teacher: Any | None = None,
    probes: Sequence[str] | None = None,
    scorer: Any | None = None,
) -> list[Path]:
    """Write table.md, table.csv, heatmap.png and loss.png into ``out``; returns their paths."""
    from app.scoring.scorers import ScoreItem

    if scorer is None:
        from app.scoring.registry import load_scorer

        scorer = load_scorer()
    probes = list(probes or PAPER_PROBES)
    items = [TrainingExample((p,), "", "probe") for p in probes]
    references: list[str | None] = [None] * len(probes)
    if teacher is not None:
        references = [teacher.ask(as_turns(ex.context)).reply for ex in items]
    out.mkdir(parents=True, exist_ok=True)
    columns: dict[str, list[float]] = {}
    replies: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        served: list[tuple[str, Served | None]] = [("base", None)]
        for run in run_dirs:
            served += [(n, _served(n, p, Path(scratch))) for n, p in checkpoints(run)]
        for name, adapter in served:
            texts = draft_replies(adapter, items, weights.DEFAULT_PROFILE)
            scored = scorer.score_many(
                [ScoreItem([p], r, c) for p, r, c in zip(probes, texts, references, strict=True)]
            )
            columns[name] = [round(s.final, 3) for s in scored]
            replies[name] = texts
    names = list(columns)
    table_md = out / "table.md"
    lines = ["| probe | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for i, probe in enumerate(probes):
        lines.append(f"| {probe} | " + " | ".join(f"{columns[n][i]:.3f}" for n in names) + " |")
    mode = "Final Score vs the teacher" if teacher else "match-only score (no teacher)"
    lines += ["", f"Cells: {mode}, α {scorer.alpha}, Θ {scorer.theta}."]
    table_md.write_text("\n".join(lines) + "\n", encoding="utf-8")
    table_csv = out / "table.csv"
    with table_csv.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["probe", *names])
        for i, probe in enumerate(probes):
            writer.writerow([probe, *(columns[n][i] for n in names)])
    (out / "replies.json").write_text(
        json.dumps(
            {"probes": probes, "references": references, "replies": replies},
            ensure_ascii=False,
            indent=2,
        ),
        encoding="utf-8",
    )
    return [table_md, table_csv, _heatmap(columns, probes, out), _losses(run_dirs, out)]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import font_manager

    # Chinese probe labels need a CJK font when one is installed; otherwise they show as boxes.
    for font in ("Noto Sans CJK SC", "WenQuanYi Zen Hei", "SimHei", "Source Han Sans SC"):
        if any(f.name == font for f in font_manager.fontManager.ttflist):
            plt.rcParams["font.sans-serif"] = [font]
            break
    return plt


def _heatmap(columns: dict[str, list[float]], probes: Sequence[str], out: Path) -> Path:
    plt = _pyplot()
    names = list(columns)
    grid = [[columns[n][i] for n in names] for i in range(len(probes))]
    fig, ax = plt.subplots(figsize=(1.2 * len(names) + 3, 0.6 * len(probes) + 1.5))
    image = ax.imshow(grid, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_yticks(range(len(probes)), [f"P{i + 1}" for i in range(len(probes))])
    for i, row in enumerate(grid):
        for j, value in enumerate(row):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", color="white", fontsize=8)
    fig.colorbar(image, ax=ax, label="Final Score")
    ax.set_title("Final Score per probe (P1…P6 = the paper's probe inputs, see table.md)")
    fig.tight_layout()
    path = out / "heatmap.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _losses(run_dirs: Sequence[Path], out: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, points in loss_curves(run_dirs).items():
        if points:
            ax.plot([s for s, _ in points], [v for _, v in points], label=name)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (reply tokens)")
    ax.legend()
    fig.tight_layout()
    path = out / "loss.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
