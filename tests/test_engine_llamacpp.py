"""The real embedded end model (Qwen2.5 0.5B Q4_K_M) on llama.cpp."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import numpy as np
import pytest

from app.engine import EmptyMessageError, GenerationConfig, ModelError, Turn
from app.engine.end_model import EndModel, EngineConfig
from app.engine.gguf_lora import base_tensor_shapes, write_lora_gguf

HAN = re.compile(r"[\u4e00-\u9fff]")
GREEDY = GenerationConfig(temperature=0.0, max_tokens=24, seed=7)


@pytest.mark.slow
def test_drafts_a_chinese_reply(end_model) -> None:
    reply = end_model.reply(
        [Turn("customer", "可以选择快递吗？")], GenerationConfig(max_tokens=48, seed=1)
    )
    assert len(HAN.findall(reply)) >= 3, reply


@pytest.mark.slow
def test_reply_streams_in_pieces_and_is_repeatable_when_greedy(end_model) -> None:
    conv = [Turn("customer", "你好")]
    pieces = list(end_model.stream_reply(conv, generation=GREEDY))
    assert len(pieces) > 3
    assert "".join(pieces) == "".join(end_model.stream_reply(conv, generation=GREEDY))


@pytest.mark.slow
def test_cancel_stops_between_tokens(end_model) -> None:
    cancel = threading.Event()
    pieces = []
    for piece in end_model.stream_reply(
        [Turn("customer", "请详细介绍一下你们店的退换货流程")],
        cancel,
        GenerationConfig(max_tokens=200, temperature=0.0),
    ):
        pieces.append(piece)
        if len(pieces) == 3:
            cancel.set()
    assert len(pieces) == 3


@pytest.mark.slow
def test_multi_turn_conversation_is_used(end_model) -> None:
    conv = [
        Turn("customer", "我叫小王，我买的是红色的杯子"),
        Turn("agent", "好的小王，请问有什么可以帮您？"),
        Turn("customer", "我买的杯子是什么颜色的？只回答颜色"),
    ]
    reply = end_model.reply(conv, GenerationConfig(temperature=0.0, max_tokens=16))
    assert "红" in reply


@pytest.mark.slow
def test_empty_message_raises_before_generating(end_model) -> None:
    with pytest.raises(EmptyMessageError):
        end_model.stream_reply([Turn("customer", " \n\t ")])


@pytest.mark.slow
@pytest.mark.parametrize(
    "text",
    [
        "😀😀😀？",
        "Hello, 请问 this 商品 есть в наличии? مرحبا",
        "\x00\x01\x02\xff\ufffe垃圾\x7f" * 50,
    ],
    ids=["emoji", "mixed-scripts", "binary-junk"],
)
def test_odd_input_gets_a_reply(end_model, text: str) -> None:
    reply = end_model.reply([Turn("customer", text)], GenerationConfig(max_tokens=8, seed=3))
    assert isinstance(reply, str)
    assert not end_model.last_fit.truncated_latest


@pytest.mark.slow
def test_100k_character_message_fits_the_context(end_model) -> None:
    text = "请问这件衣服有货吗" + "啊" * 100_000 + "什么时候发货？"
    prompt, report = end_model.prepare([Turn("customer", text)], max_tokens=8)
    assert report.truncated_latest and report.removed_chars > 90_000
    assert end_model.backend.count_tokens(prompt) <= end_model.backend.n_ctx - 8
    assert "什么时候发货" in prompt  # the end of the message survives
    reply = list(
        end_model.stream_reply([Turn("customer", text)], generation=GenerationConfig(max_tokens=4))
    )
    assert end_model.last_fit.truncated_latest
    assert isinstance("".join(reply), str)


@pytest.mark.slow
def test_long_history_drops_oldest_turns(end_model) -> None:
    conv = []
    for i in range(60):
        conv += [
            Turn("customer", f"第{i}个问题：" + "这个商品怎么样" * 5),
            Turn("agent", "很好的亲" * 8),
        ]
    conv.append(Turn("customer", "最后一个问题：发什么快递？"))
    prompt, report = end_model.prepare(conv)
    assert report.dropped_turns > 0 and not report.truncated_latest
    assert "最后一个问题" in prompt and "第0个问题" not in prompt
    # Past dialogues are the oldest turns: all of them go first, and are counted apart.
    shots = [("发什么快递", "默认中通哦"), ("能开发票吗", "可以开电子发票")]
    prompt, with_shots = end_model.prepare(conv, shots=shots)
    assert (with_shots.shots_shown, with_shots.dropped_shots) == (0, 2)
    assert with_shots.dropped_turns == report.dropped_turns and "默认中通哦" not in prompt
    prompt, short = end_model.prepare(conv[-3:], shots=shots)
    assert (short.shots_shown, short.dropped_shots, short.dropped_turns) == (2, 0, 0)
    assert prompt.index("默认中通哦") < prompt.index("最后一个问题")


@pytest.fixture(scope="module")
def lora_file(embedded_model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A strong random rank-4 LoRA on every attention query projection, written as GGUF."""
    arch, shapes = base_tensor_shapes(embedded_model_path)
    rng = np.random.default_rng(0)
    pairs = {}
    for name, (n_out, n_in) in shapes.items():
        if name.endswith("attn_q.weight"):
            pairs[name] = (
                rng.normal(0, 0.5, (4, n_in)).astype(np.float32),
                rng.normal(0, 0.5, (n_out, 4)).astype(np.float32),
            )
    assert arch == "qwen2" and len(pairs) == 24
    return write_lora_gguf(tmp_path_factory.mktemp("lora") / "noise.gguf", arch, 8.0, pairs)


@pytest.mark.slow
def test_lora_adapter_switches_without_reload(end_model, lora_file: Path) -> None:
    conv = [Turn("customer", "可以选择快递吗？")]
    base = end_model.reply(conv, GREEDY)
    backend = end_model.backend
    llm_before = backend.llm
    end_model.load_adapter("noise", lora_file)
    try:
        end_model.set_adapter("noise")
        assert end_model.active_adapter == "noise"
        adapted = end_model.reply(conv, GREEDY)
        assert adapted != base
    finally:
        end_model.set_adapter(None)
    assert end_model.active_adapter is None
    assert end_model.reply(conv, GREEDY) == base
    assert backend.llm is llm_before, "switching adapters must not reload the model"


@pytest.mark.slow
def test_bad_adapter_file_is_refused(end_model, tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00garbage")
    with pytest.raises(ModelError, match="could not load the LoRA adapter"):
        end_model.load_adapter("bad", bad)
    with pytest.raises(ModelError, match="not loaded"):
        end_model.set_adapter("never-loaded")


def test_corrupt_gguf_file_gives_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\x00" * 4096)
    with pytest.raises(ModelError, match="could not load"):
        EndModel.load(EngineConfig(model=str(bad)))


@pytest.mark.slow
def test_a_closed_model_raises_instead_of_crashing(embedded_model_path) -> None:
    model = EndModel.load(EngineConfig())
    model.close()
    with pytest.raises(ModelError, match="closed"):
        model.reply([Turn("customer", "你好")])
