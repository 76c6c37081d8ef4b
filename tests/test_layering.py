"""The engine, evolution and store layers never import Qt (they must run headless and in workers)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QT_FREE = [
    "app/engine",
    "app/evolve",
    "app/store",
    "app/scoring",
    "app/cloud",
    "app/suggest",
    "app/knowledge",
]


def qt_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        found += [
            f"{path}:{node.lineno} {n}"
            for n in names
            if n.split(".")[0] in {"PySide6", "PyQt5", "PyQt6", "shiboken6"}
        ]
    return found


def test_no_qt_import_in_logic_layers() -> None:
    files = [f for d in QT_FREE for f in (ROOT / d).rglob("*.py")]
    assert any("engine" in str(f) for f in files), "the engine package should be scanned"
    offenders = [hit for f in files for hit in qt_imports(f)]
    assert offenders == []


def test_qt_import_detector_catches_an_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from PySide6.QtCore import QObject\n", encoding="utf-8")
    assert qt_imports(bad)


def test_importing_the_engine_loads_no_qt_and_no_torch() -> None:
    code = (
        "import sys, app.engine, app.engine.end_model, app.cli;"
        "bad = [m for m in ('PySide6', 'torch', 'transformers') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
