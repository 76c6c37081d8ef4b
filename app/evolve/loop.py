"""Online evolution (paper, Section III): weak drafts → labels → a new adapter → gate → promotion.

>>> evo = Evolution(store, teacher=service)
>>> evo.run_round(progress=print)      # what "Evolve now" does

1. ``candidates()``: drafts with a thumbs-down, an edit, or a Final Score below the threshold,
   that have no label yet.
2. ``fetch_labels()``: the agent's edited text is the label when there is one (a human label beats a
   pseudo-label); otherwise the teacher's reply (through the privacy firewall) is.
3. ``train()``: a new adapter version from the active one, on the new labels plus a replay sample
   of earlier labels and corpus pairs, in a child process.
4. ``gate()``: candidate vs active on the probes and held-back recent labels; promoted only if the
   mean Final Score is higher by a margin and no probe regresses past a tolerance.
5. ``promote()`` / ``rollback()``: one database transaction; the adapter files are written and
   hashed before, so a kill at any moment leaves the old or the new adapter active.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from app import paths
from app.engine import models
from app.engine.backend import GenerationConfig
from app.errors import XiaoerError
from app.evolve.config import METHODS, SHOTS_MAX_INPUT, Method, TrainConfig
from app.evolve.data import (
    MIN_REPLY_CHARS,
    Example,
    as_turns,
    clean_examples,
    read_examples,
    with_shots,
    write_examples,
)
from app.evolve.versions import adapters_dir as adapters_dir  # where runs live (re-exported)
from app.evolve.versions import new_run_dir
from app.fsio import atomic_write_text
from app.scoring.echo import repeats_customer
from app.scoring.record import CALIBRATED_MATCHING
from app.store import AdapterVersion, Rating, Score, Store, TeacherReply, TrainingRun
from app.store.models import RunStatus

if TYPE_CHECKING:
    from app.cloud.prompt import ExampleBank

Progress = Callable[[dict[str, Any]], None]
log = logging.getLogger(__name__)

PAPER_PROBES = (
    "你好",
    "可以选择快递吗？",
    "520401029636",
    "能便宜点吗？",
    "太烦了，我从昨天就一直等这个快递，都不敢出门。",
    "今天买的话今天发货吗？",
)
GATE_GENERATION = GenerationConfig(temperature=0.0, max_tokens=64, repeat_penalty=1.1)


@dataclass
class EvolutionSettings:
    """The manager's evolution policy (``<data dir>/evolution.json``)."""

    low_score: float = field(default=0.5, metadata={"help": "Final Score below this → candidate"})
    method: Method = field(default="lora", metadata={"help": "lora, prefix or ptuning-v2"})
    objective: str = field(
        default="sft", metadata={"help": "sft (labels) or kto (labels + 👍/👎 drafts, LoRA)"}
    )
    preset: str = field(default="quick", metadata={"help": "quick (CPU minutes) or paper"})
    steps: int | None = field(default=None, metadata={"help": "override the preset's steps"})
    replay: int = field(default=20, metadata={"help": "earlier labels and corpus pairs mixed in"})
    corpus: str | None = field(default=None, metadata={"help": "JSONL pairs for replay"})
    examples: str | None = field(
        default=None,
        metadata={"help": "the shop's past dialogues (a corpus file): shown to the teacher"},
    )
    shots: int = field(
        default=0,
        metadata={"help": "past dialogues of `examples` in each training prompt and gate draft"},
    )
    holdback: int = field(default=5, metadata={"help": "recent labels kept out of training"})
    min_label_chars: int = field(
        default=MIN_REPLY_CHARS,
        metadata={"help": "teacher labels and corpus replies shorter than this are not trained on"},
    )
    margin: float = field(default=0.01, metadata={"help": "mean Final gain needed to promote"})
    tolerance: float = field(default=0.15, metadata={"help": "largest drop allowed on one probe"})
    auto_every: int | None = field(default=None, metadata={"help": "evolve after K new labels"})
    probes: list[str] = field(default_factory=lambda: list(PAPER_PROBES))

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"Unknown method {self.method!r}: use one of {', '.join(METHODS)}")
        if not 0 <= self.low_score <= 1:
            raise ValueError("low_score must be in [0, 1]")
        if self.objective not in ("sft", "kto"):
            raise ValueError(f"Unknown objective {self.objective!r}: use sft or kto")
        if self.objective == "kto" and self.method != "lora":
            raise ValueError("KTO preference training is offered for the lora method")
        if min(self.holdback, self.replay, self.min_label_chars, self.shots) < 0:
            raise ValueError("holdback, replay, min_label_chars and shots must be >= 0")
        if self.shots and not self.examples:
            raise ValueError("shots needs examples: the past dialogues to choose them from")

    @staticmethod
    def path() -> Path:
        return paths.data_dir() / "evolution.json"

    @classmethod
    def load(cls) -> EvolutionSettings:
        path = cls.path()
        if not path.exists():
            return cls()
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            known = {f.name for f in fields(cls)}
            return cls(**{k: v for k, v in raw.items() if k in known})
        except (OSError, ValueError, TypeError) as exc:
            raise ValueError(f"{path}: unreadable evolution settings ({exc})") from exc

    def save(self) -> None:
        atomic_write_text(self.path(), json.dumps(asdict(self), ensure_ascii=False, indent=2))


