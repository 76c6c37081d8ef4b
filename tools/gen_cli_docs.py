"""Write docs/cli.md, the command-line reference, from the `xiaoer` argparse parser.

    python tools/gen_cli_docs.py > docs/cli.md

Every command and subcommand gets its `--help` text, in the order the parser declares them.
The text is the same on every machine: help is wrapped at a fixed width, whatever the terminal
(argparse otherwise wraps at $COLUMNS). tests/test_docs.py fails when docs/cli.md differs from
what this prints, so the reference cannot drift from the parser.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import cast

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from app.cli import build_parser  # noqa: E402

WIDTH = 100
REFRESH = "python tools/gen_cli_docs.py > docs/cli.md"


def _fixed_width(parser: argparse.ArgumentParser) -> None:
    """Wrap this parser's help at WIDTH columns, keeping its own formatter class."""
    formatter_class = cast("type[argparse.HelpFormatter]", parser.formatter_class)

    def formatter(*, prog: str) -> argparse.HelpFormatter:
        return formatter_class(prog, width=WIDTH)

    parser.formatter_class = formatter


def walk(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ("xiaoer",)
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """The parser and all its subcommands, depth first, in declaration order."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from walk(sub, (*path, name))


def render() -> str:
    parser = build_parser()
    commands = list(walk(parser))
    lines = [
        "# Command-line reference",
        "",
        "<!-- Generated from the parser by tools/gen_cli_docs.py: do not edit by hand.",
        f"     Refresh: {REFRESH} -->",
        "",
        "`xiaoer` with no command opens the desktop window (`xiaoer gui`). Every command below",
        "prints the same text with `--help`.",
        "",
    ]
    lines += [
        f"{'  ' * (len(path) - 2)}- [`{' '.join(path)}`](#{'-'.join(path)})"
        for path, _ in commands[1:]
    ]
    lines.append("")
    for path, sub in commands:
        _fixed_width(sub)
        lines += [f"## {' '.join(path)}", "", "```text", sub.format_help().rstrip(), "```", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.buffer.write(render().encode("utf-8"))  # UTF-8 whatever the locale
