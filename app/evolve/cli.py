"""Command-line front of the evolution engine:
``xiaoer evolve|adapters|train|onboard|eval|compare|report``."""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import asdict, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.evolve.config import METHODS, PRESETS, SHOTS_MAX_INPUT, TrainConfig
from app.evolve.data import (
    MIN_REPLY_CHARS,
    TrainingExample,
    clean_examples,
    read_examples,
    with_shots,
    write_examples,
)
from app.evolve.loop import Evolution
from app.evolve.settings import EvolutionSettings
from app.evolve.trainer_process import Progress, run_training
from app.evolve.versions import (
    check_version_name,
    is_finished,
    is_registered,
    new_run_dir,
    run_dir_for,
)

if TYPE_CHECKING:
    from app.cloud.prompt import ExampleBank


def _store() -> Any:
    from app.store import open_store

    return open_store()


@contextlib.contextmanager
def teacher_service(
    store: Any, start_local: bool = True, examples: Any | None = None, k: int = 8
) -> Iterator[Any]:
    """The configured teacher as a TeacherService, or None when it can't be had.

    When the local teacher is the provider and is not running, it is started for the duration
    (and stopped after), so "Evolve now" works without a separate `xiaoer teacher serve`.
    ``examples`` (an ExampleBank) gives the teacher the ``k`` most similar past dialogues.
    """
    from app.cloud.providers import load_config, make_teacher
    from app.cloud.service import TeacherService
    from app.engine import weights
    from app.errors import XiaoerError
    from app.local_server import teacher_server as server

    config = load_config()
    started = None
    try:
        if config.provider == "local" and not config.base_url and not server.running_server():
            if not start_local:
                yield None
                return
            path = weights.ensure_verified(weights.PROFILES["qwen2.5-1.5b"])
            started = server.TeacherServer(path)
            started.start()
            # A CPU-only 1.5B teacher may need a minute for a long reply.
            config = replace(config, base_url=started.base_url, timeout=max(config.timeout, 120))
        teacher = make_teacher(config)
        cost = getattr(teacher, "cost", None)
        yield TeacherService(teacher, store, examples, k=k, cost_fn=cost)
    except XiaoerError as exc:
        print(f"teacher unavailable: {exc}", file=sys.stderr)
        yield None
    finally:
        if started is not None:
            started.stop()


def _printer(jsonl: bool) -> Progress:
    def show(event: dict[str, Any]) -> None:
        if jsonl:
            print(json.dumps(event, ensure_ascii=False), flush=True)
            return
        kind = event.get("event")
        if kind == "step":
            print(
                f"\rstep {event['step']}/{event['total']}  loss {event['loss']:.3f}  "
                f"{event['tok_s']:.0f} tok/s  eta {event['eta_s']:.0f} s",
                end="" if event["step"] < event["total"] else "\n",
                file=sys.stderr,
                flush=True,
            )
        elif kind in ("stage", "gate", "labels", "candidates", "warning", "error", "start", "plan"):
            print(json.dumps(event, ensure_ascii=False), file=sys.stderr, flush=True)

    return show


def _cancel_on_signals() -> threading.Event:
    cancel = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: cancel.set())
    return cancel


def cmd_evolve(args: argparse.Namespace) -> int:
    settings = EvolutionSettings.load()
    changes = {
        key: getattr(args, key)
        for key in (
            "method",
            "objective",
            "low_score",
            "steps",
            "auto_every",
            "margin",
            "tolerance",
            "min_label_chars",
            "corpus",
            "examples",
            "shots",
        )
        if getattr(args, key, None) is not None
    }
    if changes:
        settings = EvolutionSettings(**{**asdict(settings), **changes})
        if args.save:
            settings.save()
    store = _store()
    if not args.now:
        evo = Evolution(store, settings)
        with store.session() as session:
            active = store.active_adapter(session)
            active_version = active.version if active is not None else None
        status = {
            "candidates": len(evo.candidates()),
            "labels": len(evo.labels()),
            "due": evo.due(),
            "active": active_version,
            "settings": asdict(settings),
        }
        print(json.dumps(status, ensure_ascii=False, indent=2))
        return 0
    show = _printer(args.jsonl)
    cancel = _cancel_on_signals()
    evo = Evolution(store, settings)
    try:
        past = evo.past_dialogues()
    except (OSError, ValueError) as exc:
        show({"event": "error", "message": f"past dialogues {settings.examples}: {exc}"})
        return 1
    with teacher_service(store, examples=past) as service:
        evo.teacher = service
        try:
            result = evo.run_round(show, cancel)
        except (RuntimeError, ValueError, LookupError) as exc:
            show({"event": "error", "message": str(exc)})
            return 1
    if not args.jsonl:
        print(json.dumps(result, ensure_ascii=False))
    return 0