@dataclass(frozen=True)
class Candidate:
    draft_id: int
    context: tuple[str, ...]
    draft: str
    reason: str
    """thumbs_down, edited, low_score, or uncalibrated (scored high by a matcher not trained on
    the shop's chats, with no reference reply)."""
    edited_text: str | None = None


@dataclass
class GateResult:
    version: str
    promoted: bool
    candidate_final: float
    active_final: float | None
    reason: str
    items: list[dict[str, Any]] = field(default_factory=list)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for item in files:
        digest.update(item.read_bytes())
    return digest.hexdigest()


def served_path(row: AdapterVersion) -> Path:
    """What the engine loads: the GGUF file for LoRA (llama.cpp), the peft dir otherwise."""
    base = Path(row.path)
    return base / "adapter.gguf" if row.method == "lora" else base / "adapter"


class AdapterDamaged(XiaoerError):
    """The active adapter's files are not the ones recorded at export: the base model serves."""


def verified_served_path(row: AdapterVersion) -> Path:
    """``served_path(row)``, after checking its files against the hash recorded at export.

    Raises AdapterDamaged (its message is for the user) when they are missing, changed or have no
    recorded hash: a version's files are immutable, so a change means damage or tampering.
    """
    target = served_path(row)
    expected = (row.metrics or {}).get("sha256")
    if not expected:
        problem = "has no recorded hash to check its files against"
    elif not target.exists():
        problem = f"is missing its file {target}"
    elif sha256_of(target) != expected:
        problem = f"has a file that changed since it was exported ({target})"
    else:
        return target
    raise AdapterDamaged(
        f"Adapter {row.version} {problem}; serving the base model instead. "
        "Roll back or promote another version in the Evolution panel."
    )


