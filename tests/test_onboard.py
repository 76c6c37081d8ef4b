"""The warm start ("onboarding") and rounds on top of it, on the tiny random Qwen2 model: reading
and cleaning a shop's history, packing, the token budget, kill and resume of the child process,
registration as an adapter version, and a round that continues from it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from app.evolve import labels as labelling
from app.evolve.config import CONTINUE_LR_FACTOR, QUICK_LR, TrainConfig
from app.evolve.data import IGNORE_INDEX, TrainingExample, encode, pack, read_examples
from app.evolve.gate import GateItem, gate
from app.evolve.onboard import (
    OnboardPlan,
    clean_history,
    onboard,
    onboarding_config,
    plan_onboarding,
    read_history,
    split_holdout,
)
from app.evolve.promotion import sha256_of
from app.evolve.settings import EvolutionSettings
from app.evolve.train import (
    _collate,
    packed_loss,
    planned_steps,
    prompt_budget,
    reply_loss,
    train,
)
from app.store import Store, open_store
from app.store.models import utcnow

torch = pytest.importorskip("torch", reason="training needs the [hf] extra")

STOCK = "请问还有其他还可以帮到您的吗?"
HISTORY_CSV = "conversation,customer,agent\n" + "".join(
    f"c{i},你好，订单[订单编号:[数字x]]什么时候到{i}？,亲，订单[订单编号:[数字x]]预计明天送达哦{i}\n"
    f"c{i},可以开发票吗{i}？,亲，可以开电子发票的，下单时填写抬头即可{i}\n"
    for i in range(12)
)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = open_store(f"sqlite:///{tmp_path / 'x.db'}")
    yield s
    s.close()


@pytest.fixture
def history(tmp_path: Path) -> Path:
    path = tmp_path / "history.csv"
    path.write_text(HISTORY_CSV, encoding="utf-8")
    return path


def test_history_is_read_by_the_importer_and_cleaned_with_masks_kept(tmp_path: Path) -> None:
    rows = [
        ("a", "在吗", "在的"),  # curt
        ("b", "订单到哪了", "亲，您的订单[订单编号:[数字x]]已经出库了哦"),
        ("b", "订单到哪了", "亲，您的订单[订单编号:[数字x]]已经出库了哦"),  # duplicate
        *[(f"s{i}", f"好的谢谢{i}", STOCK) for i in range(4)],  # a stock phrase, capped at 2
    ]
    path = tmp_path / "h.jsonl"
    path.write_text(
        "".join(
            json.dumps({"context": [q], "reply": r, "conversation": c}, ensure_ascii=False) + "\n"
            for c, q, r in rows
        ),
        encoding="utf-8",
    )
    examples = read_history(path, "jsonl")
    assert len(examples) == 7
    kept, report = clean_history(examples)
    assert [ex.reply for ex in kept] == ["亲，您的订单[订单编号:[数字x]]已经出库了哦", STOCK, STOCK]
    assert (report.read, report.kept, report.duplicates, report.dropped) == (7, 3, 1, 3)


def test_the_held_back_split_takes_whole_conversations_and_does_not_move(history: Path) -> None:
    examples = read_history(history, "csv")
    train_a, held_a = split_holdout(examples, 5)
    _, held_b = split_holdout(list(reversed(examples)), 5)
    assert {ex.reply for ex in held_a} == {ex.reply for ex in held_b}
    assert len(held_a) == 6  # three whole two-pair conversations
    assert not {ex.source for ex in held_a} & {ex.source for ex in train_a}
    assert len(train_a) + len(held_a) == len(examples)


def test_the_chat_format_is_told_by_one_token_lookup(tiny_qwen_dir: Path) -> None:
    from transformers import AutoTokenizer

    from app.engine.hf_backend import has_token

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_qwen_dir))
    assert has_token(tokenizer, "<|im_start|>") and has_token(tokenizer, "<|im_end|>")
    assert not has_token(tokenizer, "<|user|>") and not has_token(tokenizer, "<|no such token|>")
    ids, labels = encode(TrainingExample(("你好",), "亲，在的"), tokenizer, 64, 16)
    rendered = tokenizer.decode(ids)
    assert rendered.count("<|im_start|>") == 3 and rendered.endswith("亲，在的<|im_end|>")
    learned = [t for t in labels if t != IGNORE_INDEX]
    assert tokenizer.decode(learned) == "亲，在的<|im_end|>"


def test_a_prompt_with_past_dialogues_has_room_for_them(tiny_qwen_dir: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_qwen_dir))
    config = TrainConfig(data="d", output_dir="o", max_input=64, shots_max_input=256)
    shots = tuple((f"什么时候到{i}？", f"亲，预计明天送达{i}") for i in range(4))
    shown = TrainingExample(("可以开发票吗？", "亲，可以的", "电子发票吗？"), "是的亲", shots=shots)
    plain = replace(shown, shots=())
    assert prompt_budget(config, plain) == 64 and prompt_budget(config, shown) == 256
    ids, _ = encode(shown, tokenizer, prompt_budget(config, shown), config.max_output)
    assert all(reply in tokenizer.decode(ids) for _, reply in shots) and len(ids) > 64
    ids, _ = encode(shown, tokenizer, config.max_input, config.max_output)
    assert "亲，预计明天送达0" not in tokenizer.decode(ids), "without the room, shots go first"
    with pytest.raises(ValueError, match="pack_tokens"):
        TrainConfig(data="d", output_dir="o", max_input=64, shots_max_input=300, pack_tokens=320)
    with pytest.raises(ValueError, match="shots_max_input"):
        TrainConfig(data="d", output_dir="o", max_input=64, shots_max_input=32)


def test_packing_fills_rows_without_padding_and_restarts_positions() -> None:
    encoded = [([i] * n, [IGNORE_INDEX] * (n - 2) + [i, i]) for i, n in enumerate([5, 7, 3, 9, 4])]
    rows = pack(encoded, 12, seed=1)
    assert all(len(ids) <= 12 for ids, _, _ in rows)
    assert sorted(t for ids, _, _ in rows for t in ids) == sorted(t for e, _ in encoded for t in e)
    assert sum(len(ids) for ids, _, _ in rows) == 28 and len(rows) == 3
    for ids, labels, positions in rows:
        assert len(ids) == len(labels) == len(positions)
        starts = [i for i, p in enumerate(positions) if p == 0]
        for a, b in zip(starts, [*starts[1:], len(ids)], strict=True):
            assert positions[a:b] == list(range(b - a))
            assert len(set(ids[a:b])) == 1  # one example a segment
    with pytest.raises(ValueError, match="does not fit"):
        pack(encoded, 8, seed=1)


def test_a_packed_row_has_the_loss_of_its_examples_trained_alone(tiny_qwen_dir: Path) -> None:
    """Each example in a packed row attends only to itself: the row's loss is the token-weighted
    mean of the examples' own losses."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from app.evolve.train import _collate_packed

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_qwen_dir))
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(str(tiny_qwen_dir)),
        LoraConfig(task_type="CAUSAL_LM", target_modules=["q_proj", "v_proj"]),
    )
    model.eval()
    examples = [
        TrainingExample(("你好", "您好", "可以选择快递吗？"), "亲，默认京东快递哦"),
        TrainingExample(("能便宜点吗？",), "亲，价格已经是最低了哦，买两件包邮"),
    ]
    encoded = [encode(ex, tokenizer, 128, 48) for ex in examples]
    (row,) = pack(encoded, 512, seed=0)
    with torch.no_grad():
        packed = float(packed_loss(model, _collate_packed(row)))
        alone = [float(reply_loss(model, _collate([e], 0))) for e in encoded]
    n = [len(labels) - labels.count(IGNORE_INDEX) for _, labels in encoded]
    assert packed == pytest.approx((alone[0] * n[0] + alone[1] * n[1]) / sum(n), rel=1e-4)