def cmd_adapters(args: argparse.Namespace) -> int:
    store = _store()
    evo = Evolution(store, EvolutionSettings.load())  # the gate's probes, held-back set, margin
    if args.adapters_cmd == "list":
        print(json.dumps(evo.adapters(), ensure_ascii=False, indent=2))
        return 0
    if args.adapters_cmd == "promote":
        evo.promote(args.version)
        print(json.dumps({"active": args.version}))
        return 0
    if args.adapters_cmd == "gate":
        verdict = evo.gate(args.version)
        promote = verdict.promoted and not args.no_promote
        if promote:
            evo.promote(args.version)
        done = {"version": args.version, "passed": verdict.promoted, "promoted": promote}
        scores = {k: v for k, v in verdict.summary().items() if k not in ("version", "promoted")}
        print(json.dumps({**done, **scores}, ensure_ascii=False, default=str))
        return 0 if verdict.promoted else 1
    active = evo.rollback(args.version)
    print(json.dumps({"active": active}))
    return 0


def _examples_from(args: argparse.Namespace) -> list[TrainingExample]:
    from app.evolve.evaluate import read_pairs

    examples: list[TrainingExample] = []
    if args.corpus:
        corpus = Path(args.corpus)
        if args.format == "jddc2018":
            enc = corpus if corpus.suffix == ".enc" else corpus / "train.enc"
            pairs = read_pairs(enc, enc.with_suffix(".dec"), args.offset, args.limit)
        else:
            pairs = read_examples(corpus)[args.offset :][: args.limit]
        examples += pairs
    if args.labels:
        examples += read_examples(Path(args.labels))
    if not examples:
        raise ValueError("Give --corpus and/or --labels with at least one context → reply pair")
    if args.shots:
        examples = with_shots(examples, _shot_bank(args), args.shots)
    kept = clean_examples(examples, min_chars=args.min_reply_chars)
    if not kept:
        raise ValueError(
            f"All {len(examples)} replies are repeats, copies of the customer's message or "
            f"shorter than --min-reply-chars {args.min_reply_chars}: nothing to train on"
        )
    return kept


def cmd_train(args: argparse.Namespace) -> int:
    """Fine-tune from a corpus (the paper's experiment); registers the result as a candidate."""
    out = _train_dir(args)
    try:
        examples = _examples_from(args)
    except BaseException:
        with contextlib.suppress(OSError):
            out.rmdir()  # a new run's empty folder (a resumed run's holds files: kept)
        raise
    out.mkdir(parents=True, exist_ok=True)
    write_examples(examples, out / "data.jsonl")
    config = TrainConfig.from_preset(
        args.preset,
        args.method,
        data=str(out / "data.jsonl"),
        output_dir=str(out),
        steps=args.steps,
        lr=args.lr,
        snapshot_every=args.snapshot_every,
        seed=args.seed,
        max_input=args.max_input or (SHOTS_MAX_INPUT if args.shots else None),
    )
    config.save(out / "run.json")
    status, result = run_training(out / "run.json", _printer(args.jsonl), _cancel_on_signals())
    if status != "succeeded":
        print(json.dumps({"status": status, **result}, ensure_ascii=False))
        return 1
    summary: dict[str, Any] = {"status": status, "output_dir": str(out), **result}
    if not args.no_register:
        summary["version"] = register(out, args.method, result)
    print(json.dumps(summary, ensure_ascii=False))
    return 0


def _train_dir(args: argparse.Namespace) -> Path:
    """Where ``xiaoer train`` writes: a new version (never one that exists), or ``--out``."""
    if args.out:
        out = Path(args.out)
        if not args.no_register:
            return run_dir_for(out.name, out)  # the folder's name is the version's
        if is_finished(out):
            raise ValueError(f"{out} already holds a trained adapter; give --out a new folder")
        return out
    if args.name:
        return run_dir_for(f"{args.method}-{args.name}")
    return new_run_dir(f"{args.method}-{datetime.now():%Y%m%d-%H%M%S}", is_registered)


