"""The trainer on a tiny random Qwen2 model with the real Qwen tokenizer: real torch, transformers
and peft, a real child process, seconds instead of minutes."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from app.engine import GenerationConfig, Turn
from app.engine.conversation import format_chatml, system_prompt, to_messages
from app.engine.end_model import EndModel
from app.engine.hf_backend import TransformersBackend
from app.engine.weights import ModelSource
from app.evolve.config import TrainConfig
from app.evolve.data import IGNORE_INDEX, TrainingExample, encode, read_examples, write_examples
from app.evolve.train import train
from app.evolve.trainer_process import run_training

torch = pytest.importorskip("torch", reason="training needs the [hf] extra")

EXAMPLES = [
    TrainingExample(("你好", "您好，有什么可以帮您？", "可以选择快递吗？"), "亲，默认京东快递哦"),
    TrainingExample(("能便宜点吗？",), "亲，价格已经是最低了哦"),
]


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "data.jsonl"
    write_examples(EXAMPLES, path)
    return path


def tiny_config(tiny_qwen_dir: Path, data: Path, out: Path, **kw: object) -> TrainConfig:
    values: dict[str, object] = {
        "data": str(data),
        "output_dir": str(out),
        "base_model": str(tiny_qwen_dir),
        "steps": 12,
        "lr": 5e-3,
        "warmup_steps": 1,
        "save_every": 4,
        "num_virtual_tokens": 8,
        "max_input": 128,
        "threads": 1,
    }
    values.update(kw)
    return TrainConfig(**values)  # type: ignore[arg-type]


def test_config_validates_and_presets_follow_the_paper(tmp_path: Path) -> None:
    paper = TrainConfig.from_preset("paper", "lora", data="d", output_dir="o")
    assert (paper.max_input, paper.max_output, paper.lr, paper.batch_size, paper.steps) == (
        256,
        512,
        5e-5,
        1,
        30_000,
    )
    assert (paper.lora_r, paper.lora_alpha, paper.lora_dropout) == (8, 32, 0.1)
    quick = TrainConfig.from_preset("quick", "ptuning-v2", data="d", output_dir="o")
    assert quick.lr > TrainConfig.from_preset("quick", "lora", data="d", output_dir="o").lr
    with pytest.raises(ValueError, match="Unknown method"):
        TrainConfig(data="d", output_dir="o", method="adapter")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="steps"):
        TrainConfig(data="d", output_dir="o", steps=0)
    with pytest.raises(ValueError, match="QLoRA"):
        TrainConfig(data="d", output_dir="o", method="prefix", quantization="4bit")
    saved = tmp_path / "c.json"
    quick.save(saved)
    assert TrainConfig.load(saved) == quick
    saved.write_text(json.dumps({"data": "d", "output_dir": "o", "rank": 4}))
    with pytest.raises(ValueError, match="unknown settings rank"):
        TrainConfig.load(saved)


def test_examples_are_prompted_like_drafts_and_only_the_reply_is_learned(tiny_qwen_dir) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_qwen_dir))
    ids, labels = encode(EXAMPLES[0], tokenizer, max_input=512, max_output=64)
    n_prompt = sum(1 for label in labels if label == IGNORE_INDEX)
    turns = [
        Turn("customer", "你好"),
        Turn("agent", "您好，有什么可以帮您？"),
        Turn("customer", "可以选择快递吗？"),
    ]
    served_prompt = format_chatml(to_messages(turns, system_prompt("zh")))
    assert tokenizer.decode(ids[:n_prompt]) == served_prompt  # what llama.cpp is asked later
    assert tokenizer.decode(ids[n_prompt:]) == "亲，默认京东快递哦<|im_end|>"
    assert labels[n_prompt:] == ids[n_prompt:]
    # A long context loses its oldest turns, never the customer's latest message.
    long = TrainingExample(tuple(["很长的历史消息" * 20, "好的"] * 6 + ["最后的问题？"]), "好的")
    ids, labels = encode(long, tokenizer, max_input=160, max_output=8)
    prompt = tokenizer.decode(
        [i for i, lab in zip(ids, labels, strict=True) if lab == IGNORE_INDEX]
    )
    assert "最后的问题？" in prompt and len(ids) - labels.count(IGNORE_INDEX) <= 8


def test_shown_dialogues_are_in_the_training_prompt_as_in_the_draft(
    tiny_qwen_dir, tmp_path: Path
) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_qwen_dir))
    shots = (("发什么快递", "默认中通哦"), ("能开发票吗", "可以开电子发票"))
    example = TrainingExample(("可以选择快递吗？",), "亲，默认京东快递哦", "corpus", None, shots)
    path = tmp_path / "data.jsonl"
    write_examples([example], path)
    assert read_examples(path) == [example]  # the shots travel to the child process
    ids, labels = encode(example, tokenizer, max_input=512, max_output=64)
    n_prompt = labels.count(IGNORE_INDEX)
    turns = [Turn("customer", "可以选择快递吗？")]
    assert tokenizer.decode(ids[:n_prompt]) == format_chatml(
        to_messages(turns, system_prompt("zh"), shots)
    )
    # Too long a prompt sheds the shots before the customer's message.
    _, plain_labels = encode(replace(example, shots=()), tokenizer, max_input=512, max_output=8)
    room = plain_labels.count(IGNORE_INDEX) + 4
    ids, labels = encode(example, tokenizer, max_input=room, max_output=8)
    prompt = tokenizer.decode(ids[: labels.count(IGNORE_INDEX)])
    assert "可以选择快递吗？" in prompt and "发什么快递" not in prompt


def test_training_files_are_read_with_clear_errors(tmp_path: Path) -> None:
    labels = tmp_path / "labels.jsonl"
    labels.write_text(
        json.dumps({"id": "a", "context": ["在吗"], "teacher_reply": "在的亲"}, ensure_ascii=False)
        + "\n"
        + json.dumps({"id": "b", "context": ["还有货吗"], "teacher_reply": ""})
        + "\n",
        encoding="utf-8",
    )
    assert read_examples(labels) == [TrainingExample(("在吗",), "在的亲", "file")]
    broken = tmp_path / "broken.jsonl"
    broken.write_bytes(b'{"context": ["a"], "reply": "b"}\n\xff\xfe not json\n')
    with pytest.raises(ValueError, match=r"broken\.jsonl:2"):
        read_examples(broken)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(ValueError, match="no training examples"):
        read_examples(empty)


def test_reply_loss_is_the_causal_lm_loss(tiny_qwen_dir: Path) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from app.evolve.train import _collate, reply_loss

    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(str(tiny_qwen_dir)),
        LoraConfig(task_type="CAUSAL_LM", target_modules=["q_proj"]),
    )
    batch = _collate(
        [([1, 2, 3, 4, 5, 6], [-100, -100, -100, 4, 5, 6]), ([7, 8, 9], [-100, 8, 9])], 0
    )
    assert float(reply_loss(model, batch)) == pytest.approx(float(model(**batch).loss), rel=1e-5)


def test_child_process_trains_lora_and_reports_json_lines(
    tiny_qwen_dir, data_file, tmp_path
) -> None:
    out = tmp_path / "run"
    config = tiny_config(tiny_qwen_dir, data_file, out, steps=16)
    config.save(tmp_path / "run.json")
    events: list[dict[str, object]] = []
    status, last = run_training(tmp_path / "run.json", events.append)
    assert status == "succeeded", last
    steps = [e for e in events if e["event"] == "step"]
    assert [e["step"] for e in steps] == list(range(1, 17))
    assert {"loss", "lr", "tok_s", "eta_s", "total"} <= set(steps[0])
    # Two examples, sixteen steps: the model learns them.
    first = sum(float(e["loss"]) for e in steps[:2]) / 2
    last_two = sum(float(e["loss"]) for e in steps[-2:]) / 2
    assert last_two < first * 0.8
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    assert TrainConfig.load(out / "config.json") == config
    assert json.loads((out / "metrics.json").read_text())["steps"] == 16
    assert not (out / "checkpoint").exists()


def test_a_broken_config_is_reported_not_crashed(tmp_path: Path) -> None:
    bad = tmp_path / "run.json"
    bad.write_text("{not json")
    status, last = run_training(bad)
    assert status == "failed" and "not a readable training config" in str(last["message"])


def test_a_stopped_run_resumes_to_the_same_adapter(tiny_qwen_dir, data_file, tmp_path) -> None:
    from safetensors.torch import load_file

    whole = tiny_config(tiny_qwen_dir, data_file, tmp_path / "whole", steps=8, save_every=2)
    train(whole, lambda e: None)

    parted = tiny_config(tiny_qwen_dir, data_file, tmp_path / "parted", steps=8, save_every=2)
    stop = threading.Event()

    def stop_after_five(event: dict[str, object]) -> None:
        if event.get("event") == "step" and event["step"] == 5:
            stop.set()

    assert train(parted, stop_after_five, stop) == {"cancelled": True, "step": 5}
    assert (tmp_path / "parted" / "checkpoint" / "state.pt").is_file()
    events: list[dict[str, object]] = []
    train(parted, events.append)
    assert events[0]["resumed_from"] == 5
    a = load_file(str(tmp_path / "whole" / "adapter" / "adapter_model.safetensors"))
    b = load_file(str(tmp_path / "parted" / "adapter" / "adapter_model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("method", ["prefix", "ptuning-v2"])
def test_prompt_learning_adapters_train_and_are_served(
    method, tiny_qwen_dir, data_file, tmp_path
) -> None:
    out = tmp_path / method
    metrics = train(
        tiny_config(tiny_qwen_dir, data_file, out, method=method, steps=20, lr=3e-2), lambda e: None
    )
    assert metrics["final_loss_mean10"] < metrics["first_loss"]
    greedy = GenerationConfig(temperature=0.0, max_tokens=8, repeat_penalty=1.0)
    backend = TransformersBackend(ModelSource("tiny", tiny_qwen_dir, "hf"), device="cpu")
    model = EndModel(backend, system_prompt("zh"), greedy)
    turns = [Turn("customer", "能便宜点吗？")]
    base = model.reply(turns)
    model.load_adapter("p", out / "adapter")
    model.set_adapter("p")
    served = "".join(model.stream_reply(turns))
    # Reference: greedy decoding by a full peft forward pass per token (slow but plainly right).
    prompt, _ = model.prepare(turns)
    ids = backend.tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
    stop = backend._stop_ids()
    produced: list[int] = []
    with torch.inference_mode():
        for _ in range(greedy.max_tokens):
            logits = backend.model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
            token = int(logits[0, -1].argmax())
            if token in stop:
                break
            produced.append(token)
            ids = torch.cat([ids, torch.tensor([[token]])], dim=1)
    assert served == backend.tokenizer.decode(produced, skip_special_tokens=True)
    assert served != base, "the trained prefix changes what the model says"


def test_kto_learns_from_thumbs_without_a_better_text(tiny_qwen_dir, tmp_path) -> None:
    """Desirable replies become likelier and undesirable ones less likely than under the base."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from app.evolve.kto import reply_logprob
    from app.evolve.train import _collate

    good = TrainingExample(("能便宜点吗？",), "亲，价格已经是最低了哦", "thumbs_up", True)
    bad = TrainingExample(("在吗",), "不知道", "thumbs_down", False)
    data = tmp_path / "prefs.jsonl"
    write_examples([good, bad], data)
    assert read_examples(data) == [good, bad]
    out = tmp_path / "kto"
    config = tiny_config(tiny_qwen_dir, data, out, objective="kto", steps=16, lr=2e-2, kto_beta=0.5)
    train(config, lambda e: None)
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_qwen_dir))
    model = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(str(tiny_qwen_dir)), str(out / "adapter")
    )
    model.eval()

    def ratio(example: TrainingExample) -> float:
        batch = _collate([encode(example, tokenizer, 128, 48)], 0)
        with torch.no_grad():
            tuned = float(reply_logprob(model, batch)[0])
            with model.disable_adapter():
                base = float(reply_logprob(model, batch)[0])
        return tuned - base

    assert ratio(good) > 0 > ratio(bad)
    with pytest.raises(ValueError, match="lora method"):
        TrainConfig(data="d", output_dir="o", method="prefix", objective="kto")


