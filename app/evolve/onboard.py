"""Warm start ("onboarding"): fine-tune the end model once on the shop's past dialogues.

>>> plan = plan_onboarding(Path("history.csv"), budget_tokens=200_000)   # sizes and the ETA
>>> onboard(store, plan, progress=print)          # train → export → gate → promote

The history is read by the knowledge importer's readers (JDDC 2018 / 2019, JSONL, CSV), cleaned
(``clean_history``: duplicates and curt replies dropped, stock phrases capped, platform masks such
as ``[订单编号:[数字x]]`` kept as they are), and split once into a fixed held-back set (whole
conversations, chosen by a hash of their id, so the split does not move when the file grows) and
the training history. The trainer runs as the usual child process with sequence packing and a token
budget; a killed or stopped run resumes from its checkpoint when ``onboard`` runs again with the same
plan. The result is an adapter version like any other: gated against the active one on the
held-back set and the probes, promoted or rejected, rolled back.

Afterwards the evolution settings point at both files: a round replays a sample of the history
(``settings.corpus``) and its gate compares candidate and active on the held-back set
(``settings.holdout``).
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from app import paths
from app.engine import weights
from app.evolve.config import QUICK_PRESET, SHOTS_MAX_INPUT, TrainConfig
from app.evolve.data import (
    MIN_REPLY_CHARS,
    TrainingExample,
    clean_examples,
    read_examples,
    with_shots,
    write_examples,
)
from app.evolve.settings import EvolutionSettings
from app.evolve.trainer_process import Progress
from app.evolve.training import export_candidate, train_run
from app.evolve.versions import adapters_dir, check_version_name
from app.fsio import atomic_write_text
from app.store import Store

DEFAULT_BUDGET_TOKENS = 300_000
"""About 40 minutes at the ~120 tokens/s packed LoRA training reaches on a quiet 2-core CPU."""
PACK_TOKENS = 512
"""Rows of ~2–3 JDDC pairs: big enough matrices for the CPU, and many optimizer steps a budget."""
HOLDOUT_PAIRS = 200
"""Held back from training once; the gate drafts ``EvolutionSettings.holdout_gate`` of them."""
ONBOARD_MAX_INPUT = 192
ONBOARD_MAX_OUTPUT = 64
ONBOARD_LR = 4e-4
ONBOARD_LORA_R = 16
ONBOARD_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
"""A whole history needs more room than a round's few hundred labels: rank 16 on attention and MLP
of the top layers holds ~8× the parameters of the rounds' LoRA for ~the same step time (the
backward pass through those layers costs the same either way)."""
SHOT_SHARE = 0.25
SHOTS = 4
"""A quarter of the history's rows are shown the 4 past dialogues most like them, as the engine
shows them when it drafts with examples: trained without any, the warm start wrote worse with 4
examples in the prompt than without (0.285 against 0.296; docs/experiments/2026-12-07-warm-start.md)."""
ANCHOR_SHARE = 0.08
"""Rows of a bare customer message (no earlier turns) answered by the base model itself. The
history holds mid-conversation turns only; trained on them alone, the warm start answered "你好"
with "商品页面是无法修改的…" and the gate's probes refused it. These rows keep what the base does
with a message out of context (self-distillation), and cost one greedy draft each, once."""
SAMPLE_SEED = 42


def onboarding_dir() -> Path:
    path = paths.data_dir() / "onboarding"
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass(frozen=True)
class CleanReport:
    read: int
    kept: int
    duplicates: int
    """Same context and reply as an earlier pair."""
    dropped: int
    """Curt, only repeating the customer, or a stock phrase over its cap."""


def read_history(corpus: Path, fmt: str | None = None) -> list[TrainingExample]:
    """The past dialogues of ``corpus`` (the knowledge importer's formats; ``fmt`` None: told by
    the path), each with its conversation's id as its source (``history:<id>``)."""
    from app.knowledge.formats import format_of, parse_file

    result = parse_file(corpus, format_of(corpus) if fmt is None else fmt)  # type: ignore[arg-type]
    out = []
    for n, entry in enumerate(result.entries):
        if entry.kind != "dialogue":
            continue
        conversation = entry.conversation or f"pair{n}"
        out.append(TrainingExample(entry.context, entry.answer, f"history:{conversation}"))
    if not out:
        raise ValueError(f"{corpus}: no past dialogues (customer message → agent reply) to learn")
    return out


