"""The gate: a candidate adapter version against the active one, before anything is promoted.

Both draft greedy replies to the probes and to held-back recent labels; the scorer gives each a
Final Score. ``gate()`` is the verdict, a pure function of those scores: promote only if the mean
Final is higher by a margin and no probe regresses past a tolerance. ``run_gate()`` drafts, scores,
judges and records the verdict on the candidate's row.

A probe is a bare message, so two things are judged there beyond the scorer: a reply that
promises a time, price, refund, compensation or gift (``check_commitments``) invents it and scores
0, and a drop between two replies that say the same thing (``SAME_REPLY``) is the scorer's noise,
not a regression.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.engine.backend import GenerationConfig
from app.evolve.data import TrainingExample, as_turns
from app.evolve.promotion import adapter_row, served_path
from app.store import AdapterVersion, Store

if TYPE_CHECKING:
    from app.engine.end_model import EndModel

GATE_GENERATION = GenerationConfig(temperature=0.0, max_tokens=64, repeat_penalty=1.1)
SAME_REPLY = 0.75
"""USE cosine from which two replies to a probe count as the same answer. The matcher scored
"你好，有什么我可以帮你的吗？" 0.93 and "您好，有什么我可以帮您的吗？" 0.54 (cosine 0.96); the warm start
that collapsed answered the probes with replies at cosine 0.02–0.40 to the base's
(docs/experiments/2026-12-07-warm-start.md, "Fourth run")."""


@dataclass(frozen=True)
class GateItem:
    """One gate input as both versions answered it, with the Final Score of each answer."""

    context: str
    """The customer's last turn."""
    kind: str
    """``probe``, or the source of a held-back label."""
    candidate: float
    active: float
    candidate_reply: str = ""
    active_reply: str = ""
    agreement: float | None = None
    """Probes: the USE cosine of the two replies (``SAME_REPLY``); None: not measured."""


@dataclass
class GateResult:
    version: str
    promoted: bool
    candidate_final: float
    active_final: float | None
    reason: str
    items: list[dict[str, Any]] = field(default_factory=list)
    delta: dict[str, list[float | int]] = field(default_factory=dict)
    """Per kind of item (``all``, ``probe``, ``holdout``, a label's source): [mean paired
    difference candidate − active, half-width of its 95 % interval, n]."""

    def summary(self) -> dict[str, Any]:
        """The verdict without the items (what ``xiaoer onboard`` prints)."""
        return {k: v for k, v in asdict(self).items() if k != "items"}


def paired_difference(values: Sequence[float]) -> list[float | int]:
    """[mean, half-width of its normal-approximation 95 % interval, n] of paired differences."""
    n = len(values)
    mean = sum(values) / n
    var = sum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
    return [round(mean, 4), round(1.96 * math.sqrt(var / n), 4), n]


def gate(version: str, items: Sequence[GateItem], margin: float, tolerance: float) -> GateResult:
    """Whether candidate ``version`` passes: its mean Final is at least the active's + ``margin``
    and no probe's Final drops by more than ``tolerance`` with a reply that says something else.
    ``items`` must hold a probe."""
    if not any(item.kind == "probe" for item in items):
        raise ValueError("The gate needs at least one probe")
    rows = [asdict(item) for item in items]
    cand_mean = sum(item.candidate for item in items) / len(items)
    base_mean = sum(item.active for item in items) / len(items)
    changed = [
        item.candidate - item.active
        for item in items
        if item.kind == "probe" and (item.agreement is None or item.agreement < SAME_REPLY)
    ]
    worst = min(changed, default=0.0)
    better = cand_mean >= base_mean + margin
    no_regression = worst >= -tolerance
    if not better:
        reason = f"mean Final {cand_mean:.3f} is not above {base_mean:.3f} + {margin}"
    elif not no_regression:
        reason = f"a probe dropped by {-worst:.3f} (> tolerance {tolerance})"
    else:
        reason = f"mean Final {cand_mean:.3f} ≥ {base_mean:.3f} + {margin}"
    passed = better and no_regression
    kinds: dict[str, list[float]] = {"all": []}
    for item in items:
        diff = item.candidate - item.active
        kinds["all"].append(diff)
        kinds.setdefault(item.kind, []).append(diff)
    delta = {kind: paired_difference(values) for kind, values in kinds.items()}
    return GateResult(
        version, passed, round(cand_mean, 4), round(base_mean, 4), reason, rows, delta
    )


