"""Command-line front of team mode's learning loop (docs/team.md): ``xiaoer worker``, and
``xiaoer team enqueue|job|manager|promote|rollback``. Every command prints JSON."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from typing import Any

COMMANDS = ("enqueue", "job", "manager", "promote", "rollback")


def add_worker_parser(sub: Any) -> None:
    worker = sub.add_parser(
        "worker",
        help="team mode: run the shop's jobs (evolution rounds, labeling, matcher training) on "
        "this machine, CUDA when it has one, CPU otherwise",
    )
    worker.add_argument("--url", help="the shop's database (default: $XIAOER_DATABASE_URL)")
    worker.add_argument("--once", action="store_true", help="stop when the queue is empty")
    worker.set_defaults(func=cmd_worker)


def add_team_parsers(tsub: Any) -> None:
    """``xiaoer team`` subcommands of the learning loop (beside upgrade, status, sync)."""
    enqueue = tsub.add_parser("enqueue", help="put a job in the shop's queue (JSON: its id)")
    enqueue.add_argument("kind", choices=("evolve", "label", "matcher"))
    enqueue.add_argument("--steps", type=int, help="evolve: training steps of the round")
    enqueue.add_argument("--enc", help="matcher: the JDDC 2018 pairs' .enc file (worker's path)")
    enqueue.add_argument("--dec", help="matcher: the .dec file")
    enqueue.add_argument("--limit", type=int, help="matcher: at most this many pairs")
    enqueue.add_argument(
        "--follow", action="store_true", help="then print its progress as JSON lines until done"
    )
    job = tsub.add_parser("job", help="a job's status and progress events (JSON)")
    job.add_argument("id", type=int)
    job.add_argument("--follow", action="store_true", help="print events as JSON lines until done")
    manager = tsub.add_parser(
        "manager", help="the manager role: its secret in this desktop's keyring, a hash in the shop"
    )
    manager.add_argument(
        "action",
        choices=("init", "login", "logout", "status"),
        help="init: make the shop's manager secret (once; prints it) and keep it here; "
        "login: keep a manager secret (read from stdin) here; logout: forget it here",
    )
    promote = tsub.add_parser("promote", help="make a published adapter the shop's active one")
    promote.add_argument("version")
    rollback = tsub.add_parser("rollback", help="restore the shop's previous adapter, or VERSION")
    rollback.add_argument("version", nargs="?", help="a version, or 'base' for no adapter")
    for cmd in (enqueue, job, manager, promote, rollback):
        cmd.add_argument("--url", help="the shop's database (default: $XIAOER_DATABASE_URL)")


def _print(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False, default=str), flush=True)


def _url(args: argparse.Namespace) -> str | None:
    from app.store.db import DATABASE_URL_ENV, shop_database_url

    url = args.url or shop_database_url()
    if url is None:
        print(f"error: no shop database: set {DATABASE_URL_ENV} or give --url", file=sys.stderr)
    return url


def cmd_worker(args: argparse.Namespace) -> int:
    from app.team import jobs

    url = _url(args)
    if url is None:
        return 2
    _print({"worker": "started", "device": jobs.device(), "queue": jobs.QUEUE})
    jobs.run_worker(url, once=args.once)
    return 0


def cmd_team_loop(args: argparse.Namespace) -> int:
    """``xiaoer team enqueue|job|manager|promote|rollback``."""
    from app.errors import XiaoerError
    from app.store import open_store

    url = _url(args)
    if url is None:
        return 2
    with open_store(url) as shop:
        try:
            return _run(args, url, shop)
        except (XiaoerError, LookupError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1


def _run(args: argparse.Namespace, url: str, shop: Any) -> int:
    from app.team import adapters, jobs, roles

    if args.team_cmd == "enqueue":
        params: dict[str, Any] = {}
        if args.kind == "evolve" and args.steps:
            params["steps"] = args.steps
        if args.kind == "matcher":
            if not (args.enc and args.dec):
                raise ValueError("matcher: give --enc and --dec (paths on the worker)")
            params = {"enc": args.enc, "dec": args.dec, "limit": args.limit}
        job_id = jobs.enqueue(url, args.kind, shop=shop, secret=roles.saved_secret(shop), **params)
        _print({"job": job_id, "kind": args.kind})
        return _follow(shop, job_id) if args.follow else 0
    if args.team_cmd == "job":
        if args.follow:
            return _follow(shop, args.id)
        status, _ = jobs.job_status(shop, args.id)
        _print(
            {
                "job": status.id,
                "kind": status.kind,
                "status": status.status,
                "events": status.events,
            }
        )
        return 0
    if args.team_cmd == "manager":
        return _manager(args, shop)
    secret = roles.saved_secret(shop)
    if args.team_cmd == "promote":
        adapters.promote(shop, args.version, secret)
        _print({"active": args.version})
        return 0
    _print({"active": adapters.rollback(shop, secret, args.version)})
    return 0


def _follow(shop: Any, job_id: int) -> int:
    from app.team import jobs

    last: dict[str, Any] = {}
    for event in jobs.follow(shop, job_id):
        _print(event)
        last = event
    return 0 if last.get("status") == "succeeded" else 1


def _manager(args: argparse.Namespace, shop: Any) -> int:
    from app.cloud.secrets import SecretsError
    from app.team import roles

    if args.action == "status":
        _print({"manager_here": roles.is_manager(shop, roles.saved_secret(shop))})
        return 0
    if args.action == "logout":
        roles.forget_secret(shop)
        _print({"manager_here": False})
        return 0
    if args.action == "init":
        secret = roles.set_manager_secret(shop, current=roles.saved_secret(shop))
        # Shown once, for the other managers' desktops (xiaoer team manager login).
        print(
            f"manager secret (keep it safe; the shop keeps only a hash): {secret}", file=sys.stderr
        )
        try:
            roles.save_secret(shop, secret)
        except SecretsError as exc:  # a headless machine: the secret goes in its environment
            _print({"manager_here": False, "note": f"{exc} Set ${roles.SECRET_ENV} instead."})
            return 0
        _print({"manager_here": True})
        return 0
    prompt = "manager secret: "
    secret = getpass.getpass(prompt) if sys.stdin.isatty() else sys.stdin.readline().strip()
    roles.save_secret(shop, secret)
    _print({"manager_here": True})
    return 0