def clean_history(
    examples: Sequence[TrainingExample], max_same_reply: int = 2, min_chars: int = MIN_REPLY_CHARS
) -> tuple[list[TrainingExample], CleanReport]:
    """Exact duplicates dropped, then ``clean_examples`` (stock phrases capped, emoticon codes
    removed, curt replies and echoes of the customer dropped). Masks stay: the model learns to
    write ``[订单编号:[数字x]]`` where an agent wrote a real order number."""
    seen: set[tuple[tuple[str, ...], str]] = set()
    unique = []
    for ex in examples:
        key = (ex.context, ex.reply)
        if key not in seen:
            seen.add(key)
            unique.append(ex)
    kept = clean_examples(unique, max_same_reply=max_same_reply, min_chars=min_chars)
    report = CleanReport(
        len(examples), len(kept), len(examples) - len(unique), len(unique) - len(kept)
    )
    return kept, report


def split_holdout(
    examples: Sequence[TrainingExample], n: int
) -> tuple[list[TrainingExample], list[TrainingExample]]:
    """(training history, held-back set): whole conversations go to the held-back set, in the
    order of a hash of their id, until it has ``n`` pairs. The same corpus gives the same split,
    and a conversation never has pairs on both sides."""
    by_conversation: dict[str, list[int]] = {}
    for i, ex in enumerate(examples):
        by_conversation.setdefault(ex.source, []).append(i)

    def rank(conversation: str) -> str:
        return hashlib.sha256(conversation.encode("utf-8")).hexdigest()

    held: set[int] = set()
    for conversation in sorted(by_conversation, key=rank):
        if len(held) >= n:
            break
        held.update(by_conversation[conversation])
    train = [ex for i, ex in enumerate(examples) if i not in held]
    return train, [ex for i, ex in enumerate(examples) if i in held]


@dataclass
class OnboardPlan:
    """What a warm start will do, before it starts (``xiaoer onboard --plan``)."""

    corpus: str
    format: str | None
    budget_tokens: int
    report: CleanReport
    train_pairs: int
    holdout_pairs: int
    history_tokens: int
    """Tokens of the cleaned training history (prompt and reply), one pass."""
    epochs: float
    """How many passes over the history the budget buys."""
    tok_s: float | None
    """The speed the last warm start measured on this machine (None: not measured yet)."""
    eta_s: float | None
    """`Estimate.eta_s`."""
    version: str
    """The adapter version it trains: the same plan resumes the same run."""
    anchors: int = 0
    """Anchor replies the base model drafts before training (`ANCHOR_SHARE`)."""

    def summary(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "report"} | {
            "read": self.report.read,
            "duplicates": self.report.duplicates,
            "dropped": self.report.dropped,
        }


def _speed_file() -> Path:
    return onboarding_dir() / "speed.json"


def measured_speed(key: str = "tok_s") -> float | None:
    """What the last warm start measured on this machine: ``tok_s`` (training tokens per second)
    or ``s_per_anchor`` (seconds to draft one anchor reply); None when not measured yet."""
    try:
        value = json.loads(_speed_file().read_text(encoding="utf-8")).get(key)
    except (OSError, ValueError, AttributeError):
        return None
    return float(value) if isinstance(value, (int, float)) and value > 0 else None


def _save_speed(**measured: float) -> None:
    known = {k: measured_speed(k) for k in ("tok_s", "s_per_anchor")}
    values = {k: v for k, v in known.items() if v is not None} | measured
    atomic_write_text(_speed_file(), json.dumps(values))


def _count_tokens(examples: Sequence[TrainingExample], base_model: str) -> int:
    """Tokens the trainer will see (prompt cut to ``ONBOARD_MAX_INPUT``, reply to
    ``ONBOARD_MAX_OUTPUT``), counted in one batch by the fast tokenizer: a close estimate (a
    prompt over the limit loses whole turns, not tokens), in seconds for thousands of pairs."""
    from transformers import AutoTokenizer

    from app.engine.conversation import format_chatml, system_prompt, to_messages
    from app.evolve.base import trainable_dir
    from app.evolve.data import as_turns

    tokenizer = AutoTokenizer.from_pretrained(str(trainable_dir(base_model)))
    system = system_prompt("zh")
    prompts = [format_chatml(to_messages(as_turns(ex.context), system)) for ex in examples]
    replies = [ex.reply + "<|im_end|>" for ex in examples]
    encoded = tokenizer(prompts + replies, add_special_tokens=False)["input_ids"]
    n = len(examples)
    return sum(
        min(len(p), ONBOARD_MAX_INPUT) + min(len(r), ONBOARD_MAX_OUTPUT)
        for p, r in zip(encoded[:n], encoded[n:], strict=True)
    )


