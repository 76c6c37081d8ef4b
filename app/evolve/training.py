"""Stage 3 of a round: a candidate adapter version, trained from the active one and exported.

``train_candidate()`` writes the examples into a new run folder, records the run, trains in the
child process (``trainer_process.run_training``) and registers the new version as a candidate;
``export_candidate()`` makes it servable (GGUF for LoRA) and records the hash that promotion checks.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from app.engine import weights
from app.evolve.config import CONTINUE_LR_FACTOR, SHOTS_MAX_INPUT, TrainConfig
from app.evolve.data import TrainingExample, write_examples
from app.evolve.promotion import adapter_row, served_path, sha256_of
from app.evolve.settings import EvolutionSettings
from app.evolve.trainer_process import Progress, run_training
from app.evolve.versions import new_run_dir
from app.store import Store


def train_candidate(
    store: Store,
    settings: EvolutionSettings,
    examples: Sequence[TrainingExample],
    base_model: str,
    show: Callable[[Sequence[TrainingExample]], list[TrainingExample]] = list,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> str:
    """Train a candidate version on ``examples`` (``show`` adds the past dialogues the engine
    shows); returns its name. Raises RuntimeError when training fails or is cancelled."""
    if not examples:
        raise ValueError("Nothing to learn yet: no new labels (rate or edit some drafts first)")
    method = settings.method

    def taken(version: str) -> bool:
        with store.session() as session:
            return store.get_adapter(session, version) is not None

    run_dir = new_run_dir(f"{method}-{datetime.now():%Y%m%d-%H%M%S}", taken)
    write_examples(show(examples), run_dir / "data.jsonl")
    with store.session() as session:
        active = store.active_adapter(session)
        # A round continues from the active version: what earlier rounds and the warm start
        # learned is built on, not trained again from the base model.
        init = str(Path(active.path) / "adapter") if active and active.method == method else None
    config = TrainConfig.from_preset(
        settings.preset,
        method,
        data=str(run_dir / "data.jsonl"),
        output_dir=str(run_dir),
        base_model=base_model,
        init_adapter=init,
        steps=settings.steps,
        objective=settings.objective,
        max_input=SHOTS_MAX_INPUT if settings.shots else None,
    )
    if init is not None:
        config = replace(config, lr=config.lr * CONTINUE_LR_FACTOR)
    config.save(run_dir / "run.json")
    version, _ = train_run(store, run_dir, config, progress, cancel)
    return version


def train_run(
    store: Store,
    run_dir: Path,
    config: TrainConfig,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> tuple[str, dict[str, Any]]:
    """Train ``config`` (saved as ``run_dir/run.json``) in the child process, record the run and
    register the result as a candidate version named after ``run_dir``, its parent the active
    version; returns (the version, the trainer's final event). RuntimeError when training fails
    or is cancelled (a cancelled run resumes when the same config runs again)."""
    version = run_dir.name
    with store.session() as session:
        active = store.active_adapter(session)
        parent = active.version if active is not None else None
    with store.session() as session:
        run_id = store.start_training_run(session, asdict(config), str(run_dir / "train.jsonl"))
    status, result = run_training(run_dir / "run.json", progress, cancel)
    with store.session() as session:
        finished = store.finish_training_run(session, run_id, status, result)
        if status == "succeeded":
            parent_row = store.get_adapter(session, parent) if parent else None
            row = store.add_adapter_version(
                session,
                version=version,
                method=config.method,
                base_model=config.base_model,
                parent_id=parent_row.id if parent_row else None,
                path=str(run_dir),
                metrics={"train": result},
                status="candidate",
            )
            finished.adapter_version_id = row.id
    if status != "succeeded":
        raise RuntimeError(f"training {status}: {result.get('message', 'see ' + str(run_dir))}")
    return version, result


def export_candidate(store: Store, version: str, base_model: str) -> Path:
    """Make the candidate servable: GGUF for LoRA; record the hash promotion checks."""
    from app.evolve.export import export_lora_gguf

    with store.session() as session:
        row = adapter_row(store, session, version)
        run_dir, method = Path(row.path), row.method
        if row.status != "candidate":  # it may be served: its files are never rewritten
            raise ValueError(f"adapter {version} is {row.status}; only candidates are exported")
    if method == "lora":
        base = weights.resolve(base_model).path
        export_lora_gguf(run_dir / "adapter", base, run_dir / "adapter.gguf")
    with store.session() as session:
        row = adapter_row(store, session, version)
        row.metrics = {**row.metrics, "sha256": sha256_of(served_path(row))}
        return served_path(row)
