"""The paper's experiment through the `xiaoer` command line, as a real subprocess: train a LoRA on
JDDC-format pairs with the real 0.5B, list it, evaluate it on held-out pairs against the real
local teacher beside the base model, and write the report (slow: real models). Refusals and
comparisons, which load no model, call the same commands in-process."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from app.evolve.evaluate import mean_ci95, paired_deltas
from tests.conftest import cli_env
from tests.test_cli import run, xiaoer

CORPUS = Path(__file__).parent / "fixtures" / "corpus"
ENC, DEC = CORPUS / "jddc2018_sample.enc", CORPUS / "jddc2018_sample.dec"


def test_paired_deltas_cancel_what_the_contexts_share() -> None:
    base = {"final": [0.2, 0.5, 0.8, 0.3]}
    better = {"final": [0.25, 0.56, 0.84, 0.36]}
    result = paired_deltas(better, base)
    assert result["delta_final_mean"] == pytest.approx(0.0525, abs=1e-4)
    # Hard and easy contexts move both alike: the difference is far surer than either mean.
    assert 0.0 < result["delta_final_ci95"] < mean_ci95(base["final"])[1] / 5
    with pytest.raises(ValueError):
        paired_deltas({"final": [0.1, 0.2]}, base)


def test_train_refuses_a_corpus_of_curt_replies_and_says_why(capsys, data_home, tmp_path):
    corpus = tmp_path / "curt.jsonl"
    lines = [{"context": ["在吗"], "reply": "在的"}, {"context": ["好"], "reply": "好的亲"}]
    corpus.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in lines), "utf-8")
    args = ["train", "--corpus", str(corpus), "--format", "jsonl", "--name", "curt"]
    code, _, err = run(capsys, *args)
    assert code == 1 and "--min-reply-chars" in err, err
    assert not (data_home / "adapters" / "lora-curt").exists()


@pytest.mark.slow
def test_train_list_eval_and_report(embedded_model_path, models_dir, data_home, tmp_path) -> None:
    from app.engine import weights as engine_weights

    engine_weights.provision(engine_weights.PROFILES["qwen2.5-1.5b"])  # the local teacher
    env = cli_env(models_dir, data_home)
    steps = ["--steps", "2", "--snapshot-every", "1"]
    trained = xiaoer(["train", "--corpus", str(ENC), "--limit", "3", *steps, "--name", "cli"], env)
    assert trained.returncode == 0, trained.stderr
    summary = json.loads(trained.stdout.splitlines()[-1])
    assert summary["status"] == "succeeded" and summary["version"] == "lora-cli"
    run_dir = Path(summary["output_dir"])
    assert sorted(p.name for p in (run_dir / "steps").iterdir()) == ["1", "2"]

    listed = json.loads(xiaoer(["adapters", "list"], env).stdout)
    assert [(v["version"], v["status"]) for v in listed] == [("lora-cli", "candidate")]

    gated = xiaoer(["adapters", "gate", "lora-cli", "--no-promote"], env)
    verdict = json.loads(gated.stdout)
    assert gated.returncode == (0 if verdict["passed"] else 1), gated.stderr
    assert verdict["promoted"] is False and 0.0 <= verdict["candidate_final"] <= 1.0
    listed = json.loads(xiaoer(["adapters", "list"], env).stdout)[0]
    assert listed["gate"] == verdict["reason"]
    assert listed["status"] == ("candidate" if verdict["passed"] else "rejected")

    held_out = ["--pairs", str(ENC), str(DEC), "--offset", "3", "--limit", "2"]
    teacher = ["--teacher", "--examples", str(ENC), "--k", "2"]  # shown 2 past dialogues
    compare = ["--adapter", "lora-cli", "--compare", "none", "--compact"]
    items_file = tmp_path / "items.jsonl"
    evaluated = xiaoer(["eval", *held_out, *teacher, *compare, "--items", str(items_file)], env)
    assert evaluated.returncode == 0, evaluated.stderr
    result = json.loads(evaluated.stdout)
    assert result["n"] == 2 and result["adapter"] == "lora-cli"
    for key in ("similarity_to_reference", "matching", "final", "teacher_similarity_to_reference"):
        assert 0.0 <= result[f"{key}_mean"] <= 1.0, key
    assert all(example["reply"].strip() for example in result["examples"])
    baseline = result["baseline"]
    assert baseline["adapter"] is None  # the base model answered the same contexts
    for key in ("similarity_to_reference", "matching", "final"):
        difference = result[f"{key}_mean"] - baseline[f"{key}_mean"]
        assert result[f"delta_{key}_mean"] == pytest.approx(difference, abs=2e-4), key
    assert all(example["baseline_reply"].strip() for example in result["examples"])
    items = [json.loads(line) for line in items_file.read_text("utf-8").splitlines()]
    assert len(items) == 2 and "items" not in result  # every context in the file, not on stdout
    assert [i["reply"] for i in items] == [e["reply"] for e in result["examples"]]
    assert all(i["teacher_reply"].strip() for i in items)
    mean_final = sum(i["final"] for i in items) / 2
    assert mean_final == pytest.approx(result["final_mean"], abs=2e-4)
    assert sum(i["baseline_final"] for i in items) / 2 == pytest.approx(
        baseline["final_mean"], abs=2e-4
    )

    out = tmp_path / "report"
    probes = ["--probe", "你好", "--probe", "能便宜点吗？"]
    reported = xiaoer(
        ["report", "--runs", str(run_dir), "--out", str(out), "--no-teacher", *probes], env
    )
    assert reported.returncode == 0, reported.stderr
    written = {Path(p).name for p in json.loads(reported.stdout)["written"]}
    assert written == {"table.md", "table.csv", "heatmap.png", "loss.png"}
    with (out / "table.csv").open(encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["probe", "base", "lora@1", "lora@2"]
    assert [r[0] for r in rows[1:]] == ["你好", "能便宜点吗？"]
    assert all(0.0 <= float(v) <= 1.0 for r in rows[1:] for v in r[1:])
    assert (out / "heatmap.png").read_bytes().startswith(b"\x89PNG")


def test_shots_need_the_past_dialogues_to_choose_from(capsys) -> None:
    held_out = ["--pairs", str(ENC), str(DEC), "--limit", "1", "--shots", "2"]
    code, _, err = run(capsys, "eval", *held_out)
    assert code == 1 and "--shots needs --examples" in err


def test_paired_differences_from_an_earlier_run_need_the_same_contexts(tmp_path) -> None:
    from app.evolve.cli import deltas_against

    def row(context: str, similarity: float) -> dict[str, object]:
        return {"context": context, "reference": "r", "similarity_to_reference": similarity}

    earlier = tmp_path / "earlier.jsonl"
    earlier.write_text("\n".join(json.dumps(row(c, 0.2)) for c in "ab") + "\n", "utf-8")
    result = deltas_against([row("a", 0.3), row("b", 0.4)], earlier)
    assert result["delta_similarity_to_reference_mean"] == pytest.approx(0.15)
    with pytest.raises(ValueError, match="not this run's"):
        deltas_against([row("a", 0.3), row("c", 0.4)], earlier)
    earlier.write_bytes(b"\xff not json\n")
    with pytest.raises(ValueError, match="not an items file"):
        deltas_against([row("a", 0.3)], earlier)


def _items_file(path: Path, contexts: str, similarity: list[float]) -> Path:
    """A small ``xiaoer eval --items`` file: one row per context (one character each)."""
    rows = [
        {"context": c, "reference": "r", "similarity_to_reference": s, "matching": 0.5}
        for c, s in zip(contexts, similarity, strict=True)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    return path


def test_runs_compared_with_the_base_over_two_splits_and_averaged_over_seeds(
    tmp_path, capsys
) -> None:
    def items(name: str, contexts: str, similarity: list[float]) -> Path:
        return _items_file(tmp_path / f"{name}.jsonl", contexts, similarity)

    base = [items("base-a", "ab", [0.2, 0.2]), items("base-b", "c", [0.4])]
    seed1 = [items("s1-a", "ab", [0.3, 0.5]), items("s1-b", "c", [0.4])]
    seed2 = [items("s2-a", "ab", [0.1, 0.3]), items("s2-b", "c", [0.7])]
    args = ["compare", "--base", *map(str, base), "--run", *map(str, seed1)]
    code, out, err = run(capsys, *args, "--run", *map(str, seed2))
    assert code == 0, err
    summary = json.loads(out)
    assert summary["n"] == 3
    first, second = summary["runs"]
    assert first["delta_similarity_to_reference_mean"] == pytest.approx(0.4 / 3, abs=1e-4)
    assert second["delta_similarity_to_reference_mean"] == pytest.approx(0.3 / 3, abs=1e-4)
    # Averaged context by context: (0.0, +0.2, +0.15) → mean 0.35 / 3, a narrower interval.
    averaged = summary["averaged"]
    assert averaged["delta_similarity_to_reference_mean"] == pytest.approx(0.35 / 3, abs=1e-4)
    assert averaged["delta_matching_mean"] == 0.0
    assert "delta_final_mean" not in averaged


def test_compared_runs_must_hold_the_base_contexts_in_order(tmp_path) -> None:
    from app.evolve.evaluate import compare_items

    def items(name: str, contexts: str) -> Path:
        return _items_file(tmp_path / f"{name}.jsonl", contexts, [0.2] * len(contexts))

    base = [items("base-a", "ab"), items("base-b", "c")]
    with pytest.raises(ValueError, match="not the base's contexts"):
        compare_items(base, [[items("run-b", "c"), items("run-a", "ab")]])  # splits swapped
    with pytest.raises(ValueError, match="needs 2 items file"):
        compare_items(base, [[items("run-a", "ab")]])
    broken = tmp_path / "broken.jsonl"
    broken.write_bytes(b"\x00\xff\xfe binary")
    with pytest.raises(ValueError, match=r"broken\.jsonl: not an items file"):
        compare_items(base, [[items("run-a", "ab"), broken]])
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n", "utf-8")
    with pytest.raises(ValueError, match="no scored rows"):
        compare_items([empty], [[empty]])


@pytest.mark.slow
def test_training_and_drafting_with_past_dialogues_shown(
    embedded_model_path, models_dir, data_home, tmp_path
) -> None:
    env = cli_env(models_dir, data_home)
    shots = ["--examples", str(ENC), "--shots", "2"]
    trained = xiaoer(["train", "--corpus", str(ENC), *shots, "--steps", "1", "--name", "s"], env)
    assert trained.returncode == 0, trained.stderr
    run_dir = Path(json.loads(trained.stdout.splitlines()[-1])["output_dir"])
    records = [
        json.loads(line) for line in (run_dir / "data.jsonl").read_text("utf-8").split("\n") if line
    ]
    assert records and all(len(r["shots"]) == 2 for r in records)
    # A training pair is never shown its own dialogue: it would learn to copy.
    assert all(r["context"][-1] not in [q for q, _ in r["shots"]] for r in records)
    assert json.loads((run_dir / "run.json").read_text())["max_input"] > 160  # room for them

    held_out = ["--pairs", str(ENC), str(DEC), "--offset", "3", "--limit", "2", "--compact"]
    plain = xiaoer(["eval", *held_out, "--adapter", "none", "--items", str(tmp_path / "a")], env)
    assert plain.returncode == 0, plain.stderr
    against = ["--against", str(tmp_path / "a")]
    evaluated = xiaoer(["eval", *held_out, *shots, "--adapter", "lora-s", *against], env)
    assert evaluated.returncode == 0, evaluated.stderr
    result = json.loads(evaluated.stdout)
    assert result["n"] == 2 and all(e["reply"].strip() for e in result["examples"])
    difference = result["matching_mean"] - json.loads(plain.stdout)["matching_mean"]
    assert result["against"]["delta_matching_mean"] == pytest.approx(difference, abs=2e-4)


def test_a_round_with_unreadable_past_dialogues_says_so(capsys, tmp_path) -> None:
    missing = tmp_path / "missing.jsonl"
    args = ["evolve", "--now", "--jsonl", "--examples", str(missing), "--shots", "2"]
    code, out, _ = run(capsys, *args)
    assert code == 1
    event = json.loads(out.splitlines()[-1])
    assert event["event"] == "error" and "missing.jsonl" in event["message"]