def plan_onboarding(
    corpus: Path,
    fmt: str | None = None,
    budget_tokens: int = DEFAULT_BUDGET_TOKENS,
    holdout: int = HOLDOUT_PAIRS,
    base_model: str = weights.DEFAULT_PROFILE,
) -> OnboardPlan:
    """Read, clean and split the history (written to the onboarding folder) and size the run."""
    if budget_tokens < 1:
        raise ValueError("The token budget must be at least 1")
    kept, report = clean_history(read_history(corpus, fmt))
    train, held = split_holdout(kept, holdout)
    if not train:
        raise ValueError(f"{corpus}: nothing left to learn after cleaning and the held-back set")
    folder = onboarding_dir()
    write_examples(train, folder / "history.jsonl")
    write_examples(held, folder / "holdout.jsonl")
    tokens = _count_tokens(train, base_model)
    sized = estimate(budget_tokens, tokens, len(train))
    version = plan_version(corpus, fmt, budget_tokens, holdout, base_model)
    return OnboardPlan(
        str(corpus),
        fmt,
        budget_tokens,
        report,
        len(train),
        len(held),
        tokens,
        sized.epochs,
        sized.tok_s,
        sized.eta_s,
        version,
        sized.anchors,
    )


def plan_version(
    corpus: Path,
    fmt: str | None,
    budget_tokens: int,
    holdout: int = HOLDOUT_PAIRS,
    base_model: str = weights.DEFAULT_PROFILE,
) -> str:
    """The adapter version a warm start trains: the same history, budget and recipe give the
    same version (a stopped run resumes it); another recipe never resumes its checkpoint."""
    recipe = [ONBOARD_LR, ONBOARD_LORA_R, list(ONBOARD_LORA_TARGETS), ONBOARD_MAX_INPUT]
    recipe += [SHOT_SHARE, SHOTS, ANCHOR_SHARE]
    key = json.dumps([str(corpus.resolve()), fmt, budget_tokens, holdout, base_model, recipe])
    return check_version_name(f"onboard-{hashlib.sha256(key.encode()).hexdigest()[:10]}")


@dataclass(frozen=True)
class Estimate:
    epochs: float
    anchors: int
    tok_s: float | None
    eta_s: float | None
    """Training at ``tok_s``, plus drafting the anchors at the last measured speed; None until
    a warm start has run on this machine."""


def estimate(budget_tokens: int, history_tokens: int, train_pairs: int) -> Estimate:
    """What a budget buys on a history of this size, at the speeds measured on this machine (the
    Evolution panel's warm start dialog recomputes it as the budget changes)."""
    speed = measured_speed()
    anchors = anchor_count(sample_size(budget_tokens, history_tokens, train_pairs))
    eta = None
    if speed:
        eta = round(budget_tokens / speed + anchors * (measured_speed("s_per_anchor") or 0.0))
    return Estimate(round(budget_tokens / max(1, history_tokens), 3), anchors, speed, eta)


def budget_sample(plan: OnboardPlan, history: Path) -> list[TrainingExample]:
    """As much of the history as the budget trains on (a quarter more), a seeded sample: the
    trainer then tokenizes only that (on a busy 2-core machine all 5,000 JDDC pairs took minutes
    before the first step)."""
    import random

    examples = read_examples(history)
    wanted = sample_size(plan.budget_tokens, plan.history_tokens, plan.train_pairs)
    if wanted >= len(examples):
        return examples
    return random.Random(SAMPLE_SEED).sample(examples, wanted)


def sample_size(budget_tokens: int, history_tokens: int, train_pairs: int) -> int:
    """Pairs of the history the budget trains on (a quarter more than it buys), at most all."""
    per_pair = history_tokens / max(1, train_pairs)
    return min(train_pairs, math.ceil(1.25 * budget_tokens / per_pair) + 8)


