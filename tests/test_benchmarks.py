"""The benchmarks live in ``benchmarks/`` beside ``app/``: the product package does not import them
(only lazily, through app/source_checkout.py), the wheel and the desktop bundle leave them out, and
the commands say what is missing where they are absent."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from app.errors import XiaoerError
from app.source_checkout import benchmarks_module

ROOT = Path(__file__).resolve().parents[1]


def test_the_product_package_never_imports_the_benchmarks_directly() -> None:
    offenders = []
    for path in sorted((ROOT / "app").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [f"{path}:{node.lineno}" for n in names if n.split(".")[0] == "benchmarks"]
    assert offenders == []


def test_the_wheel_and_the_bundle_leave_the_benchmarks_out() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    packages = config["tool"]["setuptools"]["packages"]
    assert all(p == "app" or p.startswith("app.") for p in packages), packages
    spec = (ROOT / "installer" / "xiaoer.spec").read_text(encoding="utf-8")
    never = spec[spec.index("NEVER = [") : spec.index("]", spec.index("NEVER = ["))]
    assert '"benchmarks"' in never


def test_the_wheel_ships_every_package_of_the_app() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    listed = set(config["tool"]["setuptools"]["packages"])
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "app").rglob("__init__.py")
    }
    assert found - listed == set(), "add them to [tool.setuptools] packages in pyproject.toml"


def test_a_benchmark_module_comes_from_the_checkout() -> None:
    module = benchmarks_module("knowledge")
    assert Path(module.__file__ or "").parent == ROOT / "benchmarks"


def test_without_the_benchmarks_the_command_says_where_they_are(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in [m for m in sys.modules if m.startswith("benchmarks.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "benchmarks", None)  # an installation without the package
    with pytest.raises(XiaoerError, match="source checkout"):
        benchmarks_module("knowledge", checkout=tmp_path)
    with pytest.raises(XiaoerError, match="source checkout"):
        benchmarks_module("no_such_benchmark")


def test_a_benchmark_runs_from_an_installed_command_outside_the_checkout(tmp_path: Path) -> None:
    """The console script's ``sys.path`` holds neither the checkout nor the working directory."""
    code = (
        "import sys; sys.path = [p for p in sys.path if p not in ('', '.', sys.argv[1])];"
        "from app.source_checkout import benchmarks_module;"
        "print(benchmarks_module('stand_in_trainer').__file__)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(ROOT)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()) == ROOT / "benchmarks" / "stand_in_trainer.py"


def test_xiaoer_bench_runs_a_benchmark_from_the_package(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from app.cli import main

    assert main(["bench", "redact"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["benchmark"] == "redact"
    assert {"redact_first_call_ms", "redact_msgs_per_s", "redact_20k_chars_ms"} <= set(result)


def test_without_the_benchmarks_xiaoer_bench_says_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from app.cli import main

    for name in [m for m in sys.modules if m.startswith("benchmarks.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "benchmarks", None)
    assert main(["bench", "redact"]) == 1
    assert "source checkout" in capsys.readouterr().err
