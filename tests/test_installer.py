"""The desktop bundle's entry point (installer/xiaoer_main.py) outside the bundle: the app's child
processes run as ``sys.executable -m MODULE``, which a frozen program must answer like Python."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from app import __version__

ROOT = Path(__file__).resolve().parents[1]
ENTRY = ROOT / "installer" / "xiaoer_main.py"


def run_entry(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ENTRY), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_dash_m_runs_the_module_with_its_arguments() -> None:
    result = run_entry("-m", "app", "--version")  # what `-m app evolve …` goes through
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"xiaoer {__version__}"


def test_dash_m_passes_a_modules_exit_status_on() -> None:
    result = run_entry("-m", "app", "models", "no-such-command")
    assert result.returncode == 2 and "invalid choice" in result.stderr


def test_without_dash_m_it_is_the_xiaoer_command() -> None:
    result = run_entry("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"xiaoer {__version__}"