def register(run_dir: Path, method: str, metrics: dict[str, Any]) -> str:
    """Record a trained run as a candidate adapter version (exported and hashed)."""
    from app.engine import weights

    store = _store()
    version = check_version_name(run_dir.name)
    with store.session() as session:
        if store.get_adapter(session, version) is not None:
            raise ValueError(
                f"adapter version {version!r} already exists, and versions are never overwritten"
            )
        store.add_adapter_version(
            session,
            version=version,
            method=method,
            base_model=weights.DEFAULT_PROFILE,
            path=str(run_dir),
            metrics={"train": metrics},
            status="candidate",
        )
    Evolution(store).export(version)
    return version


def cmd_onboard(args: argparse.Namespace) -> int:
    """Warm start: fine-tune the end model on the shop's history (see ``app.evolve.onboard``)."""
    from app.evolve.onboard import DEFAULT_BUDGET_TOKENS, onboard, plan_onboarding

    plan = plan_onboarding(
        Path(args.corpus),
        args.format,
        args.budget_tokens or DEFAULT_BUDGET_TOKENS,
        args.holdout,
    )
    show = _printer(args.jsonl)
    show({"event": "plan", **plan.summary()})
    if args.plan:
        print(json.dumps(plan.summary(), ensure_ascii=False))
        return 0
    settings = EvolutionSettings.load()
    if args.gate_items is not None:
        settings = replace(settings, holdout_gate=args.gate_items)
    store = _store()
    try:
        done = onboard(store, plan, settings, show, _cancel_on_signals(), gate=not args.no_gate)
    except RuntimeError as exc:
        print(json.dumps({"status": "stopped", "message": str(exc)}, ensure_ascii=False))
        return 1
    print(json.dumps({"status": "done", **done}, ensure_ascii=False))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from app.engine import weights
    from app.evolve.evaluate import evaluate, read_pairs
    from app.scoring.registry import load_scorer

    store = _store()
    pairs = read_pairs(Path(args.pairs[0]), Path(args.pairs[1]), args.offset, args.limit)
    adapter = adapter_named(store, args.adapter)
    baseline = adapter_named(store, args.compare) if args.compare else None
    scorer = load_scorer(store=store)
    examples = _shot_bank(args) if args.shots else example_bank_of(args)
    if examples is not None and args.shots:
        pairs = with_shots(pairs, examples, args.shots, leave_out_same=False)
    with contextlib.ExitStack() as stack:
        teacher = None
        if args.teacher:
            teacher = stack.enter_context(teacher_service(store, examples=examples, k=args.k))
        summary = evaluate(
            pairs,
            adapter,
            weights.DEFAULT_PROFILE,
            scorer,
            teacher,
            compare=bool(args.compare),
            baseline=baseline,
        )
    items = summary.pop("items")
    if args.against:
        summary["against"] = {"items": args.against, **deltas_against(items, Path(args.against))}
    if args.items:
        with open(args.items, "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(item, ensure_ascii=False) + "\n" for item in items)
    print(json.dumps(summary, ensure_ascii=False, indent=None if args.compact else 2))
    return 0


def deltas_against(items: list[dict[str, Any]], earlier: Path) -> dict[str, float]:
    """Paired differences from an earlier run's ``--items`` file on the same contexts (another
    adapter, other settings such as ``--shots``)."""
    from app.evolve.evaluate import item_deltas, read_items

    mismatch = f"{earlier}: its contexts are not this run's (same --pairs, --offset, --limit?)"
    return item_deltas(items, read_items(earlier), mismatch)


def cmd_compare(args: argparse.Namespace) -> int:
    from app.evolve.evaluate import compare_items

    runs = [[Path(p) for p in files] for files in args.run]
    summary = compare_items([Path(p) for p in args.base], runs)
    print(json.dumps(summary, ensure_ascii=False, indent=None if args.compact else 2))
    return 0


def adapter_named(store: Any, name: str) -> Any | None:
    """The adapter version called ``name``: ``none`` is the base model, ``active`` the active one."""
    if name == "none":
        return None
    with store.session() as session:
        if name == "active":
            adapter = store.active_adapter(session)
        else:
            adapter = store.get_adapter(session, name)
            if adapter is None:
                raise LookupError(f"No adapter version {name!r} (see `xiaoer adapters list`)")
        session.expunge_all()
    return adapter


def example_bank_of(args: argparse.Namespace) -> ExampleBank | None:
    """The bank of ``--examples``, or None without them."""
    from app.cloud.label import example_bank

    return example_bank(Path(args.examples), args.examples_format) if args.examples else None


def _shot_bank(args: argparse.Namespace) -> ExampleBank:
    """The past dialogues ``--shots`` are chosen from."""
    bank = example_bank_of(args)
    if bank is None:
        raise ValueError("--shots needs --examples: the past dialogues to choose them from")
    return bank


def example_args(parser: Any, use: str, k: bool = True) -> None:
    """``--examples`` (the shop's past dialogues, for ``use``), their format, and ``--k``."""
    parser.add_argument("--examples", help=f"the shop's past dialogues (a corpus), {use}")
    parser.add_argument(
        "--examples-format",
        choices=["jddc2018", "jddc2019", "ecd", "jsonl"],
        help="default: told by the path (a folder or .enc: jddc2018, .jsonl: jsonl, else jddc2019)",
    )
    if k:
        parser.add_argument("--k", type=int, default=8, help="past dialogues shown to the teacher")


def _shots_arg(parser: Any) -> None:
    parser.add_argument(
        "--shots",
        type=int,
        default=0,
        metavar="K",
        help="show the end model the K past dialogues of --examples most like each context",
    )


def cmd_report(args: argparse.Namespace) -> int:
    from app.source_checkout import benchmarks_module

    write_report = benchmarks_module("evolve_report").write_report
    store = _store()
    examples = example_bank_of(args)
    with teacher_service(store, not args.no_teacher, examples, args.k) as service:
        written = write_report(
            [Path(r) for r in args.runs], Path(args.out), teacher=service, probes=args.probe
        )
    print(json.dumps({"written": [str(p) for p in written]}, ensure_ascii=False))
    return 0


def add_parsers(sub: Any) -> None:
    """Register the evolution commands on the `xiaoer` subparsers."""
    evolve = sub.add_parser("evolve", help="online evolution: status, or a whole round with --now")
    evolve.add_argument("--now", action="store_true", help="run a round: labels → train → gate")
    evolve.add_argument("--jsonl", action="store_true", help="progress as JSON lines on stdout")
    evolve.add_argument("--method", choices=METHODS)
    evolve.add_argument(
        "--objective", choices=["sft", "kto"], help="kto: also learn from 👍/👎 without edits"
    )
    evolve.add_argument("--low-score", type=float, help="Final Score below this → candidate")
    evolve.add_argument("--steps", type=int, help="training steps (default: the preset's)")
    evolve.add_argument("--auto-every", type=int, help="evolve automatically after K labels")
    evolve.add_argument("--margin", type=float, help="mean Final gain the gate asks for")
    evolve.add_argument("--tolerance", type=float, help="largest drop allowed on one probe")
    evolve.add_argument(
        "--min-label-chars",
        type=int,
        help="teacher labels and corpus replies shorter than this are not learned",
    )
    evolve.add_argument("--corpus", help="JSONL pairs mixed in as replay")
    evolve.add_argument(
        "--examples", help="the shop's past dialogues (a corpus): the teacher is shown 8"
    )
    evolve.add_argument(
        "--shots", type=int, help="and each training prompt and gate draft this many of them"
    )
    evolve.add_argument("--save", action="store_true", help="keep these settings")
    evolve.set_defaults(func=cmd_evolve)

    adapters = sub.add_parser("adapters", help="adapter versions: list, gate, promote, rollback")
    asub = adapters.add_subparsers(dest="adapters_cmd", required=True)
    asub.add_parser("list", help="every version with its status and gate result (JSON)")
    promote = asub.add_parser("promote", help="make a version active (hot in a running app)")
    promote.add_argument("version")
    gate = asub.add_parser(
        "gate",
        help="gate a version against the active one (probes, held-back pairs); promote it if it "
        "passes (exit 1 if not)",
    )
    gate.add_argument("version")
    gate.add_argument("--no-promote", action="store_true", help="only record the verdict")
    rollback = asub.add_parser(
        "rollback", help="back to the previous version, a given one, or base"
    )
    rollback.add_argument("version", nargs="?", default=None, help="VERSION or 'base'")
    adapters.set_defaults(func=cmd_adapters)

    train = sub.add_parser("train", help="fine-tune the end model on a corpus (child process)")
    train.add_argument("--corpus", help="a JDDC 2018 dir/.enc file, or JSONL pairs")
    train.add_argument("--format", default="jddc2018", choices=["jddc2018", "jsonl"])
    train.add_argument("--labels", help="teacher labels from `xiaoer label` (JSONL)")
    train.add_argument("--offset", type=int, default=0, help="skip the first N corpus pairs")
    train.add_argument("--limit", type=int, default=None, help="use N corpus pairs")
    train.add_argument(
        "--min-reply-chars",
        type=int,
        default=MIN_REPLY_CHARS,
        help="leave out shorter replies: they teach curt answers (0: keep all)",
    )
    train.add_argument("--method", default="lora", choices=METHODS)
    train.add_argument("--preset", default="quick", choices=sorted(PRESETS))
    train.add_argument("--steps", type=int, default=None)
    train.add_argument("--lr", type=float, default=None)
    train.add_argument("--seed", type=int, default=None)
    train.add_argument("--max-input", type=int, default=None, help="prompt tokens kept")
    train.add_argument("--snapshot-every", type=int, default=None, help="keep step checkpoints")
    train.add_argument("--name", default=None, help="version name suffix")
    train.add_argument("--out", default=None, help="output dir (default: data dir/adapters)")
    train.add_argument("--no-register", action="store_true", help="don't add it to the store")
    train.add_argument("--jsonl", action="store_true", help="progress as JSON lines on stdout")
    example_args(train, "for --shots", k=False)
    _shots_arg(train)
    train.set_defaults(func=cmd_train)

    onboard = sub.add_parser(
        "onboard", help="warm start: fine-tune the end model on the shop's past dialogues"
    )
    onboard.add_argument("--corpus", required=True, help="the history: a file or JDDC 2018 dir")
    onboard.add_argument(
        "--format",
        choices=["jddc2018", "jddc2019", "jsonl", "csv"],
        help="default: told by the path (as `xiaoer knowledge import`)",
    )
    onboard.add_argument(
        "--budget-tokens", type=int, help="tokens to train on (default 300,000); the ETA follows"
    )
    onboard.add_argument(
        "--holdout", type=int, default=200, help="pairs held back for the gate (whole chats)"
    )
    onboard.add_argument("--gate-items", type=int, help="held-back pairs the gate drafts")
    onboard.add_argument("--no-gate", action="store_true", help="register it, don't gate it")
    onboard.add_argument("--plan", action="store_true", help="only print the plan (JSON)")
    onboard.add_argument("--jsonl", action="store_true", help="progress as JSON lines on stdout")
    onboard.set_defaults(func=cmd_onboard)

    ev = sub.add_parser("eval", help="held-out replies vs the human agent's (JSON)")
    ev.add_argument("--pairs", nargs=2, required=True, metavar=("ENC", "DEC"))
    ev.add_argument("--offset", type=int, default=0)
    ev.add_argument("--limit", type=int, default=50)
    ev.add_argument("--adapter", default="active", help="VERSION, active, or none (base model)")
    ev.add_argument("--teacher", action="store_true", help="also the Final Score vs the teacher")
    ev.add_argument(
        "--compare",
        metavar="VERSION",
        help="also evaluate VERSION (or none: the base model) and report paired differences",
    )
    ev.add_argument(
        "--items", metavar="FILE", help="also every context's replies and scores (JSONL)"
    )
    ev.add_argument(
        "--against",
        metavar="ITEMS",
        help="also the paired differences from an earlier run's --items file (same contexts)",
    )
    ev.add_argument("--compact", action="store_true", help="one line of JSON")
    example_args(ev, "for --shots and shown to the teacher (as `xiaoer label`)")
    _shots_arg(ev)
    ev.set_defaults(func=cmd_eval)

    compare = sub.add_parser(
        "compare", help="paired differences of `xiaoer eval --items` files over splits and seeds"
    )
    compare.add_argument(
        "--base", nargs="+", required=True, metavar="ITEMS", help="one file per held-out split"
    )
    compare.add_argument(
        "--run",
        nargs="+",
        action="append",
        required=True,
        metavar="ITEMS",
        help="one run's files, split by split as --base (repeat for each run, e.g. each seed)",
    )
    compare.add_argument("--compact", action="store_true", help="one line of JSON")
    compare.set_defaults(func=cmd_compare)

    report = sub.add_parser(
        "report", help="the paper's Table VI, Fig. 3 heatmap and loss curves (source checkout)"
    )
    report.add_argument("--runs", nargs="+", required=True, help="training output dirs")
    report.add_argument("--out", required=True)
    report.add_argument("--probe", action="append", default=None, help="probe input (repeat)")
    report.add_argument("--no-teacher", action="store_true", help="match-only scores")
    example_args(report, "shown to the teacher")
    report.set_defaults(func=cmd_report)