class Evolution:
    """The evolution loop over one store; no Qt, callable from the CLI, the UI and tests."""

    def __init__(
        self,
        store: Store,
        settings: EvolutionSettings | None = None,
        teacher: Any | None = None,
        scorer: Any | None = None,
        base_model: str = models.DEFAULT_PROFILE,
    ) -> None:
        self.store = store
        self.settings = settings or EvolutionSettings()
        self.teacher = teacher
        self._scorer = scorer
        self.base_model = base_model
        self._bank: ExampleBank | None = None

    def past_dialogues(self) -> ExampleBank | None:
        """The shop's past dialogues (``settings.examples``), read on first use; None if unset."""
        if self._bank is None and self.settings.examples:
            from app.cloud.label import example_bank

            self._bank = example_bank(Path(self.settings.examples))
        return self._bank

    def shown(self, examples: Sequence[Example], leave_out_same: bool) -> list[Example]:
        """``examples`` with the ``settings.shots`` past dialogues the engine shows when it drafts,
        so training prompts and gate drafts are what the app serves."""
        bank = self.past_dialogues() if self.settings.shots else None
        if bank is None:
            return list(examples)
        return with_shots(examples, bank, self.settings.shots, leave_out_same=leave_out_same)

    @property
    def scorer(self) -> Any:
        if self._scorer is None:
            from app.scoring.registry import load_scorer

            self._scorer = load_scorer(store=self.store)
        return self._scorer

    # --- 1. candidates -------------------------------------------------------------------------

    def candidates(self) -> list[Candidate]:
        from app.scoring.record import draft_context

        threshold = self.settings.low_score
        with self.store.session() as session:
            labeled = select(TeacherReply.draft_id).where(TeacherReply.draft_id.is_not(None))
            latest_score = (
                select(Score.draft_id, func.max(Score.id).label("score_id"))
                .group_by(Score.draft_id)
                .subquery()
            )
            low = set(
                session.scalars(
                    select(Score.draft_id)
                    .join(latest_score, Score.id == latest_score.c.score_id)
                    .where(Score.final < threshold)
                    .where(Score.draft_id.not_in(labeled))
                )
            )
            # A high score from a matcher not trained on the shop's chats, with no reference to
            # compare with, is uncalibrated (it rated an invented promise 0.99): never good
            # enough to skip the teacher.
            uncalibrated = set(
                session.scalars(
                    select(Score.draft_id)
                    .join(latest_score, Score.id == latest_score.c.score_id)
                    .where(Score.final >= threshold)
                    .where(Score.mode == "match_only")
                    .where(
                        Score.matching_scorer_version.is_(None)
                        | Score.matching_scorer_version.not_like(f"{CALIBRATED_MATCHING}%")
                    )
                    .where(Score.draft_id.not_in(labeled))
                )
            )
            ratings = session.scalars(
                select(Rating)
                .where(Rating.draft_id.not_in(labeled))
                .where((Rating.thumbs_up.is_(False)) | (Rating.edited.is_(True)))
                .order_by(Rating.id)
            ).all()
            rated = {r.draft_id: r for r in ratings}  # the latest rating of a draft wins
        found = []
        for draft_id in sorted(low | uncalibrated | set(rated)):
            rating = rated.get(draft_id)
            edited = rating.sent_text if rating is not None and rating.edited else None
            reason = (
                "edited"
                if edited
                else "thumbs_down"
                if rating is not None
                else "low_score"
                if draft_id in low
                else "uncalibrated"
            )
            context, text = draft_context(self.store, draft_id)
            found.append(Candidate(draft_id, tuple(context), text, reason, edited))
        return found

    # --- 2. labels ------------------------------------------------------------------------------

    def fetch_labels(
        self, candidates: Sequence[Candidate] | None = None, progress: Progress | None = None
    ) -> dict[str, int]:
        """Label candidates: the agent's edit, else the teacher's reply. Never loses a candidate:
        one the teacher could not answer stays a candidate (and in the teacher's outbox)."""
        from app.errors import XiaoerError

        todo = self.candidates() if candidates is None else list(candidates)
        counts = {"agent_edit": 0, "teacher": 0, "failed": 0}
        for cand in todo:
            try:
                if cand.edited_text:
                    self._add_label(cand, cand.edited_text, "agent_edit")
                    counts["agent_edit"] += 1
                    continue
                if self.teacher is None:
                    counts["failed"] += 1
                    continue
                result = self.teacher.ask(as_turns(cand.context), draft_id=cand.draft_id)
                if not self._has_label(cand.draft_id):  # a cached answer was not linked yet
                    self._add_label(cand, result.answer.text, "teacher", result)
                counts["teacher"] += 1
            except (XiaoerError, ValueError) as exc:
                counts["failed"] += 1
                if progress:
                    progress({"event": "warning", "message": f"draft {cand.draft_id}: {exc}"})
        return counts

    def _has_label(self, draft_id: int) -> bool:
        with self.store.session() as session:
            found = session.scalar(
                select(TeacherReply.id).where(TeacherReply.draft_id == draft_id).limit(1)
            )
            return found is not None

    def _add_label(
        self, cand: Candidate, text: str, source: str, result: Any | None = None
    ) -> None:
        teacher = getattr(self.teacher, "teacher", None)
        with self.store.session() as session:
            session.add(
                TeacherReply(
                    draft_id=cand.draft_id,
                    provider=getattr(teacher, "provider", None) if result else "agent",
                    model=getattr(teacher, "model", None) if result else None,
                    query_text=cand.context[-1] if cand.context else "",
                    reply_text=text,
                    # A teacher's label is the reply as the agent was shown it (TeacherResult);
                    # None, with the reason, when it holds another conversation's placeholder.
                    label_text=result.label if result is not None else text,
                    unusable_reason=getattr(result, "unusable", None),
                    prompt_hash=getattr(result, "prompt_hash", None),
                    label_source=source,
                )
            )

    def labels(self) -> list[tuple[int, datetime, Example]]:
        """Every label linked to a draft, oldest first: (label id, when, example)."""
        from app.scoring.record import draft_context

        with self.store.session() as session:
            rows = session.execute(
                select(
                    TeacherReply.id,
                    TeacherReply.created_at,
                    TeacherReply.draft_id,
                    TeacherReply.label_text,
                    TeacherReply.label_source,
                )
                .where(TeacherReply.draft_id.is_not(None))
                # Kept but flagged (a placeholder from another conversation): never learned.
                .where(TeacherReply.label_text.is_not(None))
                .order_by(TeacherReply.id)
            ).all()
        out = []
        for label_id, created, draft_id, text, source in rows:
            assert draft_id is not None and text is not None  # filtered in the query
            context, _ = draft_context(self.store, draft_id)
            out.append((label_id, created, Example(tuple(context), text, source)))
        return out

    def due(self) -> bool:
        """Whether the automatic policy (every K new labels) asks for a round now."""
        every = self.settings.auto_every
        return bool(every) and len(self._new_labels()) >= int(every or 0)

    def _new_labels(
        self, labels: list[tuple[int, datetime, Example]] | None = None
    ) -> list[tuple[int, datetime, Example]]:
        """Labels made since the newest adapter version."""
        with self.store.session() as session:
            latest = session.scalar(select(func.max(AdapterVersion.created_at)))
        labels = self.labels() if labels is None else labels
        return [lab for lab in labels if latest is None or lab[1] > latest]

    # --- 3. training -----------------------------------------------------------------------------

    def training_set(
        self, labels: list[tuple[int, datetime, Example]] | None = None
    ) -> tuple[list[Example], list[Example]]:
        """(training examples, held-back gate examples) for the next round (``labels``: the
        store's, when the caller has just read them)."""
        labels = self.labels() if labels is None else labels
        rng = random.Random(len(labels))  # the same store state gives the same sample
        hold = labels[-self.settings.holdback :] if self.settings.holdback else []
        held_ids = {lab[0] for lab in hold}
        new_ids = {lab[0] for lab in self._new_labels(labels)} - held_ids
        new = [lab[2] for lab in labels if lab[0] in new_ids and self._learnable(lab[2])]
        earlier = [
            lab[2] for lab in labels if lab[0] not in new_ids | held_ids and self._learnable(lab[2])
        ]
        replay = rng.sample(earlier, min(len(earlier), self.settings.replay))
        if self.settings.corpus:
            # The shop's own replies, cleaned as `xiaoer train` cleans a corpus (no curt ones, no
            # stock phrase over and over): mixed with teacher labels, they raised the similarity
            # to the human agents on held-out JDDC (README "Online evolution").
            pairs = clean_examples(
                read_examples(Path(self.settings.corpus)), min_chars=self.settings.min_label_chars
            )
            replay += rng.sample(pairs, min(len(pairs), self.settings.replay))
        if self.settings.objective == "kto":
            replay += self.preference_examples()
        return new + replay, [lab[2] for lab in hold]

    def _learnable(self, label: Example) -> bool:
        """A teacher's curt reply ("好的") is not learned: a few teach the model to answer
        everything that way; nor one that only repeats the customer. The agent's own text is
        always learned."""
        if label.source != "teacher":
            return True
        return len(label.reply) >= self.settings.min_label_chars and not (
            label.context and repeats_customer(label.context[-1], label.reply)
        )

    def preference_examples(self) -> list[Example]:
        """Drafts rated 👍 or 👎 and sent unedited (or not sent): KTO's desirable/undesirable."""
        from app.scoring.record import draft_context

        with self.store.session() as session:
            rows = session.execute(
                select(Rating.draft_id, Rating.thumbs_up)
                .where(Rating.thumbs_up.is_not(None))
                .where(Rating.edited.is_(False))
                .order_by(Rating.id)
            ).all()
        latest = {draft_id: up for draft_id, up in rows}
        out = []
        for draft_id, up in latest.items():
            context, text = draft_context(self.store, draft_id)
            if text.strip():
                source = "thumbs_up" if up else "thumbs_down"
                out.append(Example(tuple(context), text, source, bool(up)))
        return out

    def train(
        self,
        examples: Sequence[Example] | None = None,
        progress: Progress | None = None,
        cancel: threading.Event | None = None,
    ) -> str:
        """Train a candidate adapter version; returns its name. Raises RuntimeError on failure."""
        if examples is None:
            examples, _ = self.training_set()
        if not examples:
            raise ValueError("Nothing to learn yet: no new labels (rate or edit some drafts first)")
        method = self.settings.method
        run_dir = new_run_dir(f"{method}-{datetime.now():%Y%m%d-%H%M%S}", self._version_taken)
        version = run_dir.name
        write_examples(self.shown(examples, leave_out_same=True), run_dir / "data.jsonl")
        with self.store.session() as session:
            active = self.store.active_adapter(session)
            parent = active.version if active is not None else None
            init = (
                str(Path(active.path) / "adapter") if active and active.method == method else None
            )
        config = TrainConfig.from_preset(
            self.settings.preset,
            method,
            data=str(run_dir / "data.jsonl"),
            output_dir=str(run_dir),
            base_model=self.base_model,
            init_adapter=init,
            steps=self.settings.steps,
            objective=self.settings.objective,
            max_input=SHOTS_MAX_INPUT if self.settings.shots else None,
        )
        config.save(run_dir / "run.json")
        with self.store.session() as session:
            run = TrainingRun(
                config=asdict(config),
                status="running",
                started_at=_now(),
                log_path=str(run_dir / "train.jsonl"),
            )
            session.add(run)
            session.flush()
            run_id = run.id
        status, result = run_training(run_dir / "run.json", progress, cancel)
        with self.store.session() as session:
            finished = session.get(TrainingRun, run_id)
            assert finished is not None
            finished.status = status
            finished.finished_at = _now()
            finished.metrics = result
            if status == "succeeded":
                parent_row = self.store.get_adapter(session, parent) if parent else None
                row = AdapterVersion(
                    version=version,
                    method=method,
                    base_model=self.base_model,
                    parent_id=parent_row.id if parent_row else None,
                    path=str(run_dir),
                    metrics={"train": result},
                    status="candidate",
                )
                session.add(row)
                session.flush()
                finished.adapter_version_id = row.id
        if status != "succeeded":
            raise RuntimeError(f"training {status}: {result.get('message', 'see ' + str(run_dir))}")
        return version

    def _version_taken(self, version: str) -> bool:
        with self.store.session() as session:
            return self.store.get_adapter(session, version) is not None

    def export(self, version: str) -> Path:
        """Make the candidate servable: GGUF for LoRA; record the hash promotion checks."""
        from app.evolve.export import export_lora_gguf

        with self.store.session() as session:
            row = self._row(session, version)
            run_dir, method = Path(row.path), row.method
            if row.status != "candidate":  # it may be served: its files are never rewritten
                raise ValueError(f"adapter {version} is {row.status}; only candidates are exported")
        if method == "lora":
            base = models.resolve(self.base_model).path
            export_lora_gguf(run_dir / "adapter", base, run_dir / "adapter.gguf")
        with self.store.session() as session:
            row = self._row(session, version)
            row.metrics = {**row.metrics, "sha256": sha256_of(served_path(row))}
            return served_path(row)

    # --- 4. gate ---------------------------------------------------------------------------------

    def gate(
        self,
        version: str,
        held_back: Sequence[Example] = (),
        progress: Progress | None = None,
    ) -> GateResult:
        from app.scoring.scorers import ScoreItem

        items = [Example((p,), "", "probe") for p in self.settings.probes] + list(held_back)
        references = [ex.reply or self._teacher_reference(ex) for ex in items]
        items = self.shown(items, leave_out_same=False)
        with self.store.session() as session:
            candidate = self._row(session, version)
            active = self.store.active_adapter(session)
            session.expunge_all()
        cand_replies = draft_replies(Served.of(candidate), items, self.base_model)
        base_replies = draft_replies(Served.of(active), items, self.base_model)

        def scores(replies: list[str]) -> list[Any]:
            batch = [
                ScoreItem(list(ex.context), reply, ref)
                for ex, reply, ref in zip(items, replies, references, strict=True)
            ]
            return list(self.scorer.score_many(batch))

        cand, base = scores(cand_replies), scores(base_replies)
        rows = [
            {
                "context": ex.context[-1],
                "kind": ex.source,
                "candidate": c.final,
                "active": b.final,
                "candidate_reply": cr,
                "active_reply": br,
            }
            for ex, c, b, cr, br in zip(items, cand, base, cand_replies, base_replies, strict=True)
        ]
        cand_mean = sum(c.final for c in cand) / len(cand)
        base_mean = sum(b.final for b in base) / len(base)
        worst = min(r["candidate"] - r["active"] for r in rows if r["kind"] == "probe")
        better = cand_mean >= base_mean + self.settings.margin
        no_regression = worst >= -self.settings.tolerance
        passed = better and no_regression
        if not better:
            reason = (
                f"mean Final {cand_mean:.3f} is not above {base_mean:.3f} + {self.settings.margin}"
            )
        elif not no_regression:
            reason = f"a probe dropped by {-worst:.3f} (> tolerance {self.settings.tolerance})"
        else:
            reason = f"mean Final {cand_mean:.3f} ≥ {base_mean:.3f} + {self.settings.margin}"
        result = GateResult(version, passed, round(cand_mean, 4), round(base_mean, 4), reason, rows)
        with self.store.session() as session:
            row = self._row(session, version)
            gate = {k: v for k, v in asdict(result).items() if k != "version"}
            gate["against"] = active.version if active is not None else None
            row.metrics = {**row.metrics, "gate": gate}
            if not passed:
                row.status = "rejected"
        return result

    def _teacher_reference(self, example: Example) -> str | None:
        if self.teacher is None:
            return None
        from app.errors import XiaoerError

        try:
            return str(self.teacher.ask(as_turns(example.context)).reply)
        except XiaoerError:
            return None  # scored match-only, like a draft scored offline

    # --- 5. promotion and rollback -----------------------------------------------------------

    def promote(self, version: str) -> None:
        """Make ``version`` active in one transaction, after checking its files are intact."""
        with self.store.session() as session:
            row = self._row(session, version)
            expected = row.metrics.get("sha256")
            target = served_path(row)
            if not target.exists() or (expected and sha256_of(target) != expected):
                raise RuntimeError(
                    f"adapter {version}: {target} is missing or damaged; not promoted"
                )
            self.store.set_active_adapter(session, version)

    def rollback(self, version: str | None = None) -> str | None:
        """Restore ``version`` (``"base"`` = no adapter); by default the one before the active."""
        with self.store.session() as session:
            if version in ("base", "none"):
                self.store.set_active_adapter(session, None)
                return None
            if version is None:
                active = self.store.active_adapter(session)
                if active is None:
                    raise ValueError("No adapter is active: there is nothing to roll back")
                previous = session.scalar(
                    select(AdapterVersion)
                    .where(AdapterVersion.status == "retired")
                    .where(AdapterVersion.promoted_at.is_not(None))
                    .where(AdapterVersion.id != active.id)
                    .order_by(AdapterVersion.promoted_at.desc())
                    .limit(1)
                )
                version = previous.version if previous is not None else None
        if version is None:
            with self.store.session() as session:
                self.store.set_active_adapter(session, None)
            return None
        self.promote(version)
        return version

    def adapters(self) -> list[dict[str, Any]]:
        with self.store.session() as session:
            rows = session.scalars(select(AdapterVersion).order_by(AdapterVersion.id)).all()
            return [
                {
                    "version": r.version,
                    "method": r.method,
                    "status": r.status,
                    "parent": r.parent.version if r.parent else None,
                    "created_at": r.created_at.isoformat(),
                    "promoted_at": r.promoted_at.isoformat() if r.promoted_at else None,
                    "gate": r.metrics.get("gate", {}).get("reason"),
                    "candidate_final": r.metrics.get("gate", {}).get("candidate_final"),
                    "path": r.path,
                }
                for r in rows
            ]

    def _row(self, session: Any, version: str) -> AdapterVersion:
        row = self.store.get_adapter(session, version)
        if row is None:
            raise LookupError(f"No adapter version {version!r}")
        return row

    # --- the whole round ---------------------------------------------------------------------

    def run_round(
        self, progress: Progress | None = None, cancel: threading.Event | None = None
    ) -> dict[str, Any]:
        """Candidates → labels → train → export → gate → promote, reporting each stage."""
        emit = progress or (lambda event: None)
        timings: dict[str, float] = {}

        def stage(name: str) -> None:
            emit({"event": "stage", "stage": name})
            timings[name] = time.monotonic()

        stage("candidates")
        found = self.candidates()
        emit({"event": "candidates", "count": len(found)})
        stage("fetch_labels")
        emit({"event": "labels", **self.fetch_labels(found, progress)})
        labels = self.labels()
        curt = sum(not self._learnable(lab[2]) for lab in self._new_labels(labels))
        if curt:
            message = (
                f"{curt} teacher label(s) shorter than {self.settings.min_label_chars} "
                "characters or only repeating the customer kept but not learned"
            )
            emit({"event": "warning", "message": message})
        examples, held = self.training_set(labels)
        if not examples:
            reason = "no new labels to learn from" + (
                " (all too short or repeating the customer)" if curt else ""
            )
            emit({"event": "done", "version": None, "promoted": False, "reason": reason})
            return {"version": None, "promoted": False}
        stage("train")
        version = self.train(examples, progress, cancel)
        stage("export")
        self.export(version)
        stage("gate")
        result = self.gate(version, held, progress)
        emit(
            {
                "event": "gate",
                "version": version,
                "promoted": result.promoted,
                "candidate_final": result.candidate_final,
                "active_final": result.active_final,
                "reason": result.reason,
            }
        )
        if result.promoted:
            stage("promote")
            self.promote(version)
        done = {"version": version, "promoted": result.promoted, "reason": result.reason}
        emit({"event": "done", **done})
        return done