def anchor_count(rows: int) -> int:
    return round(ANCHOR_SHARE * rows)


def anchor_rows(
    history: Sequence[TrainingExample],
    n: int,
    base_model: str,
    emit: Progress | None = None,
    cancel: threading.Event | None = None,
    drafted: Path | None = None,
) -> list[TrainingExample]:
    """``n`` of the history's customer messages, each alone, with the base model's greedy reply
    (``ANCHOR_SHARE``), cleaned as the history is: the base's stock refusal ("抱歉，我无法协助完成
    这个请求。") is kept twice at most, curt replies are left out.

    Drafting takes a few minutes: progress goes to ``emit`` (``stage`` events with ``done``,
    ``total`` and ``eta_s``), ``cancel`` stops it (RuntimeError), and each reply is appended to
    ``drafted`` as it comes, so a stopped run drafts only the rest when it starts again."""
    import random
    import time

    from app.evolve import gate

    messages = sorted({ex.context[-1].strip() for ex in history} - {""})
    chosen = random.Random(SAMPLE_SEED).sample(messages, min(n, len(messages)))
    replies = _read_anchor_replies(drafted)
    if drafted is not None and drafted.is_file() and not drafted.read_bytes().endswith(b"\n"):
        with drafted.open("a", encoding="utf-8") as f:  # a line torn by a kill: end it
            f.write("\n")
    todo = [m for m in chosen if m not in replies]
    started = time.monotonic()

    def keep(i: int, reply: str) -> None:
        if drafted is not None:
            with drafted.open("a", encoding="utf-8") as f:
                f.write(json.dumps({"message": todo[i], "reply": reply}, ensure_ascii=False) + "\n")
        per_item = (time.monotonic() - started) / (i + 1)
        if emit is not None:
            left = len(todo) - i - 1
            done = len(chosen) - left
            emit(
                {
                    "event": "stage",
                    "stage": "anchors",
                    "done": done,
                    "total": len(chosen),
                    "eta_s": round(per_item * left),
                    "s_per_anchor": round(per_item, 2),
                }
            )
        if cancel is not None and cancel.is_set():
            raise RuntimeError("Stopped while drafting the anchor replies; start again to resume")

    items = [TrainingExample((message,), "", "anchor") for message in todo]
    if items:
        new = gate.draft_replies(None, items, base_model, on_reply=keep)
        replies.update(zip(todo, new, strict=True))
        _save_speed(s_per_anchor=(time.monotonic() - started) / len(items))
    rows = [TrainingExample((m,), replies[m], "anchor") for m in chosen]
    return clean_examples(rows, min_chars=MIN_REPLY_CHARS)


def _read_anchor_replies(path: Path | None) -> dict[str, str]:
    """Anchor replies drafted by an earlier, stopped run (a torn last line is ignored)."""
    if path is None or not path.is_file():
        return {}
    out = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            item = json.loads(line)
            out[str(item["message"])] = str(item["reply"])
        except (ValueError, KeyError, TypeError):
            continue
    return out


def training_rows(
    plan: OnboardPlan,
    history: Path,
    base_model: str,
    emit: Progress,
    cancel: threading.Event | None = None,
    drafted: Path | None = None,
) -> list[TrainingExample]:
    """What the warm start trains on: the budget's sample of the history, ``SHOT_SHARE`` of it
    shown ``SHOTS`` past dialogues of the rest, and ``ANCHOR_SHARE`` anchor rows (drafted first;
    ``cancel`` and ``drafted`` as in `anchor_rows`)."""
    import random

    from app.cloud.prompt import ExampleBank, PromptExample

    rows = budget_sample(plan, history)
    pairs = read_examples(history)
    n_anchors = anchor_count(len(rows))
    emit({"event": "stage", "stage": "anchors", "rows": n_anchors})
    anchors = anchor_rows(pairs, n_anchors, base_model, emit, cancel, drafted)
    shown = set(random.Random(SAMPLE_SEED).sample(range(len(rows)), round(SHOT_SHARE * len(rows))))
    if shown:
        bank = ExampleBank(
            [PromptExample(ex.context[-1], ex.reply) for ex in pairs],
            cache_dir=paths.data_dir() / "cache",
        )
        with_examples = iter(with_shots([rows[i] for i in sorted(shown)], bank, SHOTS))
        rows = [next(with_examples) if i in shown else ex for i, ex in enumerate(rows)]
    return rows + anchors


