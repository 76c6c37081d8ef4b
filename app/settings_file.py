"""Every setting in one file, ``<data dir>/settings.json``, one section per part of the app.

    {"version": 2,
     "desktop": {...},     # app.ui.settings.UiSettings: the window, the end model, scoring
     "evolution": {...},   # app.evolve.settings.EvolutionSettings: the evolution policy
     "teacher": {...}}     # app.cloud.providers.TeacherConfig: which teacher (never a key)

Each section's typed object validates its fields when it is loaded (``app.settings.Settings``
loads them all); this module only reads and writes the file. The low-score threshold is stored
once, as the evolution section's ``low_score``: the desktop's ``low_score_threshold`` is read from
and written to it.

Version 1 (before this file had sections) kept the desktop's settings flat in ``settings.json``,
the evolution policy in ``evolution.json`` and the teacher in ``teacher.json``; the first read
migrates them into the sections and keeps the old files as ``*.v1`` beside it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from app import paths
from app.errors import XiaoerError
from app.fsio import atomic_write_text

SETTINGS_FILE = "settings.json"
VERSION = 2
SECTIONS = ("desktop", "evolution", "teacher")
V1_FILES = {"evolution": "evolution.json", "teacher": "teacher.json"}
"""Version 1's files of the sections other than the desktop's (which was ``settings.json``)."""

_lock = threading.RLock()
"""One reader-modifier-writer of the file at a time in this process (the UI's threads)."""


class SettingsFileError(XiaoerError):
    """The settings file cannot be read as settings; the message says which file and why."""


def settings_path() -> Path:
    return paths.data_dir() / SETTINGS_FILE


def _read_object(path: Path) -> dict[str, Any]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SettingsFileError(
            f"The settings file {path} is unreadable ({exc}); fix or delete it"
        ) from None
    if not isinstance(raw, dict):
        raise SettingsFileError(f"The settings file {path} is not a JSON object; fix or delete it")
    return raw


def read_sections() -> dict[str, dict[str, Any]]:
    """Each section's saved fields (``{}`` for a section never saved), an older layout migrated
    first. Raises SettingsFileError for a file that is not settings."""
    with _lock:
        path = settings_path()
        raw = _read_object(path) if path.is_file() else None
        if raw is None or "version" not in raw:
            return _migrate_v1(raw)
        version = raw["version"]
        if not isinstance(version, int) or version < 2:
            raise SettingsFileError(f"The settings file {path} has no valid version: {version!r}")
        if version > VERSION:
            raise SettingsFileError(
                f"The settings file {path} was written by a newer Xiaoer (version {version}); "
                "update Xiaoer"
            )
        unknown = sorted(set(raw) - {"version", *SECTIONS})
        if unknown:
            raise SettingsFileError(f"The settings file {path} has unknown sections {unknown}")
        sections = {name: raw.get(name, {}) for name in SECTIONS}
        for name, fields in sections.items():
            if not isinstance(fields, dict):
                raise SettingsFileError(f"The settings file {path}: {name} is not a JSON object")
        return sections


def write_sections(
    replace: Mapping[str, dict[str, Any]], update: Mapping[str, dict[str, Any]] | None = None
) -> Path:
    """In one write: the sections in ``replace`` get exactly those fields, those in ``update``
    these fields on top of theirs; the other sections are kept."""
    update = update or {}
    for name in [*replace, *update]:
        if name not in SECTIONS:
            raise ValueError(f"no settings section {name!r}: one of {', '.join(SECTIONS)}")
    with _lock:
        sections = read_sections()
        sections.update({name: dict(fields) for name, fields in replace.items()})
        for name, fields in update.items():
            sections[name] = {**sections[name], **fields}
        return _write(sections)


def write_section(name: str, fields: dict[str, Any]) -> Path:
    """Replace section ``name``'s fields, keeping the other sections."""
    return write_sections({name: fields})


def _write(sections: dict[str, dict[str, Any]]) -> Path:
    text = json.dumps({"version": VERSION, **sections}, ensure_ascii=False, indent=2)
    return atomic_write_text(settings_path(), text)


def _migrate_v1(desktop: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Version 1's files into sections, written as version 2 (nothing is written when there are
    none: a first start reads the defaults)."""
    sections: dict[str, dict[str, Any]] = {"desktop": dict(desktop or {})}
    found = [paths.data_dir() / name for name in V1_FILES.values()]
    for name, file in V1_FILES.items():
        path = paths.data_dir() / file
        sections[name] = _read_object(path) if path.is_file() else {}
    # The threshold lived in both; the desktop's was the one the manager set (and synced).
    threshold = sections["desktop"].pop("low_score_threshold", None)
    if threshold is not None:
        sections["evolution"]["low_score"] = threshold
    if desktop is None and not any(p.is_file() for p in found):
        return sections
    _write(sections)
    for path in found:
        if path.is_file():
            path.replace(path.with_name(path.name + ".v1"))
    return sections