def _now() -> datetime:
    from app.store.models import utcnow

    return utcnow()


STDERR_TAIL_LINES = 50
"""The trainer's last stderr lines kept for the error and the log (a traceback, the OOM note)."""
KILLED_EXIT_CODES = (-9, 128 + 9)
"""SIGKILL as Popen reports it, and as a shell does: what the kernel's out-of-memory killer sends."""


def run_training(
    config_path: Path, progress: Progress | None = None, cancel: threading.Event | None = None
) -> tuple[RunStatus, dict[str, Any]]:
    """Run ``python -m app.evolve.train`` as a child process, forwarding its JSON lines.

    Returns (succeeded | failed | cancelled, the final event). Setting ``cancel`` sends SIGTERM;
    the child checkpoints and exits, and the same config resumes later. A failure's event carries
    the child's last stderr lines (``stderr``; the last few in ``message`` too) and is logged and
    appended to the run's ``train.jsonl``; a SIGKILL is reported as the out-of-memory kill it
    nearly always is.
    """
    child = subprocess.Popen(
        [sys.executable, "-m", "app.evolve.train", "--config", str(config_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        errors="replace",
    )
    tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
    assert child.stderr is not None
    stderr = child.stderr  # drained on its own thread, so a chatty child never blocks on it
    reader = threading.Thread(
        target=lambda: tail.extend(line.rstrip() for line in stderr if line.strip()),
        name="xiaoer-train-stderr",
        daemon=True,
    )
    reader.start()
    watcher = None
    if cancel is not None:

        def watch() -> None:
            while child.poll() is None:
                if cancel.wait(0.2):
                    child.terminate()
                    return

        watcher = threading.Thread(target=watch, name="xiaoer-train-cancel", daemon=True)
        watcher.start()
    last: dict[str, Any] = {}
    assert child.stdout is not None
    for line in child.stdout:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        last = event
        if progress:
            progress(event)
    code = child.wait()
    reader.join(timeout=5)
    if code == 0 and last.get("event") == "done":
        return "succeeded", last
    if last.get("event") == "cancelled" or (cancel is not None and cancel.is_set()):
        return "cancelled", last
    failure = _training_failure(code, last, list(tail))
    _log_failure(config_path, failure)
    return "failed", failure


def _training_failure(code: int, last: dict[str, Any], stderr: list[str]) -> dict[str, Any]:
    if code in KILLED_EXIT_CODES:
        message = (
            f"the training process was killed, most likely out of memory (exit code {code}): "
            "close other programs, or train with a smaller batch or shorter inputs"
        )
    elif last.get("event") == "error":
        message = str(last.get("message", ""))
    else:
        message = f"the training process exited with code {code}"
    if stderr:
        message += " — its last output: " + " | ".join(stderr[-5:])
    return {"event": "error", "message": message, "exit_code": code, "stderr": stderr}


def _log_failure(config_path: Path, failure: dict[str, Any]) -> None:
    """Into the app's log and the run's own ``train.jsonl`` (when the config names the run)."""
    log.warning("training failed: %s", failure["message"])
    for line in failure["stderr"]:
        log.warning("trainer stderr: %s", line)
    try:
        run_log = Path(TrainConfig.load(config_path).output_dir) / "train.jsonl"
        with run_log.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(failure, ensure_ascii=False) + "\n")
    except (OSError, ValueError, TypeError):
        pass  # no readable config, no run folder: the app's log has it


@dataclass(frozen=True)
class Served:
    """An adapter as the engine serves it: LoRA as GGUF on llama.cpp, the others as peft dirs."""

    name: str
    method: str
    path: Path

    @classmethod
    def of(cls, row: AdapterVersion | None) -> Served | None:
        return None if row is None else cls(row.version, row.method, served_path(row))


def draft_replies(
    adapter: Served | None,
    items: Sequence[Example],
    base_model: str,
    generation: GenerationConfig = GATE_GENERATION,
) -> list[str]:
    """Greedy replies for ``items`` (shown their ``shots``) from the base model with ``adapter``
    (None: no adapter)."""
    from app.engine.end_model import EndModel, EngineConfig
    from app.evolve.base import trainable_dir

    if adapter is None or adapter.method == "lora":
        model = EndModel.load(EngineConfig(model=base_model), generation)
    else:
        config = EngineConfig(model=str(trainable_dir(base_model)), backend="transformers")
        model = EndModel.load(config, generation)
    try:
        if adapter is not None:
            model.load_adapter(adapter.name, adapter.path)
            model.set_adapter(adapter.name)
        return [model.reply(as_turns(ex.context), shots=ex.shots) for ex in items]
    finally:
        model.close()


def apply_active_adapter(model: Any, store: Store) -> str | None:
    """Hot swap: make a running EndModel use the store's active adapter (or none).

    An adapter not loaded yet has its files checked against their recorded hash first; a mismatch
    leaves the model on the base and raises AdapterDamaged (the UI shows it in its banner).
    """
    with store.session() as session:
        active = store.active_adapter(session)
        version = active.version if active is not None else None
        method = active.method if active is not None else None
        loaded = version is not None and version in model.backend.adapters
        try:
            path = verified_served_path(active) if active is not None and not loaded else None
        except AdapterDamaged:
            model.set_adapter(None)
            raise
    if version is None:
        model.set_adapter(None)
        return None
    backend = getattr(model.backend, "name", "")
    if (method == "lora") != (backend == "llamacpp"):
        raise RuntimeError(
            f"adapter {version} ({method}) needs the "
            f"{'llamacpp' if method == 'lora' else 'transformers'} backend"
        )
    if not loaded:
        assert path is not None
        model.load_adapter(version, path)
    model.set_adapter(version)
    return version