def onboarding_config(plan: OnboardPlan, run_dir: Path, base_model: str) -> TrainConfig:
    """LoRA on the quick preset's layers, packed rows, as many steps as the budget buys."""
    return TrainConfig(
        data=str(run_dir / "data.jsonl"),
        output_dir=str(run_dir),
        method="lora",
        base_model=base_model,
        lr=ONBOARD_LR,
        warmup_steps=3,
        max_input=ONBOARD_MAX_INPUT,
        max_output=ONBOARD_MAX_OUTPUT,
        shots_max_input=SHOTS_MAX_INPUT,
        pack_tokens=PACK_TOKENS,
        budget_tokens=plan.budget_tokens,
        steps=plan.budget_tokens // (PACK_TOKENS // 2) + 2,  # a bound: rows are mostly ≥ half full
        save_every=10,
        lora_top_layers=QUICK_PRESET["lora_top_layers"],
        lora_r=ONBOARD_LORA_R,
        lora_targets=list(ONBOARD_LORA_TARGETS),
    )


def onboard(
    store: Store,
    plan: OnboardPlan,
    settings: EvolutionSettings | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    base_model: str = weights.DEFAULT_PROFILE,
    gate: bool = True,
) -> dict[str, Any]:
    """Train the plan's version (resuming it if a run was stopped), export it, gate it against the
    active version and promote it if it passes; point the evolution settings at the history and
    the held-back set. Callable from a worker thread (the UI) or the CLI; raises RuntimeError when
    training fails or is cancelled (then the next call resumes)."""
    from app.evolve.loop import Evolution

    emit = progress or (lambda event: None)
    settings = settings or EvolutionSettings.load()
    folder = onboarding_dir()
    run_dir = adapters_dir() / plan.version
    with store.session() as session:
        if store.get_adapter(session, plan.version) is not None:
            raise ValueError(
                f"This history was already learned with this budget (version {plan.version}); "
                "give another --budget-tokens to train again"
            )
    run_dir.mkdir(parents=True, exist_ok=True)
    data = run_dir / "data.jsonl"
    if not data.is_file():  # a resumed run keeps its rows (and does not draft its anchors again)
        drafted = run_dir / "anchors.jsonl"
        rows = training_rows(plan, folder / "history.jsonl", base_model, emit, cancel, drafted)
        part = run_dir / "data.jsonl.part"
        write_examples(rows, part)
        part.replace(data)
    config = onboarding_config(plan, run_dir, base_model)
    config.save(run_dir / "run.json")
    emit({"event": "stage", "stage": "train", **plan.summary()})
    version, result = train_run(store, run_dir, config, progress, cancel)
    if result.get("tok_s"):
        _save_speed(tok_s=result["tok_s"])
    corpus, holdout = str(folder / "history.jsonl"), str(folder / "holdout.jsonl")
    settings = replace(settings, corpus=corpus, holdout=holdout)
    # Only these two: the manager may have changed the rest while this trained.
    EvolutionSettings.save_fields(corpus=corpus, holdout=holdout)
    emit({"event": "stage", "stage": "export"})
    export_candidate(store, version, base_model)
    done: dict[str, Any] = {"version": version, "train": result, "promoted": False}
    if gate:
        emit({"event": "stage", "stage": "gate"})
        evo = Evolution(store, settings, base_model=base_model)
        verdict = evo.gate(version, progress=progress)
        done.update(promoted=verdict.promoted, reason=verdict.reason, gate=verdict.summary())
        if verdict.promoted:
            evo.promote(version)
    emit({"event": "done", **done})
    return done


def start_onboarding(
    store: Store,
    plan: OnboardPlan,
    progress: Progress,
    settings: EvolutionSettings | None = None,
) -> tuple[threading.Thread, threading.Event]:
    """``onboard`` on a background thread, for the Evolution panel: returns (the thread, the
    event that stops it). Errors arrive as an ``error`` event; stopping checkpoints the run."""
    cancel = threading.Event()

    def work() -> None:
        try:
            onboard(store, plan, settings, progress, cancel)
        except (RuntimeError, ValueError, OSError) as exc:
            progress({"event": "error", "message": str(exc)})

    thread = threading.Thread(target=work, name="xiaoer-onboard", daemon=True)
    thread.start()
    return thread, cancel
