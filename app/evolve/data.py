"""Training examples: a conversation context and the reply the end model should have written.

Prompts are rendered exactly as the engine renders them when it drafts (system prompt + ChatML),
so what the adapter learns is what it is later asked. The loss covers the reply tokens only.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.engine.conversation import (
    FORMATTERS,
    Shot,
    Turn,
    fit_messages,
    system_prompt,
    to_messages,
)
from app.engine.hf_backend import has_token
from app.fsio import loads_json
from app.scoring.echo import repeats_customer

if TYPE_CHECKING:
    from app.cloud.prompt import ExampleBank

IGNORE_INDEX = -100
REPLY_KEYS = ("reply", "label", "teacher_reply")


@dataclass(frozen=True)
class TrainingExample:
    context: tuple[str, ...]
    """Turns alternating customer/agent, ending with the customer's message."""
    reply: str
    source: str = "corpus"
    desirable: bool | None = None
    """For preference training (KTO): a 👍 (True) or 👎 (False) reply; None for plain labels."""
    shots: tuple[Shot, ...] = ()
    """Past dialogues shown before the context, as the engine shows them when drafting."""


def as_turns(context: Sequence[str]) -> list[Turn]:
    n = len(context)
    return [
        Turn("customer" if (n - 1 - i) % 2 == 0 else "agent", text)
        for i, text in enumerate(context)
    ]


def read_examples(path: Path) -> list[TrainingExample]:
    """JSON lines with ``context`` (or ``query``) and ``reply`` (or ``label``/``teacher_reply``).

    The labels ``xiaoer label`` writes are read as they are. A broken line is an error naming it;
    lines without a usable reply are skipped (an unlabeled task is not a training example).
    """
    examples = []
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            line = raw.decode("utf-8", errors="replace").strip()
            if not line:
                continue
            try:
                record = loads_json(line)
                context = record.get("context") or [record["query"]]
                if not all(isinstance(t, str) for t in context):
                    raise TypeError("context turns must be strings")
                shots = tuple((str(q), str(r)) for q, r in record.get("shots") or ())
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise ValueError(f"{path}:{number}: not a training record ({exc})") from exc
            reply = next((record[k] for k in REPLY_KEYS if isinstance(record.get(k), str)), "")
            desirable = record.get("desirable")
            if not isinstance(desirable, bool):
                desirable = None
            if reply.strip() and context[-1].strip():
                source = str(record.get("source", "file"))
                examples.append(
                    TrainingExample(tuple(context), reply.strip(), source, desirable, shots)
                )
    if not examples:
        raise ValueError(f"{path}: no training examples (lines need a context and a reply)")
    return examples


JD_EMOTICON = re.compile(r"#E-[A-Za-z]+(?:\[[^\]]*\])?")


# Replies shorter than this are left out of training: a few "好的"/"亲" labels are enough to teach
# the 0.5B to answer everything curtly (held-out JDDC: similarity to the human 0.243 → 0.177 on
# 60 teacher labels, 0.254 on the 31 of them with ≥ 12 characters; README "Online evolution").
MIN_REPLY_CHARS = 12


def clean_examples(
    examples: Iterable[TrainingExample], max_same_reply: int = 2, min_chars: int = 0
) -> list[TrainingExample]:
    """Corpus hygiene before training: JD's masked emoticons (``#E-s[数字x]``) are removed, replies
    left empty, shorter than ``min_chars`` or only repeating the customer are dropped, and one
    reply text is kept at most ``max_same_reply`` times — the corpus's stock phrases
    ("请问还有其他还可以帮到您的吗?") would otherwise teach the model to answer everything with
    them."""
    seen: dict[str, int] = {}
    out = []
    for ex in examples:
        reply = JD_EMOTICON.sub("", ex.reply).strip(" ,，")
        if (
            not reply
            or len(reply) < min_chars
            or seen.get(reply, 0) >= max_same_reply
            or (ex.context and repeats_customer(ex.context[-1], reply))
        ):
            continue
        seen[reply] = seen.get(reply, 0) + 1
        out.append(replace(ex, reply=reply))
    return out


