"""Adapter versions shared by the whole shop: published into its database with their SHA-256,
fetched and checked by every desktop, made active or rolled back by a manager.

The served files (a LoRA's GGUF, a few MB for the 0.5B model; a peft folder as a zip) go into
``published_adapters`` as a ``bytea`` beside the version's row, so the shop needs nothing but its
PostgreSQL server and a desktop's fetch is one query (docs/team.md has the reasoning and the size
where an S3-compatible store would pay off). A fetched adapter is checked against the hash the
worker recorded at export before anything loads it; one that does not match is refused.

Making a version active and telling the desktops happen in one transaction: the row changes and
``NOTIFY xiaoer_adapters`` is delivered at commit (``watch.AdapterWatcher`` listens, and polls).
"""

from __future__ import annotations

import io
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from app.evolve.promotion import AdapterDamaged, served_path, sha256_of, verified_served_path
from app.store import AdapterVersion, Store
from app.store.models import PublishedAdapter
from app.team.roles import require_manager

CHANNEL = "xiaoer_adapters"
"""The PostgreSQL NOTIFY channel a change of the active adapter is announced on."""


def pack(target: Path) -> tuple[str, bytes]:
    """(packing, bytes) of a served file or folder."""
    if target.is_file():
        return "file", target.read_bytes()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for item in sorted(p for p in target.rglob("*") if p.is_file()):
            archive.write(item, item.relative_to(target).as_posix())
    return "zip", buffer.getvalue()


def unpack(packing: str, data: bytes, target: Path) -> None:
    """Write a published adapter's files at ``target`` (a file, or a folder for ``zip``)."""
    if packing == "file":
        target.write_bytes(data)
        return
    if packing != "zip":
        raise AdapterDamaged(f"unknown packing {packing!r}")
    target.mkdir(parents=True)
    root = target.resolve()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for member in archive.infolist():
            dest = (target / member.filename).resolve()
            if not dest.is_relative_to(root):  # a crafted archive may not write elsewhere
                raise AdapterDamaged(
                    f"published adapter names a file outside it: {member.filename}"
                )
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(archive.read(member))


def publish(shop: Store, version: str) -> str:
    """Copy ``version``'s served files (on this machine: the worker that trained it) into the
    shop's database; returns their SHA-256. Refuses files that changed since export."""
    with shop.session() as session:
        row = _version(shop, session, version)
        target = verified_served_path(row)
        sha = str(row.metrics["sha256"])
        if shop.published_adapter(session, row.id) is not None:
            return sha
        packing, data = pack(target)
        shop.add_published_adapter(session, row.id, sha, packing, data)
    return sha


def fetch(shop: Store, version: str, root: Path) -> tuple[AdapterVersion, Path]:
    """Download ``version`` into ``root/version`` (once) and check it; returns (the shop's row,
    the folder). AdapterDamaged when its files don't hash to what was recorded at export."""
    folder = root / version
    with shop.session() as session:
        row = _version(shop, session, version)
        blob = shop.published_adapter(session, row.id)
        if blob is None:
            raise AdapterDamaged(f"Adapter {version} was never published to the shop")
        expected = (row.metrics or {}).get("sha256")
        if not expected or blob.sha256 != expected:
            raise AdapterDamaged(
                f"Adapter {version}: the published hash is not the one recorded at export"
            )
        local = _local_row(row, folder)
        if folder.exists():
            try:
                verified_served_path(local)
                return row, folder
            except AdapterDamaged:
                shutil.rmtree(folder)  # a half-written or changed copy: fetch it again
        root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=root))
        try:
            unpack(blob.packing, blob.data, served_path(_local_row(row, staging)))
            verified_served_path(_local_row(row, staging))
            staging.rename(folder)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return row, folder


def _local_row(row: AdapterVersion, folder: Path) -> AdapterVersion:
    """The shop's version as this desktop's copy at ``folder`` (not added to any session)."""
    return AdapterVersion(
        version=row.version,
        method=row.method,
        base_model=row.base_model,
        path=str(folder),
        metrics={"sha256": (row.metrics or {}).get("sha256")},
    )


def activate(session: Session, shop: Store, version: str | None) -> None:
    """Make ``version`` (None: the base model) the shop's active adapter in ``session``'s
    transaction, and announce it to the desktops at commit. No role check: callers do it."""
    if version is not None:
        row = _version(shop, session, version)
        blob = shop.published_adapter(session, row.id)
        if blob is None:
            raise LookupError(f"Adapter {version} is not published to the shop: nothing to fetch")
        if blob.sha256 != (row.metrics or {}).get("sha256") or not _blob_intact(row, blob):
            raise AdapterDamaged(f"Adapter {version}'s published files are damaged; not promoted")
    shop.set_active_adapter(session, version)
    shop.notify(session, CHANNEL, version or "")


def _blob_intact(row: AdapterVersion, blob: PublishedAdapter) -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        local = _local_row(row, Path(tmp) / "v")
        Path(local.path).mkdir()
        try:
            unpack(blob.packing, blob.data, served_path(local))
        except (AdapterDamaged, zipfile.BadZipFile):
            return False
        return sha256_of(served_path(local)) == blob.sha256


def promote(shop: Store, version: str, secret: str | None) -> None:
    """A manager makes a published ``version`` the shop's active adapter."""
    require_manager(shop, secret)
    with shop.session() as session:
        activate(session, shop, version)


def rollback(shop: Store, secret: str | None, version: str | None = None) -> str | None:
    """A manager restores ``version`` (``"base"``: no adapter); by default the one before the
    active. Returns the version now active."""
    require_manager(shop, secret)
    with shop.session() as session:
        if version in ("base", "none"):
            version = None
        elif version is None:
            active = shop.active_adapter(session)
            if active is None:
                raise ValueError("No adapter is active: there is nothing to roll back")
            previous = shop.previous_promoted_adapter(session, active.id)
            version = previous.version if previous is not None else None
        activate(session, shop, version)
    return version


def active_version(shop: Store) -> dict[str, Any] | None:
    """The shop's active adapter: version, method, base model and hash; None for the base."""
    with shop.session() as session:
        row = shop.active_adapter(session)
        if row is None:
            return None
        return {
            "version": row.version,
            "method": row.method,
            "base_model": row.base_model,
            "sha256": (row.metrics or {}).get("sha256"),
        }


def _version(shop: Store, session: Session, version: str) -> AdapterVersion:
    row = shop.get_adapter(session, version)
    if row is None:
        raise LookupError(f"No adapter version {version!r} in the shop")
    return row