def test_the_token_budget_sets_the_steps(tmp_path: Path) -> None:
    config = TrainConfig(data="d", output_dir="o", steps=100, pack_tokens=512, budget_tokens=1000)
    assert planned_steps(config, [400] * 10) == 3  # 400 + 400 + 400 ≥ 1000
    assert planned_steps(TrainConfig(data="d", output_dir="o", steps=7), [400] * 10) == 7
    with pytest.raises(ValueError, match="pack_tokens"):
        TrainConfig(data="d", output_dir="o", pack_tokens=100)
    with pytest.raises(ValueError, match="packing is for sft"):
        TrainConfig(data="d", output_dir="o", pack_tokens=512, objective="kto")


def _plan(history: Path, tiny: Path, budget: int) -> OnboardPlan:
    return plan_onboarding(history, "csv", budget, holdout=4, base_model=str(tiny))


def _small(config: TrainConfig) -> TrainConfig:
    """The onboarding config at the tiny model's scale (seconds, not minutes)."""
    values = {**config.__dict__, "lr": 5e-3, "warmup_steps": 1, "save_every": 2, "threads": 1}
    return TrainConfig(**{**values, "lora_top_layers": None})


def test_the_warm_start_adapts_attention_and_mlp_and_its_recipe_names_the_version(
    tiny_qwen_dir: Path, history: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.evolve import onboard as onboarding

    plan = _plan(history, tiny_qwen_dir, budget=2000)
    config = onboarding_config(plan, tmp_path, str(tiny_qwen_dir))
    assert {"gate_proj", "up_proj", "down_proj", "q_proj"} <= set(config.lora_targets)
    assert config.lora_r == onboarding.ONBOARD_LORA_R
    assert _plan(history, tiny_qwen_dir, budget=2000).version == plan.version  # resumable
    monkeypatch.setattr(onboarding, "ONBOARD_LORA_R", onboarding.ONBOARD_LORA_R * 2)
    # another recipe must not resume this run's checkpoint
    assert _plan(history, tiny_qwen_dir, budget=2000).version != plan.version


def test_the_warm_start_shows_rows_past_dialogues_and_anchors_bare_messages_with_the_base(
    tiny_qwen_dir: Path, history: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import app.evolve.gate as gate_module
    from app.evolve import onboard as onboarding

    def draft(adapter, items, base_model, generation=None, on_reply=None):  # type: ignore[no-untyped-def]
        assert adapter is None, "anchors are the base model's own replies"
        return ["好的" if i % 2 else f"您好，请问有什么可以帮您？{i}" for i, _ in enumerate(items)]

    monkeypatch.setattr(gate_module, "draft_replies", draft)
    monkeypatch.setattr(onboarding, "ANCHOR_SHARE", 0.2)
    plan = _plan(history, tiny_qwen_dir, budget=100_000)  # more than the whole history
    path = tmp_path / "home/onboarding/history.jsonl"
    rows = onboarding.training_rows(plan, path, str(tiny_qwen_dir), lambda e: None)
    pairs = read_examples(path)
    anchors = [row for row in rows if row.source == "anchor"]
    assert sorted(r.reply for r in rows if r.source != "anchor") == sorted(p.reply for p in pairs)
    shown = [row for row in rows if row.shots]
    assert len(shown) == round(onboarding.SHOT_SHARE * len(pairs)) > 0
    for row in shown:  # the most similar *other* past dialogues
        assert len(row.shots) == onboarding.SHOTS
        assert all(query != row.context[-1] for query, _ in row.shots)
    asked = round(0.2 * len(pairs))
    assert len(anchors) == asked - asked // 2, "the curt replies are left out"
    messages = {p.context[-1] for p in pairs}
    assert all(len(a.context) == 1 and a.context[0] in messages for a in anchors)
    assert all(a.reply.startswith("您好") and not a.shots for a in anchors)


def test_anchor_drafting_reports_progress_stops_when_asked_and_drafts_only_the_rest_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    import app.evolve.gate as gate_module
    from app.evolve import onboard as onboarding

    asked: list[list[str]] = []

    def draft(adapter, items, base_model, generation=None, on_reply=None):  # type: ignore[no-untyped-def]
        asked.append([it.context[0] for it in items])
        replies = []
        for i, _ in enumerate(items):
            replies.append(f"您好，这边马上为您处理，请稍等{len(asked)}-{i}")
            if on_reply is not None:
                on_reply(i, replies[-1])
        return replies

    monkeypatch.setattr(gate_module, "draft_replies", draft)
    history = [
        TrainingExample(("在吗", f"第{i}个问题怎么办"), "亲，马上处理哦", f"h:{i}")
        for i in range(20)
    ]
    cancel = threading.Event()
    events: list[dict[str, object]] = []

    def emit(event: dict[str, object]) -> None:
        events.append(event)
        if event.get("done") == 3:
            cancel.set()  # the Stop button, three replies in

    drafted = tmp_path / "anchors.jsonl"
    with pytest.raises(RuntimeError, match="resume"):
        onboarding.anchor_rows(history, 8, "base", emit, cancel, drafted)
    assert [e["done"] for e in events] == [1, 2, 3]
    assert all(e["total"] == 8 and e["stage"] == "anchors" and e["eta_s"] >= 0 for e in events)
    assert len(drafted.read_text(encoding="utf-8").splitlines()) == 3
    with drafted.open("a", encoding="utf-8") as f:
        f.write('{"message": "第1')  # a kill in the middle of writing a fourth

    rows = onboarding.anchor_rows(history, 8, "base", drafted=drafted)
    first, second = asked
    assert len(first) == 8 and second == first[3:], "only the five not yet drafted"
    assert sorted(r.context[0] for r in rows) == sorted(first)
    assert sum(r.reply.startswith("您好，这边马上为您处理，请稍等1-") for r in rows) == 3
    assert len(onboarding._read_anchor_replies(drafted)) == 8, "the torn line cost nothing more"
    assert onboarding.measured_speed("s_per_anchor") is not None


def test_the_plan_counts_the_anchors_and_its_eta_includes_drafting_them(
    tiny_qwen_dir: Path, history: Path
) -> None:
    from app.evolve import onboard as onboarding

    plan = _plan(history, tiny_qwen_dir, budget=1500)
    assert plan.eta_s is None, "no speed measured on this machine yet"
    sample = onboarding.sample_size(1500, plan.history_tokens, plan.train_pairs)
    assert plan.anchors == round(onboarding.ANCHOR_SHARE * sample) > 0
    onboarding._save_speed(tok_s=100.0)
    assert _plan(history, tiny_qwen_dir, budget=1500).eta_s == 15
    onboarding._save_speed(s_per_anchor=2.0)
    assert _plan(history, tiny_qwen_dir, budget=1500).eta_s == 15 + 2 * plan.anchors
    assert onboarding.measured_speed("tok_s") == 100.0, "one measurement does not drop the other"


def test_a_killed_warm_start_resumes_to_the_adapter_of_an_unbroken_run(
    tiny_qwen_dir: Path, history: Path, tmp_path: Path
) -> None:
    from safetensors.torch import load_file

    plan = _plan(history, tiny_qwen_dir, budget=2000)
    configs = {}
    for name in ("whole", "killed"):
        run = tmp_path / name
        run.mkdir()
        (run / "data.jsonl").write_bytes((tmp_path / "home/onboarding/history.jsonl").read_bytes())
        configs[name] = _small(onboarding_config(plan, run, str(tiny_qwen_dir)))
        configs[name].save(run / "run.json")
    whole = train(configs["whole"], lambda e: None)
    assert whole["tokens"] >= 2000 and whole["steps"] < configs["whole"].steps

    command = [
        sys.executable,
        "-m",
        "app.evolve.train",
        "--config",
        str(tmp_path / "killed/run.json"),
    ]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    for line in child.stdout:
        event = json.loads(line)
        if event["event"] == "step" and event["step"] == 3:  # a checkpoint was written at 2
            os.kill(child.pid, signal.SIGKILL)
            break
    child.wait()
    assert child.returncode == -signal.SIGKILL
    assert json.loads((tmp_path / "killed/checkpoint/meta.json").read_text())["step"] == 2
    resumed = subprocess.run(command, capture_output=True, text=True, check=True)
    events = [json.loads(line) for line in resumed.stdout.splitlines()]
    assert events[0]["resumed_from"] == 2 and events[0]["rows"] > 0
    assert events[-1]["event"] == "done" and events[-1]["steps"] == whole["steps"]
    steps = [e for e in events if e["event"] == "step"]
    assert steps[0]["step"] == 3 and {"tokens", "tok_s", "eta_s"} <= set(steps[0])
    a = load_file(str(tmp_path / "whole/adapter/adapter_model.safetensors"))
    b = load_file(str(tmp_path / "killed/adapter/adapter_model.safetensors"))
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-6)


class FakeScorer:
    """Final = how many characters the reply shares with the reference (no models)."""

    def score_many(self, items):  # type: ignore[no-untyped-def]
        class Score:
            def __init__(self, final: float) -> None:
                self.final = final

        for item in items:
            ref = item.cloud_reply or ""
            shared = len(set(item.reply) & set(ref)) / max(1, len(set(ref)))
            yield Score(shared)


def test_onboarding_registers_a_version_and_a_round_builds_on_it(
    tiny_qwen_dir: Path, history: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    import app.evolve.gate as gate_module
    import app.evolve.onboard as onboarding
    import app.evolve.training as training
    from app.evolve.loop import Evolution

    real_config = onboarding.onboarding_config
    monkeypatch.setattr(onboarding, "onboarding_config", lambda *args: _small(real_config(*args)))

    def export(store, version, base_model):  # type: ignore[no-untyped-def]
        """The GGUF export needs a GGUF base: the tiny model has none; the peft dir stands in."""
        from app.evolve.promotion import adapter_row, served_path

        with store.session() as session:
            row = adapter_row(store, session, version)
            target = served_path(row)
            target.write_bytes((Path(row.path) / "adapter/adapter_model.safetensors").read_bytes())
            row.metrics = {**row.metrics, "sha256": sha256_of(target)}
        return target

    monkeypatch.setattr(onboarding, "export_candidate", export)
    drafted: list[tuple[str | None, list[str]]] = []

    def draft(adapter, items, base_model, generation=None, on_reply=None):  # type: ignore[no-untyped-def]
        drafted.append((adapter.name if adapter else None, [ex.source for ex in items]))
        return ["亲，订单预计明天送达哦" if adapter else "嗯" for _ in items]

    monkeypatch.setattr(gate_module, "draft_replies", draft)
    monkeypatch.setattr(Evolution, "scorer", property(lambda self: FakeScorer()))

    plan = _plan(history, tiny_qwen_dir, budget=1500)
    assert plan.train_pairs + plan.holdout_pairs == 24 and plan.history_tokens > 0
    events: list[dict[str, object]] = []
    done = onboard(
        store, plan, EvolutionSettings(holdout_gate=3), events.append, base_model=str(tiny_qwen_dir)
    )
    assert done["promoted"], done
    assert any(e["event"] == "step" for e in events) and events[-1]["event"] == "done"
    # The base model drafted the anchors; then the gate drafted the probes and the first 3
    # held-back pairs with both versions, paired.
    assert drafted[0][0] is None and set(drafted[0][1]) == {"anchor"}
    assert drafted[1][1].count("holdout") == 3 and drafted[1][0] == plan.version
    assert done["gate"]["delta"]["holdout"][2] == 3 and done["gate"]["delta"]["holdout"][0] > 0
    settings = EvolutionSettings.load()
    assert settings.corpus and settings.holdout and Path(settings.holdout).is_file()
    with pytest.raises(ValueError, match="already learned"):
        onboard(store, plan, base_model=str(tiny_qwen_dir))

    # A round: continues from the warm start, mixes new labels with a replay of the history.
    seen: dict[str, TrainConfig] = {}

    def run_training(config_path, progress=None, cancel=None):  # type: ignore[no-untyped-def]
        config = TrainConfig.load(config_path)
        seen["config"] = config
        return "succeeded", train(_small(config), lambda e: None) | {"event": "done"}

    monkeypatch.setattr(training, "run_training", run_training)
    settings = replace(settings, holdback=0, replay=5)
    evo = Evolution(store, settings, base_model=str(tiny_qwen_dir))
    new = TrainingExample(("能便宜点吗？",), "亲，价格已经是最低了哦，买两件包邮", "agent")
    examples, held = labelling.training_set(store, settings, [(1, utcnow(), new)])
    history_replies = {ex.reply for ex in read_examples(Path(settings.corpus))}
    assert examples[0] == new and held == []
    assert len(examples) == 6 and {ex.reply for ex in examples[1:]} <= history_replies
    many = [
        (
            i,
            utcnow(),
            TrainingExample(
                (f"能便宜点吗{i}？",), f"亲，价格已经是最低了哦，买两件包邮{i}", "agent"
            ),
        )
        for i in range(2, 10)
    ]
    more, _ = labelling.training_set(store, settings, many)
    assert len(more) == 16, "continuing from the warm start: as much history as new labels"
    version = evo.train(examples)
    config = seen["config"]
    assert config.init_adapter == str(Path(store_adapter_path(store, plan.version)) / "adapter")
    assert config.lr == pytest.approx(QUICK_LR["lora"] * CONTINUE_LR_FACTOR)
    assert len(read_examples(Path(config.data))) == 6
    with store.session() as session:
        row = store.get_adapter(session, version)
        assert row is not None and row.parent is not None and row.parent.version == plan.version


def store_adapter_path(store: Store, version: str) -> str:
    with store.session() as session:
        row = store.get_adapter(session, version)
        assert row is not None
        return row.path


def test_the_gate_reports_paired_differences_by_kind() -> None:
    items = [
        GateItem("你好", "probe", 0.6, 0.5),
        GateItem("a", "holdout", 0.7, 0.4),
        GateItem("b", "holdout", 0.5, 0.4),
    ]
    result = gate("v", items, margin=0.01, tolerance=0.15)
    assert result.delta["holdout"][:1] == [0.2] and result.delta["holdout"][2] == 2
    assert result.delta["holdout"][1] == pytest.approx(1.96 * (0.02**0.5) / 2**0.5, abs=1e-4)
    assert result.delta["all"][2] == 3 and "items" not in result.summary()