def with_shots(
    examples: Iterable[TrainingExample], bank: ExampleBank, k: int, leave_out_same: bool = True
) -> list[TrainingExample]:
    """Each example with the ``k`` past dialogues of ``bank`` most like its customer message, as
    the engine is shown them when it drafts.

    ``leave_out_same``: when the examples come from the bank's own corpus, dialogues with the same
    customer message are left out; shown its own reply, the model would learn to copy what it is
    shown rather than to write a reply.
    """
    if k < 1:
        raise ValueError(f"The number of past dialogues shown must be at least 1, not {k}")
    out = []
    for ex in examples:
        found = bank.retrieve(ex.context[-1], k, leave_out_same=leave_out_same)
        out.append(replace(ex, shots=tuple((f.query, f.reply) for f in found)))
    return out


def write_examples(examples: Iterable[TrainingExample], path: Path) -> int:
    n = 0
    with path.open("w", encoding="utf-8") as fh:
        for ex in examples:
            record: dict[str, Any] = {
                "context": list(ex.context),
                "reply": ex.reply,
                "source": ex.source,
            }
            if ex.desirable is not None:
                record["desirable"] = ex.desirable
            if ex.shots:
                record["shots"] = [list(shot) for shot in ex.shots]
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
            n += 1
    return n


def encode(
    example: TrainingExample, tokenizer: Any, max_input: int, max_output: int, lang: str = "zh"
) -> tuple[list[int], list[int]]:
    """(input_ids, labels): the prompt's labels are IGNORE_INDEX; the oldest turns are dropped."""
    messages = to_messages(as_turns(example.context), system_prompt(lang), example.shots)
    if has_token(tokenizer, "<|im_start|>"):
        render, end = FORMATTERS["chatml"], "<|im_end|>"
    else:

        def render(msgs: Sequence[tuple[str, str]]) -> str:
            chat = [{"role": role, "content": text} for role, text in msgs]
            return str(
                tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
            )

        end = tokenizer.eos_token or ""

    def count(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False))

    kept, _ = fit_messages(messages, render, count, max_input)  # drops the oldest turns
    prompt_ids = tokenizer.encode(render(kept), add_special_tokens=False)
    reply_ids = tokenizer.encode(example.reply + end, add_special_tokens=False)[:max_output]
    return prompt_ids + reply_ids, [IGNORE_INDEX] * len(prompt_ids) + reply_ids


PackedRow = tuple[list[int], list[int], list[int]]
"""(input_ids, labels, position_ids) of several examples laid end to end in one row."""


def pack(encoded: Sequence[tuple[list[int], list[int]]], width: int, seed: int) -> list[PackedRow]:
    """Examples laid end to end in rows of at most ``width`` tokens (first fit, in a seeded
    order), each keeping its own positions from 0: the model sees every example as its own
    sequence (transformers builds a block-diagonal mask from the positions), and no step pays
    for padding."""
    order = list(range(len(encoded)))
    random.Random(seed).shuffle(order)
    rows: list[PackedRow] = []
    for i in order:
        ids, labels = encoded[i]
        if len(ids) > width:
            raise ValueError(f"an example of {len(ids)} tokens does not fit a row of {width}")
        row = next((r for r in rows if len(r[0]) + len(ids) <= width), None)
        if row is None:
            row = ([], [], [])
            rows.append(row)
        row[0].extend(ids)
        row[1].extend(labels)
        row[2].extend(range(len(ids)))
    return rows


def batches(n: int, batch_size: int, seed: int) -> Iterator[list[int]]:
    """Endless shuffled index batches; the order depends only on the seed (resumable)."""
    rng = random.Random(seed)
    epoch: list[int] = []
    while True:
        if len(epoch) < batch_size:
            order = list(range(n))
            rng.shuffle(order)
            epoch += order
        yield epoch[:batch_size]
        del epoch[:batch_size]
