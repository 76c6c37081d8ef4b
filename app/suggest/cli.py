"""Command-line front of the suggestions: ``xiaoer ranker train|list|activate`` and
``xiaoer eval-suggest``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def add_parsers(sub: Any) -> None:
    ranker = sub.add_parser(
        "ranker", help="the suggestion ranker, trained on the imported past dialogues"
    )
    rsub = ranker.add_subparsers(dest="ranker_cmd", required=True)
    train = rsub.add_parser(
        "train",
        help="train on the knowledge base's past dialogues (and its in-domain matcher first) "
        "and make both active (JSON)",
    )
    train.add_argument("--no-activate", action="store_true", help="record it, keep the old one")
    train.add_argument(
        "--no-matcher",
        action="store_true",
        help="one stage only: don't train the in-domain matcher that the second stage reads "
        "(minutes on a large history)",
    )
    rsub.add_parser("list", help="trained versions and which is active (JSON)")
    act = rsub.add_parser("activate", help="make a version the active ranker ('none' = untrained)")
    act.add_argument("version")
    ranker.set_defaults(func=cmd_ranker)

    ev = sub.add_parser(
        "eval-suggest",
        help="USE similarity of the suggestions to the agents' real replies on held-out "
        "JDDC-2018-format contexts (one JSON line)",
    )
    ev.add_argument("--pairs", nargs=2, metavar=("ENC", "DEC"), required=True)
    ev.add_argument("--offset", type=int, default=0, help="first held-out pair (0-based)")
    ev.add_argument("--limit", type=int, default=300, help="held-out pairs (0 = to the end)")
    ev.add_argument(
        "--knowledge",
        required=True,
        help="a Xiaoer data dir whose store holds the knowledge (XIAOER_HOME=DIR xiaoer "
        "knowledge import …) and, after `xiaoer ranker train`, the active ranker",
    )
    ev.add_argument("--no-model", action="store_true", help="skip the 0.5B's drafts")
    ev.add_argument(
        "--adapter",
        default="active",
        help="the adapter version that drafts (greedy), from $XIAOER_HOME's store: VERSION, "
        "active (default: what this install drafts with) or none (the base model)",
    )
    ev.add_argument(
        "--items", help="JSON-lines file of the model's drafts: reused, and new drafts appended"
    )
    ev.add_argument("--k", type=int, default=10, help="candidates kept per context")
    ev.set_defaults(func=cmd_eval_suggest)


def _print(value: Any, indent: int | None = None) -> None:
    print(json.dumps(value, ensure_ascii=False, indent=indent, default=str), flush=True)


def cmd_ranker(args: argparse.Namespace) -> int:
    from app.knowledge import KnowledgeBase
    from app.store import open_store
    from app.suggest.ranker import RANKER_KIND, list_rankers
    from app.suggest.train import train_ranker_after_import

    with open_store() as store:
        if args.ranker_cmd == "train":
            kb = KnowledgeBase(store)

            def progress(event: dict[str, Any]) -> None:
                print(json.dumps(event, ensure_ascii=False), file=sys.stderr, flush=True)

            ranker = train_ranker_after_import(
                store, kb, progress, not args.no_activate, matcher=not args.no_matcher
            )
            if ranker is None:
                print(
                    "error: too few past dialogues in the knowledge to train a ranker "
                    "(import some: xiaoer knowledge import …)",
                    file=sys.stderr,
                )
                return 1
            _print(
                {
                    "version": ranker.version,
                    "active": not args.no_activate,
                    "weights": ranker.weights(),
                    **ranker.metrics,
                }
            )
            return 0
        if args.ranker_cmd == "activate":
            version = None if args.version == "none" else args.version
            try:
                with store.session() as session:
                    store.set_active_matcher(session, version, kind=RANKER_KIND)
            except (LookupError, ValueError) as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 1
            print(f"active ranker: {args.version}")
            return 0
        _print(list_rankers(store), indent=1)
        return 0


def cmd_eval_suggest(args: argparse.Namespace) -> int:
    from app.suggest.evaluate import EvalSuggestError, evaluate

    draft_fn = None
    if not args.no_model:
        from app.engine import weights
        from app.evolve.cli import adapter_named
        from app.evolve.gate import Served, load_drafter
        from app.store import open_store

        profile = weights.PROFILES[weights.DEFAULT_PROFILE]
        if not weights.profile_path(profile).is_file():  # a fresh data dir: assemble it first
            weights.provision(profile)
        try:
            with open_store() as store:
                adapter = Served.of(adapter_named(store, args.adapter))
        except LookupError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        model = load_drafter(adapter, weights.DEFAULT_PROFILE)
        draft_fn = model.reply
    try:
        report = evaluate(
            (Path(args.pairs[0]), Path(args.pairs[1])),
            args.offset,
            args.limit,
            Path(args.knowledge).expanduser(),
            draft_fn,
            Path(args.items) if args.items else None,
            args.k,
            log=lambda m: print(m, file=sys.stderr, flush=True),
        )
    except (EvalSuggestError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _print(report)
    return 0