def run_gate(
    store: Store,
    scorer: Any,
    version: str,
    items: Sequence[TrainingExample],
    references: Sequence[str | None],
    base_model: str,
    margin: float,
    tolerance: float,
) -> GateResult:
    """Draft ``items`` (shown their shots) with candidate ``version`` and with the active version,
    score both against ``references``, judge with ``gate()`` and record the verdict on the
    candidate's row (rejected when it fails, a candidate again when a rejected one passes)."""
    from app.scoring.scorers import ScoreItem

    with store.session() as session:
        candidate = adapter_row(store, session, version)
        if candidate.status not in ("candidate", "rejected"):  # a verdict would change its status
            raise ValueError(
                f"adapter {version} is {candidate.status}; only candidates and rejected versions "
                "are gated"
            )
        active = store.active_adapter(session)
        session.expunge_all()
    cand_replies = draft_replies(Served.of(candidate), items, base_model)
    base_replies = draft_replies(Served.of(active), items, base_model)

    def scores(replies: list[str]) -> list[Any]:
        batch = [
            ScoreItem(list(ex.context), reply, ref)
            for ex, reply, ref in zip(items, replies, references, strict=True)
        ]
        return list(scorer.score_many(batch))

    cand = [score.final for score in scores(cand_replies)]
    base = [score.final for score in scores(base_replies)]
    agreement = judge_probes(items, cand_replies, base_replies, cand, base)
    judged = [
        GateItem(ex.context[-1], ex.source, c, b, cr, br, agreement.get(i))
        for i, (ex, c, b, cr, br) in enumerate(
            zip(items, cand, base, cand_replies, base_replies, strict=True)
        )
    ]
    result = gate(version, judged, margin, tolerance)
    with store.session() as session:
        row = adapter_row(store, session, version)
        verdict = {k: v for k, v in asdict(result).items() if k != "version"}
        verdict["against"] = active.version if active is not None else None
        row.metrics = {**row.metrics, "gate": verdict}
        if not result.promoted:
            row.status = "rejected"
        elif row.status == "rejected":  # gated again and passed: it may be promoted now
            row.status = "candidate"
    return result


def judge_probes(
    items: Sequence[TrainingExample],
    cand_replies: Sequence[str],
    base_replies: Sequence[str],
    cand: list[float],
    base: list[float],
) -> dict[int, float]:
    """Zero the Final of a probe's reply that makes a commitment (nothing in a bare message
    supports one); return each probe's agreement, the USE cosine of its two replies."""
    from app.scoring.scorers import USESimilarity
    from app.suggest.guard import check_commitments

    probes = [i for i, ex in enumerate(items) if ex.source == "probe"]
    for finals, replies in ((cand, cand_replies), (base, base_replies)):
        for i in probes:
            if not check_commitments(replies[i], items[i].context).ok:
                finals[i] = 0.0
    sims = USESimilarity().similarity(
        [cand_replies[i] for i in probes], [base_replies[i] for i in probes]
    )
    return {i: round(float(sim), 4) for i, sim in zip(probes, sims, strict=True)}


@dataclass(frozen=True)
class Served:
    """An adapter as the engine serves it: LoRA as GGUF on llama.cpp, the others as peft dirs."""

    name: str
    method: str
    path: Path

    @classmethod
    def of(cls, row: AdapterVersion | None) -> Served | None:
        return None if row is None else cls(row.version, row.method, served_path(row))


def load_drafter(
    adapter: Served | None, base_model: str, generation: GenerationConfig = GATE_GENERATION
) -> EndModel:
    """The base model serving ``adapter`` (None: no adapter), greedy by default: the drafts the
    gate and the evaluations compare."""
    from app.engine.end_model import EndModel, EngineConfig
    from app.evolve.base import trainable_dir

    if adapter is None or adapter.method == "lora":
        model = EndModel.load(EngineConfig(model=base_model), generation)
    else:
        config = EngineConfig(model=str(trainable_dir(base_model)), backend="transformers")
        model = EndModel.load(config, generation)
    if adapter is not None:
        try:
            model.load_adapter(adapter.name, adapter.path)
            model.set_adapter(adapter.name)
        except BaseException:
            model.close()
            raise
    return model


def draft_replies(
    adapter: Served | None,
    items: Sequence[TrainingExample],
    base_model: str,
    generation: GenerationConfig = GATE_GENERATION,
    on_reply: Callable[[int, str], None] | None = None,
) -> list[str]:
    """Greedy replies for ``items`` (shown their ``shots``) from the base model with ``adapter``
    (None: no adapter). ``on_reply(i, reply)`` sees each as it comes (progress; it may raise to
    stop)."""
    model = load_drafter(adapter, base_model, generation)
    replies = []
    try:
        for i, ex in enumerate(items):
            replies.append(model.reply(as_turns(ex.context), shots=ex.shots))
            if on_reply is not None:
                on_reply(i, replies[-1])
        return replies
    finally:
        model.close()