def test_corpus_hygiene_drops_emoticons_and_caps_stock_phrases() -> None:
    from app.evolve.data import clean_examples

    stock = "请问还有其他还可以帮到您的吗?"
    raw = [TrainingExample((f"问{i}",), stock) for i in range(5)] + [
        TrainingExample(("在吗",), "#E-s[数字x]#E-s[数字x]"),
        TrainingExample(("好的",), "#E-s[数字x]好的亲，马上为您处理"),
    ]
    cleaned = clean_examples(raw, max_same_reply=2)
    assert [ex.reply for ex in cleaned] == [stock, stock, "好的亲，马上为您处理"]
    assert cleaned[0].context == ("问0",)
    # Curt replies are left out when asked (counted after the emoticons are gone).
    assert [ex.reply for ex in clean_examples(raw, min_chars=11)] == [stock, stock]
    # So is a reply that only repeats the customer's message.
    echo = TrainingExample(("在吗", "您好", "快递员已经把我忽略了"), "快递员已经把我忽略了。")
    assert clean_examples([echo, raw[-1]]) == [cleaned[-1]]


def test_ptuning_v2_starts_as_the_base_model_with_real_text_before(tiny_qwen_dir: Path) -> None:
    """Deep prompts initialised from the base model's own cache, not N(0, 1) noise."""
    from peft import PrefixTuningConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from app.evolve.recipes import init_deep_prompts

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_qwen_dir))
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(str(tiny_qwen_dir)),
        PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=6),
    )
    model.eval()
    init_deep_prompts(model, tokenizer, "你是客服")
    prefix = (tokenizer.encode("你是客服") * 6)[:6]
    x = tokenizer.encode("可以选择快递吗？")
    with torch.no_grad():
        tuned = model(input_ids=torch.tensor([x]), attention_mask=torch.ones(1, len(x))).logits[0]
        with model.disable_adapter():
            base = model.get_base_model()(input_ids=torch.tensor([prefix + x])).logits[0, 6:]
    torch.testing.assert_close(tuned, base, rtol=1e-4, atol=1e-4)
