"""The documents that are generated or checked, so they can't drift from the code."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _generator() -> ModuleType:
    """tools/gen_cli_docs.py (tools/ is scripts, not a package)."""
    spec = importlib.util.spec_from_file_location("gen_cli_docs", ROOT / "tools/gen_cli_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_reference_matches_the_parser() -> None:
    generator = _generator()
    written = (ROOT / "docs/cli.md").read_text(encoding="utf-8")
    assert written == generator.render(), (
        f"docs/cli.md is out of date with the parser: run `{generator.REFRESH}`"
    )


def test_cli_reference_does_not_depend_on_the_terminal_width(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    generator = _generator()
    monkeypatch.setenv("COLUMNS", "40")
    narrow = generator.render()
    monkeypatch.setenv("COLUMNS", "250")
    assert generator.render() == narrow


def test_cli_reference_lists_every_subcommand() -> None:
    text = _generator().render()
    for command in (
        "xiaoer models provision",
        "xiaoer teacher set-key",
        "xiaoer adapters rollback",
    ):
        assert f"\n## {command}\n" in text
        assert f"usage: {command}" in text


def _anchors(document: Path) -> set[str]:
    """The heading anchors GitHub makes for a Markdown file (lower case, punctuation dropped)."""
    text = re.sub(r"```.*?```", "", document.read_text(encoding="utf-8"), flags=re.S)
    headings = re.findall(r"^#+ (.+)$", text, flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_links_between_documents_resolve() -> None:
    """Every relative link in README.md and docs/ names a file (and heading) that exists."""
    documents = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    broken = []
    for document in documents:
        text = document.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue  # a web address
            path, _, anchor = target.partition("#")
            linked = (document.parent / path) if path else document
            if not linked.exists():
                broken.append(f"{document.relative_to(ROOT)}: {target}")
            elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
                broken.append(f"{document.relative_to(ROOT)}: {target} (no such heading)")
    assert broken == []
