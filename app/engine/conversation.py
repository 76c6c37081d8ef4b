"""Conversations, the system prompt, chat formats, and fitting a conversation into the context.

Backend-neutral: a backend supplies a token counter; this module decides what the model sees.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Literal

Role = Literal["customer", "agent"]
ChatRole = Literal["system", "user", "assistant"]
Message = tuple[ChatRole, str]
TokenCounter = Callable[[str], int]

MAX_INPUT_CHARS = 200_000
"""Anything longer is cut before tokenising (the context window is far smaller anyway)."""

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]")
_ELLIPSIS_ZH = "……（中间省略{n}字）……"


class EmptyMessageError(ValueError):
    """The customer's message is empty or only whitespace: nothing to reply to."""


@dataclass(frozen=True)
class Turn:
    role: Role
    text: str


def clean_for_model(text: str | bytes) -> str:
    """Text safe to tokenise: decoded, NFC-normalised, control characters and binary junk removed.

    Emoji and every script are kept; invalid UTF-8 becomes U+FFFD rather than an exception.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    text = text[:MAX_INPUT_CHARS]
    # Lone surrogates (from bad decoding upstream) cannot be encoded to UTF-8 for the tokenizer.
    text = text.encode("utf-8", errors="replace").decode("utf-8")
    text = unicodedata.normalize("NFC", text)
    return _CONTROL.sub("", text).strip()


def system_prompt(lang: str = "zh") -> str:
    name = "system_zh.txt" if lang.startswith("zh") else "system_en.txt"
    return (
        resources.files("app.resources.prompts").joinpath(name).read_text(encoding="utf-8").strip()
    )


Shot = tuple[str, str]
"""A past customer message and the agent's reply to it, shown to the model as an example."""


def shot_messages(shots: Sequence[Shot]) -> list[Message]:
    """Past dialogues as user/assistant pairs; one with an empty side is left out."""
    messages: list[Message] = []
    for query, reply in shots:
        query, reply = clean_for_model(query), clean_for_model(reply)
        if query and reply:
            messages += [("user", query), ("assistant", reply)]
    return messages


def to_messages(
    conversation: Sequence[Turn], system: str, shots: Sequence[Shot] = ()
) -> list[Message]:
    """Customer turns become `user`, agent turns `assistant`; the last turn must be the customer's.

    ``shots`` (the shop's past dialogues most like this one) come first, as earlier exchanges:
    the oldest turns, so they are the first left out when the context window is short.
    """
    if not conversation:
        raise EmptyMessageError(
            "The conversation is empty: there is no customer message to reply to"
        )
    last = conversation[-1]
    if last.role != "customer":
        raise ValueError("The last turn must be the customer's message")
    messages: list[Message] = [("system", system), *shot_messages(shots)]
    for turn in conversation:
        text = clean_for_model(turn.text)
        if not text:
            if turn is last:
                raise EmptyMessageError("The customer's message is empty: nothing to reply to")
            continue
        messages.append(("user" if turn.role == "customer" else "assistant", text))
    return messages


# --- chat formats --------------------------------------------------------------------------------


def format_chatml(messages: Sequence[Message]) -> str:
    """Qwen's ChatML, ending with an open assistant turn."""
    body = "".join(f"<|im_start|>{role}\n{text}<|im_end|>\n" for role, text in messages)
    return body + "<|im_start|>assistant\n"


def format_chatglm3(messages: Sequence[Message]) -> str:
    """ChatGLM3's role tokens (``[gMASK]sop`` prefix, ``<|role|>`` headers)."""
    body = "".join(f"<|{role}|>\n {text}" for role, text in messages)
    return "[gMASK]sop" + body + "<|assistant|>\n"


FORMATTERS: dict[str, Callable[[Sequence[Message]], str]] = {
    "chatml": format_chatml,
    "chatglm3": format_chatglm3,
}
STOP_STRINGS: dict[str, list[str]] = {
    "chatml": ["<|im_end|>", "<|endoftext|>", "<|im_start|>"],
    "chatglm3": ["<|user|>", "<|observation|>", "<|system|>"],
}


# --- fitting into the context window -------------------------------------------------------------


@dataclass
class FitReport:
    """What had to be left out so the conversation fits the context window."""

    dropped_turns: int = 0
    shots_shown: int = 0
    dropped_shots: int = 0
    truncated_latest: bool = False
    removed_chars: int = 0
    prompt_tokens: int = 0
    notes: list[str] = field(default_factory=list)


def _cut_middle(text: str, keep_chars: int) -> str:
    keep_chars = max(keep_chars, 2)
    head = keep_chars * 2 // 3
    tail = keep_chars - head
    return text[:head] + _ELLIPSIS_ZH.format(n=len(text) - keep_chars) + text[-tail:]


def fit_messages(
    messages: list[Message],
    render: Callable[[Sequence[Message]], str],
    count_tokens: TokenCounter,
    budget: int,
    shots: int = 0,
) -> tuple[list[Message], FitReport]:
    """Drop the oldest turns until the prompt fits ``budget`` tokens.

    The system prompt and the customer's latest message are always kept. If the latest message
    alone does not fit, its middle is replaced by a visible marker, and the report says so.
    ``shots``: how many of the first history messages are past dialogues (``shot_messages``);
    the report counts those apart from the conversation's own turns.
    """
    report = FitReport()
    system, history, latest = messages[0], list(messages[1:-1]), messages[-1]
    shots = min(shots, len(history))

    def left_out(drop: int) -> None:
        report.dropped_shots = min(drop, shots) // 2
        report.shots_shown = shots // 2 - report.dropped_shots
        report.dropped_turns = max(drop - shots, 0)

    def size(msgs: Sequence[Message]) -> int:
        return count_tokens(render(msgs))

    # Find how many oldest turns to drop (binary search; the count is monotone in that number).
    lo, hi = 0, len(history)
    if size([system, *history, latest]) > budget:
        while lo < hi:
            mid = (lo + hi) // 2
            if size([system, *history[mid:], latest]) <= budget:
                hi = mid
            else:
                lo = mid + 1
    drop = lo
    # Keep the history starting at a customer turn, so roles still alternate.
    while drop < len(history) and history[drop][0] != "user":
        drop += 1
    kept = [system, *history[drop:], latest]
    left_out(drop)
    if report.dropped_shots:
        report.notes.append(
            f"left out {report.dropped_shots} past dialogue(s) to fit the context window"
        )
    if report.dropped_turns:
        report.notes.append(
            f"dropped {report.dropped_turns} oldest turn(s) to fit the context window"
        )

    if size(kept) > budget:
        text = latest[1]
        fixed = size([system, (latest[0], "")])
        lo_c, hi_c = 0, len(text)
        while lo_c < hi_c:  # longest kept length that fits
            mid = (lo_c + hi_c + 1) // 2
            if fixed + count_tokens(_cut_middle(text, mid)) <= budget:
                lo_c = mid
            else:
                hi_c = mid - 1
        if lo_c < 2:
            raise ValueError("The context window is too small for the system prompt")
        cut = _cut_middle(text, lo_c)
        kept = [system, (latest[0], cut)]
        report.truncated_latest = True
        report.removed_chars = len(text) - lo_c
        left_out(len(history))
        report.notes.append(
            f"the customer's message is too long for the context window: "
            f"{report.removed_chars} characters in its middle were left out"
        )
    report.prompt_tokens = size(kept)
    return kept, report
