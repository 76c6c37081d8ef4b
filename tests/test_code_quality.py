"""ruff and mypy (strict on the engine) are part of the suite, so CI enforces them; and no class
is longer than 300 lines."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_tool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, check=False
    )


@pytest.mark.skipif(
    shutil.which("ruff") is None and not (ROOT / ".venv/bin/ruff").exists(),
    reason="ruff comes with the dev extra (make test installs it)",
)
def test_ruff_is_clean() -> None:
    result = run_tool("ruff", "check", "app", "benchmarks", "tests")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_is_clean() -> None:
    result = run_tool("mypy", "app", "benchmarks")
    assert result.returncode == 0, result.stdout + result.stderr


MAX_CLASS_LINES = 300
# Classes allowed over the limit: none (issue #22 split the last ones). The second test below
# fails on an entry that is stale.
ALLOWED_OVER_300: set[str] = set()


def long_classes(root: Path, limit: int = MAX_CLASS_LINES) -> dict[str, int]:
    """``path::Class`` → its length in lines (decorators to last line), for classes over ``limit``
    in the ``app`` package under ``root``; nested classes count on their own too."""
    found = {}
    for path in sorted((root / "app").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                length = (node.end_lineno or node.lineno) - first + 1
                if length > limit:
                    found[f"{path.relative_to(root).as_posix()}::{node.name}"] = length
    return found


def test_no_class_is_longer_than_300_lines() -> None:
    found = long_classes(ROOT)
    new = {name: n for name, n in found.items() if name not in ALLOWED_OVER_300}
    assert new == {}, f"classes over {MAX_CLASS_LINES} lines: split them by what they do"
    assert not [name for name in found if name.startswith(("app/evolve/", "app/scoring/"))]


def test_the_allowed_long_classes_are_still_long() -> None:
    found = long_classes(ROOT)
    stale = sorted(name for name in ALLOWED_OVER_300 if name not in found)
    assert stale == [], "now short enough (or gone): remove them from ALLOWED_OVER_300"


def test_the_class_length_check_catches_a_long_class(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_CLASS_LINES))
    (tmp_path / "app" / "big.py").write_text(f"class Big:\n{body}\n\n\nclass Small:\n    pass\n")
    assert long_classes(tmp_path) == {"app/big.py::Big": MAX_CLASS_LINES + 1}
