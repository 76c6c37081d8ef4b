"""Command-line front of team mode's store: ``xiaoer team upgrade|status|sync`` (docs/team.md)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def add_parsers(sub: Any) -> None:
    team = sub.add_parser(
        "team", help="team mode: the shop's PostgreSQL database ($XIAOER_DATABASE_URL)"
    )
    tsub = team.add_subparsers(dest="team_cmd", required=True)
    for name, text in (
        ("upgrade", "bring the shop's database to this Xiaoer's schema (JSON)"),
        ("status", "solo or team, the shop's database reachable or not, ratings waiting (JSON)"),
        ("sync", "send this desktop's ratings the shop's database does not have yet (JSON)"),
    ):
        cmd = tsub.add_parser(name, help=text)
        cmd.add_argument("--url", help="the shop's database (default: $XIAOER_DATABASE_URL)")
    team.set_defaults(func=cmd_team)
    from app.team import cli as loop_cli  # jobs, the worker, the manager, shared adapters

    loop_cli.add_team_parsers(tsub)
    for name in loop_cli.COMMANDS:
        tsub.choices[name].set_defaults(func=loop_cli.cmd_team_loop)
    loop_cli.add_worker_parser(sub)


def _print(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False, indent=2, default=str))


def cmd_team(args: argparse.Namespace) -> int:
    from sqlalchemy import make_url

    from app.store.db import DATABASE_URL_ENV, open_store, shop_database_url
    from app.store.team import ShopSync

    url = args.url or shop_database_url()
    if url is None:
        if args.team_cmd != "status":
            print(f"error: no shop database: set {DATABASE_URL_ENV} or give --url", file=sys.stderr)
            return 2
        _print({"mode": "solo"})
        return 0
    shown = make_url(url).render_as_string(hide_password=True)
    if args.team_cmd == "upgrade":
        from app.store import migrate

        with open_store(url):
            pass
        _print({"database": shown, "revision": migrate.head_revision()})
        return 0
    with open_store() as local:
        sync = ShopSync(local, url)
        try:
            sent = sync.sync() if args.team_cmd == "sync" else None
            if args.team_cmd == "status":
                sync.check()
        finally:
            sync.close()
    status = sync.status
    report: dict[str, Any] = {
        "mode": "team",
        "database": shown,
        "state": status.state,
        "pending": status.pending,
    }
    if sent is not None:
        report["sent"] = sent
    if status.last_error:
        report["error"] = status.last_error
    _print(report)
    return 0 if status.state == "online" else 1
