"""The UI's side of evolution (issue #5's contract), as plain Python.

- ``evolve_command()`` is the child process the window runs with QProcess (a pure function: tests
  and the bench read it without running anything);
- ``missing_training_stack()`` names what training needs and this installation lacks (the lite
  desktop bundle has no torch);
- ``parse_event()`` reads one of its JSON lines;
- ``adapter_history()`` reads the adapter versions from the store;
- ``apply_active_adapter()`` hands a running model to ``app.evolve.apply_active_adapter``;
- ``activate_adapter()`` promotes or rolls back through the store's own helper.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from app.engine.end_model import EndModel
from app.store import Store

EVENTS = {"stage", "step", "gate", "done", "error", "warning", "candidates", "labels", "plan"}
STAGES = ("candidates", "fetch_labels", "train", "export", "gate", "promote")


def team_mode() -> bool:
    """Whether this desktop belongs to a shop ($XIAOER_DATABASE_URL; docs/team.md)."""
    from app.store.db import shop_database_url

    return shop_database_url() is not None


def evolve_command(python: str | None = None) -> list[str]:
    """``python -m app evolve --now --jsonl``: one evolution round reporting JSON lines. In team
    mode the round is a job on the shop's worker: ``xiaoer team enqueue evolve --follow`` puts it
    in the queue (a manager's desktop only) and prints its events, the same JSON lines."""
    if team_mode():
        return [python or sys.executable, "-m", "app", "team", "enqueue", "evolve", "--follow"]
    return [python or sys.executable, "-m", "app", "evolve", "--now", "--jsonl"]


def onboard_command(
    corpus: str, fmt: str | None, budget_tokens: int, plan: bool = False
) -> list[str]:
    """``python -m app onboard --corpus … --budget-tokens N --jsonl``: the warm start the
    Evolution panel runs like a round (``plan``: only its plan, one ``plan`` event). The same
    corpus and budget resume a stopped run."""
    command = [sys.executable, "-m", "app", "onboard", "--corpus", corpus, "--jsonl"]
    command += ["--budget-tokens", str(budget_tokens)]
    if fmt:
        command += ["--format", fmt]
    return [*command, "--plan"] if plan else command


def history_sources(store: Store) -> list[tuple[str, str, str]]:
    """(name, path, format) of the imported past-dialogue files still on disk: what a warm start
    can learn from."""
    with store.session() as session:
        rows = store.knowledge_sources(session)
        found = [(r.name, r.path, r.format) for r in rows if r.kind == "dialogue" and r.path]
    return [(name, path, fmt) for name, path, fmt in found if Path(path).exists()]


def _choice_file() -> Path:
    from app.evolve.onboard import onboarding_dir

    return onboarding_dir() / "last-choice.json"


def last_warm_start() -> dict[str, Any] | None:
    """The corpus, format and budget of the last warm start started from the panel (to resume it
    after a restart), or None."""
    try:
        choice = json.loads(_choice_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(choice, dict) or not isinstance(choice.get("corpus"), str):
        return None
    return choice


def remember_warm_start(corpus: str, fmt: str | None, budget_tokens: int) -> None:
    from app.fsio import atomic_write_text

    choice = {"corpus": corpus, "format": fmt, "budget_tokens": budget_tokens}
    atomic_write_text(_choice_file(), json.dumps(choice, ensure_ascii=False))


TRAINING_STACK = ("torch", "transformers", "peft")
"""What the training child (``app.evolve.train``) imports; the lite desktop bundle leaves it out."""


def missing_training_stack() -> list[str]:
    """The training packages this installation lacks (none in a source install with ``[hf]``)."""
    return [name for name in TRAINING_STACK if importlib.util.find_spec(name) is None]


def parse_event(line: str | bytes) -> dict[str, Any] | None:
    """One JSON-lines event, or None for a line that is not one (library chatter on stdout)."""
    if isinstance(line, bytes):
        line = line.decode("utf-8", errors="replace")
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        event = json.loads(line)
    except ValueError:
        return None
    if not isinstance(event, dict) or event.get("event") not in EVENTS:
        return None
    return event


def format_eta(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds < 0:
        return "–"
    whole = round(float(seconds))
    if whole >= 3600:
        return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"
    return f"{whole // 60}:{whole % 60:02d}"


@dataclass(frozen=True)
class AdapterRow:
    version: str
    status: str
    method: str
    base_model: str
    path: str
    metrics: dict[str, Any]
    created_at: datetime
    promoted_at: datetime | None


def adapter_history(store: Store) -> list[AdapterRow]:
    """Every adapter version, newest first."""
    with store.session() as session:
        rows = store.adapter_versions(session, newest_first=True)
        return [
            AdapterRow(
                r.version,
                r.status,
                r.method,
                r.base_model,
                r.path,
                dict(r.metrics or {}),
                r.created_at,
                r.promoted_at,
            )
            for r in rows
        ]


def apply_active_adapter(model: EndModel, store: Store) -> str | None:
    """Load the store's active adapter into a running model (hot swap); None: the base model.

    Call it on the model worker. The evolution engine owns how an adapter version is served.
    """
    from app.evolve import apply_active_adapter as apply

    return apply(model, store)


def activate_adapter(store: Store, version: str | None) -> None:
    """Promote ``version`` (or roll back to it); None goes back to the base model.

    Goes through the evolution engine, like ``xiaoer adapters promote|rollback``: the adapter's
    files are checked against their recorded hash before the one-transaction switch.
    """
    from app.evolve import Evolution
    from app.store.db import shop_database_url

    shop_url = shop_database_url()
    if shop_url is not None:  # team mode: the shop's adapter, a manager's desktop only
        from app.store import open_store
        from app.team import adapters, roles

        with open_store(shop_url) as shop:
            secret = roles.saved_secret(shop)
            if version is None:
                adapters.rollback(shop, secret, "base")
            else:
                adapters.promote(shop, version, secret)
        return
    if version is None:
        Evolution(store).rollback("base")
    else:
        Evolution(store).promote(version)


def rollback_target(history: list[AdapterRow]) -> str | None:
    """The version a rollback returns to: the newest retired one promoted before the active one."""
    active = next((r for r in history if r.status == "active"), None)
    retired = [
        r
        for r in history
        if r.status == "retired"
        and r.promoted_at is not None
        and (active is None or active.promoted_at is None or r.promoted_at < active.promoted_at)
    ]
    retired.sort(key=lambda r: r.promoted_at or r.created_at, reverse=True)
    return retired[0].version if retired else None


def should_evolve(store: Store, policy: str, min_labels: int, now: datetime | None = None) -> bool:
    """Whether the automatic policy calls for a run now.

    New labels are the ones linked to a draft since the newest adapter version was made (as the
    evolution engine counts them). ``daily``: at least one new label and no version made in the
    last 24 hours; ``after_labels``: at least ``min_labels`` new labels; ``off``: never.
    """
    if policy == "off":
        return False
    now = now or datetime.now(UTC)
    with store.session() as session:
        latest = store.newest_adapter_time(session)
        new_labels = store.labels_since(session, latest)
    if policy == "daily":
        return new_labels > 0 and (latest is None or now - latest >= timedelta(days=1))
    if policy == "after_labels":
        return new_labels >= min_labels
    raise ValueError(f"Unknown evolution policy {policy!r}")


def sync_evolution_settings(
    low_score: float, policy: str, min_labels: int, past_dialogues: str = "", shots: int = 0
) -> None:
    """Carry the settings dialog's policy and past dialogues into the evolution section of the
    settings file, keeping everything else it holds: adapters are trained and gated on the prompts
    the app drafts with. (The threshold is that section's ``low_score`` already: stored once.)"""
    from app.evolve import EvolutionSettings

    current = EvolutionSettings.load()
    current.low_score = low_score
    current.auto_every = min_labels if policy == "after_labels" else None
    current.examples = str(Path(past_dialogues).expanduser().resolve()) if past_dialogues else None
    current.shots = shots if past_dialogues else 0
    current.save()
