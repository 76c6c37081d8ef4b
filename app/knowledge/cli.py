"""Command-line front of the knowledge base: ``xiaoer knowledge import|list|remove|search``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from app.knowledge.formats import FORMATS


def add_parsers(sub: Any) -> None:
    knowledge = sub.add_parser(
        "knowledge", help="the shop's knowledge: past dialogues and FAQs the suggestions draw on"
    )
    ksub = knowledge.add_subparsers(dest="knowledge_cmd", required=True)
    imp = ksub.add_parser(
        "import", help="import (again) a file of past dialogues or an FAQ; prints a JSON report"
    )
    imp.add_argument("path", nargs="?", help="the file (a JDDC 2018 folder or .enc file, …)")
    imp.add_argument("--format", choices=FORMATS, help="default: told by the path")
    imp.add_argument("--name", help="the source's name (default: the file's name)")
    imp.add_argument(
        "--demo", action="store_true", help="import the demo shop's FAQ that ships with Xiaoer"
    )
    imp.add_argument(
        "--no-train",
        action="store_true",
        help="don't train the suggestion ranker after importing past dialogues (the default, as "
        "in the app, trains it and its in-domain matcher and makes both active)",
    )
    ksub.add_parser("list", help="the imported sources with their entry counts (JSON)")
    remove = ksub.add_parser("remove", help="remove a source and its entries")
    remove.add_argument("name")
    search = ksub.add_parser("search", help="the entries most similar to a question (JSON)")
    search.add_argument("query")
    search.add_argument("--k", type=int, default=10, help="how many (default 10)")
    search.add_argument("--kind", choices=["dialogue", "faq"], help="only past dialogues or FAQ")
    knowledge.set_defaults(func=cmd_knowledge)


def _train_ranker(store: Any, kb: Any) -> None:
    """What the app does after an import: the ranker learns from the history just imported."""
    from app.suggest.train import train_ranker_after_import

    def progress(event: dict[str, Any]) -> None:
        count = f"{event['done']} of {event['total']}" if event.get("total") else ""
        print(f"training the ranker: {event.get('stage')} {count}", file=sys.stderr)

    ranker = train_ranker_after_import(store, kb, progress)
    if ranker is None:
        print(
            "too few past dialogues to train the ranker: scores stay uncalibrated", file=sys.stderr
        )
    else:
        print(f"ranker {ranker.version} trained and active", file=sys.stderr)


def _print(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False, indent=2, default=str))


def cmd_knowledge(args: argparse.Namespace) -> int:
    from app.knowledge.base import KnowledgeBase
    from app.knowledge.demo import import_demo_faq
    from app.store import open_store

    with open_store() as store:
        kb = KnowledgeBase(store)
        if args.knowledge_cmd == "import":
            if args.demo == bool(args.path):
                print("error: give a PATH or --demo", file=sys.stderr)
                return 2
            progress = _Progress()
            if args.demo:
                report = import_demo_faq(kb, progress)
            else:
                report = kb.import_file(args.path, args.format, args.name, progress)
            progress.done()
            print(report.summary(), file=sys.stderr)
            _print(vars(report))
            if report.kind == "dialogue" and (report.added or report.removed) and not args.no_train:
                _train_ranker(store, kb)
        elif args.knowledge_cmd == "list":
            sources = kb.sources()
            _print(
                {
                    "entries": sum(s.entries for s in sources),
                    "sources": [vars(s) for s in sources],
                }
            )
        elif args.knowledge_cmd == "remove":
            removed = kb.remove(args.name)
            _print({"removed": args.name, "entries": removed})
        else:
            hits = kb.search(args.query, args.k, args.kind)
            _print(
                [
                    {
                        "similarity": round(h.similarity, 4),
                        "source": h.entry.source,
                        "kind": h.entry.kind,
                        "query": h.entry.query,
                        "answer": h.entry.answer,
                    }
                    for h in hits
                ]
            )
    return 0


class _Progress:
    """Encoding progress on stderr: one rewritten line on a terminal, a few lines in a log."""

    def __init__(self) -> None:
        self._tty = sys.stderr.isatty()
        self._last = -1
        self._shown = False

    def __call__(self, done: int, total: int) -> None:
        percent = done * 100 // max(total, 1)
        step = 1 if self._tty else 25
        if percent // step != self._last:
            self._last = percent // step
            self._shown = True
            end = "" if self._tty else "\n"
            print(
                f"\rencoding: {done:,} of {total:,} entries ({percent}%)", end=end, file=sys.stderr
            )

    def done(self) -> None:
        if self._shown and self._tty:
            print(file=sys.stderr)
