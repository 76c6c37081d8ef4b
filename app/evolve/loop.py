"""Online evolution (paper, Section III): weak drafts → labels → a new adapter → gate → promotion.

>>> evo = Evolution(store, teacher=service)
>>> evo.run_round(progress=print)      # what "Evolve now" does

``Evolution`` drives a round over one store; each stage lives in its own module:

1. candidates and 2. labels (``labels.py``): drafts with a thumbs-down, an edit, or a low Final
   Score get the agent's edit or the teacher's reply as their label.
3. training (``training.py``, the child process in ``trainer_process.py``): a new adapter version
   from the active one, on the new labels plus a replay sample of earlier labels and corpus pairs.
4. the gate (``gate.py``): candidate vs active on the probes and held-back recent labels; promoted
   only if the mean Final Score is higher by a margin and no probe regresses past a tolerance.
5. promotion and rollback (``promotion.py``): one database transaction; the adapter files are
   written and hashed before, so a kill at any moment leaves the old or the new adapter active.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.engine import weights
from app.errors import XiaoerError
from app.evolve import labels as labelling
from app.evolve import promotion
from app.evolve.data import TrainingExample, as_turns, read_examples, with_shots
from app.evolve.gate import GateResult, run_gate
from app.evolve.labels import Candidate, Label
from app.evolve.settings import EvolutionSettings
from app.evolve.trainer_process import Progress
from app.evolve.training import export_candidate, train_candidate
from app.store import Store

if TYPE_CHECKING:
    from app.cloud.prompt import ExampleBank


class Evolution:
    """The evolution loop over one store; no Qt, callable from the CLI, the UI and tests."""

    def __init__(
        self,
        store: Store,
        settings: EvolutionSettings | None = None,
        teacher: Any | None = None,
        scorer: Any | None = None,
        base_model: str = weights.DEFAULT_PROFILE,
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

    def shown(
        self, examples: Sequence[TrainingExample], leave_out_same: bool
    ) -> list[TrainingExample]:
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

    # --- 1–2. candidates and labels ----------------------------------------------------------

    def candidates(self) -> list[Candidate]:
        return labelling.find_candidates(self.store, self.settings.low_score)

    def fetch_labels(
        self, candidates: Sequence[Candidate] | None = None, progress: Progress | None = None
    ) -> dict[str, int]:
        """Label candidates (by default all of them): see ``labels.fetch_labels``."""
        todo = self.candidates() if candidates is None else list(candidates)
        return labelling.fetch_labels(self.store, self.teacher, todo, progress)

    def labels(self) -> list[Label]:
        """Every label linked to a draft, oldest first: (label id, when, example)."""
        return labelling.stored_labels(self.store)

    def due(self) -> bool:
        """Whether the automatic policy (every K new labels) asks for a round now."""
        every = self.settings.auto_every
        if not every:
            return False
        return len(labelling.new_labels(self.store, self.labels())) >= every

    def training_set(
        self, labels: list[Label] | None = None
    ) -> tuple[list[TrainingExample], list[TrainingExample]]:
        """(training examples, held-back gate examples) for the next round (``labels``: the
        store's, when the caller has just read them)."""
        labels = self.labels() if labels is None else labels
        return labelling.training_set(self.store, self.settings, labels)

    def preference_examples(self) -> list[TrainingExample]:
        return labelling.preference_examples(self.store)

    # --- 3. training ---------------------------------------------------------------------------

    def train(
        self,
        examples: Sequence[TrainingExample] | None = None,
        progress: Progress | None = None,
        cancel: threading.Event | None = None,
    ) -> str:
        """Train a candidate adapter version; returns its name. Raises RuntimeError on failure."""
        if examples is None:
            examples, _ = self.training_set()

        def show(items: Sequence[TrainingExample]) -> list[TrainingExample]:
            return self.shown(items, leave_out_same=True)

        return train_candidate(
            self.store, self.settings, examples, self.base_model, show, progress, cancel
        )

    def export(self, version: str) -> Path:
        return export_candidate(self.store, version, self.base_model)

    # --- 4. gate ---------------------------------------------------------------------------------

    def gate(
        self,
        version: str,
        held_back: Sequence[TrainingExample] = (),
        progress: Progress | None = None,
    ) -> GateResult:
        """Candidate ``version`` against the active one on the probes, ``held_back`` labels and
        the shop's held-back pairs (``settings.holdout``; a probe's reference is the teacher's
        reply, when there is a teacher)."""
        items = [TrainingExample((p,), "", "probe") for p in self.settings.probes] + list(held_back)
        items += self.holdout()
        references = [ex.reply or self._teacher_reference(ex) for ex in items]
        return run_gate(
            self.store,
            self.scorer,
            version,
            self.shown(items, leave_out_same=False),
            references,
            self.base_model,
            self.settings.margin,
            self.settings.tolerance,
        )

    def holdout(self) -> list[TrainingExample]:
        """The first ``settings.holdout_gate`` pairs of the shop's held-back set (none unset)."""
        if not self.settings.holdout or not self.settings.holdout_gate:
            return []
        pairs = read_examples(Path(self.settings.holdout))[: self.settings.holdout_gate]
        return [replace(ex, source="holdout") for ex in pairs]

    def _teacher_reference(self, example: TrainingExample) -> str | None:
        if self.teacher is None:
            return None
        try:
            return str(self.teacher.ask(as_turns(example.context)).reply)
        except XiaoerError:
            return None  # scored match-only, like a draft scored offline

    # --- 5. promotion and rollback -----------------------------------------------------------

    def promote(self, version: str) -> None:
        promotion.promote(self.store, version)

    def rollback(self, version: str | None = None) -> str | None:
        return promotion.rollback(self.store, version)

    def adapters(self) -> list[dict[str, Any]]:
        return promotion.list_adapters(self.store)

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
        min_chars = self.settings.min_label_chars
        curt = sum(
            not labelling.learnable(lab[2], min_chars)
            for lab in labelling.new_labels(self.store, labels)
        )
        if curt:
            message = (
                f"{curt} teacher label(s) shorter than {min_chars} "
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
