"""Which adapter version serves: promotion, rollback, the versions' list, and their files' hashes.

A version's files are written and hashed at export, before anything can promote it; promotion and
rollback are one database transaction each, so a kill at any moment leaves the old or the new
adapter active, and the files the engine loads are checked against the recorded hash first.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from app.errors import XiaoerError
from app.store import AdapterVersion, Store


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


def adapter_row(store: Store, session: Any, version: str) -> AdapterVersion:
    """The version's row; LookupError when there is none."""
    row = store.get_adapter(session, version)
    if row is None:
        raise LookupError(f"No adapter version {version!r}")
    return row


def promote(store: Store, version: str) -> None:
    """Make ``version`` active in one transaction, after checking its files are intact."""
    with store.session() as session:
        row = adapter_row(store, session, version)
        expected = row.metrics.get("sha256")
        target = served_path(row)
        if not target.exists() or (expected and sha256_of(target) != expected):
            raise RuntimeError(f"adapter {version}: {target} is missing or damaged; not promoted")
        store.set_active_adapter(session, version)


def rollback(store: Store, version: str | None = None) -> str | None:
    """Restore ``version`` (``"base"`` = no adapter); by default the one before the active."""
    with store.session() as session:
        if version in ("base", "none"):
            store.set_active_adapter(session, None)
            return None
        if version is None:
            active = store.active_adapter(session)
            if active is None:
                raise ValueError("No adapter is active: there is nothing to roll back")
            previous = store.previous_promoted_adapter(session, active.id)
            version = previous.version if previous is not None else None
    if version is None:
        with store.session() as session:
            store.set_active_adapter(session, None)
        return None
    promote(store, version)
    return version


def list_adapters(store: Store) -> list[dict[str, Any]]:
    """Every adapter version, oldest first, as ``xiaoer adapters list`` prints it."""
    with store.session() as session:
        rows = store.adapter_versions(session)
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


def apply_active_adapter(model: Any, store: Store) -> str | None:
    """Hot swap: make a running EndModel use the store's active adapter (or none).

    An adapter not loaded yet has its files checked against their recorded hash first; a mismatch
    leaves the model on the base and raises AdapterDamaged (the UI shows it in its banner). A
    served model (``app.engine.remote``) is only told the version's name: its server holds the
    adapters, and each request names one.
    """
    if getattr(model.backend, "name", "") == "remote":
        with store.session() as session:
            row = store.active_adapter(session)
            served = row.version if row is not None else None
        model.set_adapter(served)
        return served
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
