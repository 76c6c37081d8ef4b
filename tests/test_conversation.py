"""Conversation handling: cleaning, roles, chat formats and fitting into the context window.

The fitting tests count one token per character, so the expected cuts can be computed by hand.
"""

from __future__ import annotations

import pytest

from app.engine.conversation import (
    EmptyMessageError,
    Turn,
    clean_for_model,
    fit_messages,
    format_chatglm3,
    format_chatml,
    shot_messages,
    system_prompt,
    to_messages,
)


def count_chars(text: str) -> int:
    return len(text)


def plain(messages):  # a render whose size is easy to reason about
    return "|".join(text for _, text in messages)


def test_clean_for_model_removes_junk_and_keeps_emoji_and_scripts() -> None:
    assert clean_for_model("  你好\x00\x07 world 😀 مرحبا \n") == "你好 world 😀 مرحبا"
    assert clean_for_model(b"\xff\xfe\x00abc") == "\ufffd\ufffdabc"
    assert clean_for_model("\ud800x") == "?x"  # a lone surrogate cannot reach the tokenizer
    assert clean_for_model(" \t\n ") == ""


def test_system_prompt_resources_exist_in_both_languages() -> None:
    assert "客服" in system_prompt("zh")
    assert "customer" in system_prompt("en")


def test_to_messages_maps_roles_and_rejects_empty() -> None:
    msgs = to_messages(
        [Turn("customer", "在吗"), Turn("agent", "在的"), Turn("customer", "发货了吗")], "SYS"
    )
    assert msgs == [
        ("system", "SYS"),
        ("user", "在吗"),
        ("assistant", "在的"),
        ("user", "发货了吗"),
    ]
    with pytest.raises(EmptyMessageError):
        to_messages([Turn("customer", "   ")], "SYS")
    with pytest.raises(EmptyMessageError):
        to_messages([], "SYS")
    with pytest.raises(ValueError):
        to_messages([Turn("customer", "hi"), Turn("agent", "hello")], "SYS")


def test_shots_come_first_as_earlier_exchanges_and_are_left_out_first() -> None:
    conversation = [Turn("customer", "可以选择快递吗？")]
    shots = [("发什么快递", "默认中通哦"), ("  ", "空的不要"), ("能开发票吗", "可以开电子发票")]
    msgs = to_messages(conversation, "SYS", shots)
    assert msgs == [
        ("system", "SYS"),
        ("user", "发什么快递"),
        ("assistant", "默认中通哦"),
        ("user", "能开发票吗"),
        ("assistant", "可以开电子发票"),
        ("user", "可以选择快递吗？"),
    ]
    # Short of room, the first shot goes before anything of the conversation.
    budget = count_chars(plain(msgs)) - 1
    kept, report = fit_messages(msgs, plain, count_chars, budget, shots=len(shot_messages(shots)))
    assert kept == [msgs[0], *msgs[3:]]
    assert (report.shots_shown, report.dropped_shots, report.dropped_turns) == (1, 1, 0)
    assert report.notes == ["left out 1 past dialogue(s) to fit the context window"]
    # A conversation too long for its own window leaves out every past dialogue and its turns.
    long_talk = [Turn("customer", "a" * 30), Turn("agent", "b" * 30), *conversation]
    msgs = to_messages(long_talk, "SYS", shots)
    kept, report = fit_messages(msgs, plain, count_chars, budget=40, shots=4)
    assert kept == [msgs[0], msgs[-1]]
    assert (report.shots_shown, report.dropped_shots, report.dropped_turns) == (0, 2, 2)


def test_chat_formats() -> None:
    msgs = [("system", "S"), ("user", "U")]
    assert format_chatml(msgs) == (
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n"
    )
    assert format_chatglm3(msgs) == "[gMASK]sop<|system|>\n S<|user|>\n U<|assistant|>\n"


def test_fit_keeps_everything_when_it_fits() -> None:
    msgs = [("system", "SYS"), ("user", "aaaa"), ("assistant", "bbbb"), ("user", "cc")]
    kept, report = fit_messages(msgs, plain, count_chars, budget=100)
    assert kept == msgs
    assert report.dropped_turns == 0 and not report.truncated_latest and report.notes == []


def test_fit_drops_oldest_turns_first_and_restarts_at_a_customer_turn() -> None:
    msgs = [
        ("system", "SYS"),
        ("user", "a" * 10),
        ("assistant", "b" * 10),
        ("user", "c" * 10),
        ("assistant", "d" * 10),
        ("user", "e" * 5),
    ]
    # Everything: 3+10+10+10+10+5 + 5 separators = 53. Budget 40 needs two turns dropped.
    kept, report = fit_messages(msgs, plain, count_chars, budget=40)
    assert kept == [msgs[0], msgs[3], msgs[4], msgs[5]]
    assert report.dropped_turns == 2
    assert report.prompt_tokens == 3 + 10 + 10 + 5 + 3
    # Budget 30 would allow starting at the agent turn 'd'; the fit drops it too so that the
    # model never sees an agent turn first.
    kept, report = fit_messages(msgs, plain, count_chars, budget=30)
    assert kept == [msgs[0], msgs[5]]
    assert not report.truncated_latest


def test_fit_cuts_the_middle_of_an_oversized_latest_message_and_says_so() -> None:
    latest = "开头" + "x" * 1000 + "结尾"
    msgs = [("system", "SYS"), ("user", "old"), ("assistant", "older"), ("user", latest)]
    kept, report = fit_messages(msgs, plain, count_chars, budget=200)
    assert len(kept) == 2
    text = kept[1][1]
    assert text.startswith("开头") and text.endswith("结尾")
    assert "省略" in text
    assert report.truncated_latest and report.removed_chars > 0
    assert report.prompt_tokens <= 200
    assert any("too long" in n for n in report.notes)


def test_fit_with_100k_characters() -> None:
    latest = "我要退货" * 25_000
    kept, report = fit_messages(
        [("system", "S"), ("user", latest)], plain, count_chars, budget=1500
    )
    assert report.truncated_latest
    assert count_chars(plain(kept)) <= 1500
