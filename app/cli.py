"""The `xiaoer` command line."""

from __future__ import annotations

import argparse
import json
import sys
import threading
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from app import __version__
from app.engine import weights
from app.engine.backend import GenerationConfig
from app.engine.conversation import EmptyMessageError, Turn, clean_for_model
from app.engine.end_model import EndModel, EngineConfig
from app.errors import XiaoerError
from app.evolve import cli as evolve_cli
from app.evolve.cli import example_args, example_bank_of
from app.knowledge import cli as knowledge_cli
from app.local_server import end_server
from app.store import cli as team_cli
from app.suggest import cli as suggest_cli

EXIT_USAGE = 2


class ProgressPrinter:
    """A one-line progress display on stderr for assembling or hashing a model."""

    def __init__(self, label: str) -> None:
        self.label = label
        self._last = -1
        self._step = 1 if sys.stderr.isatty() else 25  # logs get a few lines, not a hundred

    def __call__(self, done: int, total: int) -> None:
        percent = done * 100 // max(total, 1) // self._step * self._step
        if percent != self._last:
            self._last = percent
            end = "\n" if done >= total or self._step > 1 else ""
            print(
                f"\r{self.label}: {percent:3d}% of {total / 1e6:,.0f} MB", end=end, file=sys.stderr
            )


def _ensure_default_provisioned(spec: str) -> None:
    """First start: assemble and verify a built-in model instead of failing."""
    profile = weights.PROFILES.get(spec)
    if profile is not None and not weights.profile_path(profile).is_file():
        print(f"First start: assembling the embedded model '{spec}' …", file=sys.stderr)
        weights.provision(profile, ProgressPrinter(f"assembling {spec}"))


def _engine_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", default=weights.DEFAULT_PROFILE, help="profile, registered name or path"
    )
    parser.add_argument("--backend", default="llamacpp", choices=["llamacpp", "transformers"])
    parser.add_argument("--n-ctx", type=int, default=2048, help="context window in tokens")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--quantization", default="none", choices=["none", "8bit", "4bit"])
    parser.add_argument("--lang", default="zh", choices=["zh", "en"], help="system prompt language")
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--temperature", type=float, default=0.6)
    parser.add_argument("--top-p", type=float, default=0.8)
    parser.add_argument("--seed", type=int, default=None)


def _load_model(args: argparse.Namespace) -> EndModel:
    _ensure_default_provisioned(args.model)
    config = EngineConfig(
        model=args.model,
        backend=args.backend,
        n_ctx=args.n_ctx,
        device=args.device,
        quantization=args.quantization,
        lang=args.lang,
    )
    generation = GenerationConfig(
        temperature=args.temperature, top_p=args.top_p, max_tokens=args.max_tokens, seed=args.seed
    )
    return EndModel.load(config, generation)


def _print_fit_notes(model: EndModel) -> None:
    for note in model.last_fit.notes:
        print(f"note: {note}", file=sys.stderr)


# --- commands ----------------------------------------------------------------------------------

CHAT_HELP = "Type the customer's message. /reset starts over, /quit (or Ctrl-D, Ctrl-C) exits; Ctrl-C while a reply streams stops it."


def cmd_chat(args: argparse.Namespace) -> int:
    model = _load_model(args)
    conversation: list[Turn] = []
    print(f"Xiaoer {__version__} — end model '{args.model}'. {CHAT_HELP}")
    while True:
        try:
            line = input("顾客> ")
        except (EOFError, KeyboardInterrupt):
            print()
            return 0
        text = clean_for_model(line)
        if text in ("/quit", "/exit"):
            return 0
        if text == "/reset":
            conversation.clear()
            print("(new conversation)")
            continue
        if text == "/help":
            print(CHAT_HELP)
            continue
        if not text:
            print("(empty message: nothing to reply to)")
            continue
        conversation.append(Turn("customer", text))
        cancel = threading.Event()
        pieces: list[str] = []
        print("小二> ", end="", flush=True)
        try:
            for piece in model.stream_reply(conversation, cancel):
                print(piece, end="", flush=True)
                pieces.append(piece)
        except KeyboardInterrupt:
            cancel.set()
            print(" [stopped]", end="")
        print()
        _print_fit_notes(model)
        reply = "".join(pieces).strip()
        if reply:
            conversation.append(Turn("agent", reply))
        else:
            conversation.pop()


def cmd_draft(args: argparse.Namespace) -> int:
    raw: str | bytes = sys.stdin.buffer.read() if args.text == "-" else args.text
    text = clean_for_model(raw)
    if not text:
        print("error: the customer's message is empty: nothing to reply to", file=sys.stderr)
        return EXIT_USAGE
    model = _load_model(args)
    for piece in model.stream_reply([Turn("customer", text)]):
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    _print_fit_notes(model)
    return 0


def cmd_settings(args: argparse.Namespace) -> int:
    """Every section of the settings file, validated (JSON); an invalid one says what is wrong."""
    from app.settings import Settings

    print(json.dumps(Settings.load().as_json(), ensure_ascii=False, indent=2))
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    if args.models_cmd == "list":
        rows = weights.list_models()
        if args.json:
            print(json.dumps([asdict(r) for r in rows], ensure_ascii=False, indent=2))
        else:
            for r in rows:
                print(
                    f"{r.name:<16} {r.kind:<14} {r.status:<16} {r.path}\n{'':<16} {r.description}"
                )
        return 0
    if args.models_cmd == "provision":
        names = args.profiles or [weights.DEFAULT_PROFILE]
        for name in names:
            profile = _profile(name)
            path = weights.provision(profile, ProgressPrinter(f"assembling {name}"))
            print(f"{name}: verified, {path}")
        return 0
    if args.models_cmd == "verify":
        names = (
            args.profiles
            or [p.name for p in weights.PROFILES.values() if weights.profile_path(p).is_file()]
            or [weights.DEFAULT_PROFILE]
        )
        ok = True
        for name in names:
            result = weights.verify(_profile(name), ProgressPrinter(f"hashing {name}"))
            print(
                f"{result.name}: {'OK' if result.ok else 'FAILED'} — {result.detail} ({result.path})"
            )
            ok = ok and result.ok
        return 0 if ok else 1
    if args.models_cmd == "add":
        entry = weights.add_user_model(args.name, args.path, args.chat_format)
        print(f"registered '{entry.name}' → {entry.path}")
        return 0
    raise AssertionError(args.models_cmd)


def _profile(name: str) -> weights.ModelProfile:
    if name not in weights.PROFILES:
        raise weights.ModelError(
            f"Unknown profile '{name}'; built-in: {', '.join(weights.PROFILES)}"
        )
    return weights.PROFILES[name]


def cmd_score(args: argparse.Namespace) -> int:
    from app.scoring.registry import load_scorer

    scorer = load_scorer(args.similarity, args.matcher, args.alpha, args.theta)
    result = scorer.score(args.query, args.reply, args.cloud)
    report = {**asdict(result), "scorer_versions": scorer.versions}
    print(json.dumps(report, ensure_ascii=False))
    return 0


def cmd_redact(args: argparse.Namespace) -> int:
    """JSON lines in ({"text": …}), JSON lines out ({"redacted": …, "entities": […]}).

    A bad line gets an {"error": …} line in its place, so outputs stay aligned with inputs.
    With ``--eval FILE`` (a labelled set, app/cloud/redact_eval.py) it prints one JSON line:
    recall per shape, the strings that leaked and the share of clean messages left untouched.
    """
    if args.eval:
        from app.cloud.redact_eval import evaluate, read_labelled

        try:
            rows = read_labelled(Path(args.eval))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            print(json.dumps({"error": str(exc)}, ensure_ascii=False))
            return 1
        print(json.dumps(evaluate(rows), ensure_ascii=False))
        return 0
    from app.cloud.redact import redact_for_cloud
    from app.fsio import loads_json

    failed = False
    for number, raw in enumerate(sys.stdin.buffer, start=1):
        line = raw.decode("utf-8", errors="replace").strip()
        if not line:
            continue
        try:
            text = loads_json(line)["text"]
            if not isinstance(text, str):
                raise TypeError("'text' must be a string")
        except (ValueError, KeyError, TypeError) as exc:
            failed = True
            out: dict[str, Any] = {"error": f"line {number}: {exc.__class__.__name__}: {exc}"}
        else:
            result = redact_for_cloud(text)
            entities = [{"type": e.type, "start": e.start, "end": e.end} for e in result.entities]
            out = {"redacted": result.redacted, "entities": entities}
        print(json.dumps(out, ensure_ascii=False), flush=True)
    return 1 if failed else 0


def cmd_matcher(args: argparse.Namespace) -> int:
    from app.store import open_store

    store = open_store()
    if args.matcher_cmd == "train":
        from app.scoring import corpus
        from app.scoring.registry import train_and_register

        enc, dec = (Path(p) for p in args.pairs)
        pairs = corpus.dedupe_pairs(corpus.read_jddc2018(enc, dec))
        if args.limit:
            pairs = pairs[: args.limit]

        def progress(event: dict[str, Any]) -> None:
            print(json.dumps(event, ensure_ascii=False, default=str), file=sys.stderr, flush=True)

        version, metrics = train_and_register(pairs, store, not args.no_activate, progress)
        print(json.dumps({"version": version, "active": not args.no_activate, **metrics}))
        return 0
    if args.matcher_cmd == "split":
        from app.scoring import corpus

        enc, dec = (Path(p) for p in args.pairs)
        split = corpus.build_heldout_split(
            corpus.dedupe_pairs(corpus.read_jddc2018(enc, dec)), n_test=args.test, seed=args.seed
        )
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        with (
            (out / "train.enc").open("w", encoding="utf-8") as fe,
            (out / "train.dec").open("w", encoding="utf-8") as fd,
        ):
            for pair in split.train:
                fe.write(",".join(pair.context) + ",\n")
                fd.write(pair.reply + ",\n")
        n_groups = corpus.write_ecd(split.test, out / "heldout.ecd.txt")
        print(
            json.dumps(
                {"train_pairs": len(split.train), "heldout_contexts": n_groups, "out": str(out)}
            )
        )
        return 0
    if args.matcher_cmd == "activate":
        with store.session() as session:
            store.set_active_matcher(session, None if args.version == "base" else args.version)
        print(f"active matcher: {args.version}")
        return 0
    with store.session() as session:  # list
        rows = store.matcher_versions(session)
        listed = [
            {
                "version": r.version,
                "active": r.active,
                "kind": r.kind,
                "path": r.path,
                "metrics": r.metrics,
                "created": r.created_at.isoformat(),
            }
            for r in rows
        ]
    print(json.dumps(listed, ensure_ascii=False, indent=1))
    return 0


def cmd_eval_matcher(args: argparse.Namespace) -> int:
    from app.scoring import corpus
    from app.scoring.indomain import evaluate_ecd
    from app.scoring.registry import load_matching

    groups = corpus.read_ecd(Path(args.ecd))
    if args.limit:
        groups = groups[: args.limit]
    if args.matcher == "ranker":
        from app.store import open_store
        from app.suggest.evaluate import EvalSuggestError, ranker_selection

        with open_store() as store:
            try:
                score, version = ranker_selection(store)
            except EvalSuggestError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
            metrics = evaluate_ecd(score, groups)
        print(json.dumps({**metrics, "matcher": f"ranker:{version}"}))
        return 0
    matcher = load_matching(args.matcher)

    def score_pairs(context: list[str], candidates: list[str]) -> Any:
        return matcher.matching([context] * len(candidates), candidates)

    metrics = evaluate_ecd(score_pairs, groups)
    print(json.dumps({**metrics, "matcher": matcher.version}))
    return 0


def cmd_eval_guard(args: argparse.Namespace) -> int:
    from app.suggest.guard_eval import DEFAULT_CASE_FILES, evaluate_files

    paths = [Path(p) for p in args.cases] if args.cases else list(DEFAULT_CASE_FILES)
    print(json.dumps(evaluate_files(paths), ensure_ascii=False))
    return 0


def _teacher_service(args: argparse.Namespace, use_store: bool = True) -> Any:
    from app.cloud.providers import load_config, make_teacher
    from app.cloud.service import TeacherService
    from app.store import open_store

    teacher = make_teacher(load_config())
    examples = example_bank_of(args)
    store = open_store() if use_store else None
    cost = getattr(teacher, "cost", None)
    return TeacherService(
        teacher,
        store,
        examples,
        mode=args.mode,
        k=args.k,
        lang=args.lang,
        max_tokens=args.max_tokens,
        max_concurrency=getattr(args, "concurrency", 4),
        cost_fn=cost,
    )


def cmd_teacher(args: argparse.Namespace) -> int:
    from app.cloud import providers, secrets
    from app.local_server import teacher_server as server

    if args.teacher_cmd == "serve":
        how = "`xiaoer teacher stop` stops it" if args.detach else "Ctrl-C stops it"
        server.serve_forever(
            args.profile,
            args.port,
            n_threads=args.threads,
            progress=ProgressPrinter(f"assembling {args.profile}"),
            on_ready=lambda url: print(f"local teacher ready at {url} ({how})", flush=True),
            detach=args.detach,
        )
        return 0
    if args.teacher_cmd == "stop":
        stopped = server.stop_server()
        print(json.dumps(stopped))
        return 0 if stopped["stopped"] else 1
    if args.teacher_cmd == "ask":
        text = clean_for_model(args.text)
        if not text:
            print("error: the customer's message is empty", file=sys.stderr)
            return EXIT_USAGE
        from app.cloud.teacher import TeacherUnavailable

        service = _teacher_service(args)
        try:
            result = service.ask([Turn("customer", text)])
        except TeacherUnavailable as exc:
            raise TeacherUnavailable(
                f"{exc} (the question is kept in the outbox; `xiaoer teacher drain` sends it later)"
            ) from None
        print(result.reply, flush=True)
        if args.show_sent:
            print(json.dumps(result.sent.messages, ensure_ascii=False, indent=1), file=sys.stderr)
        # The teacher just answered: a good moment to send a few requests queued while it was not.
        drained = service.drain_outbox(limit=args.drain)
        if drained["done"] or drained["failed"]:
            print(f"outbox: {json.dumps(drained)}", file=sys.stderr)
        return 0
    if args.teacher_cmd == "drain":
        drained = _teacher_service(args).drain_outbox(limit=args.limit)
        print(json.dumps(drained))
        return 0
    if args.teacher_cmd == "config":
        current = providers.load_config()
        changes = {
            k: v
            for k, v in (
                ("provider", args.provider),
                ("model", args.model),
                ("base_url", args.base_url),
            )
            if v is not None
        }
        config = providers.TeacherConfig(**{**asdict(current), **changes})
        providers.save_config(config)
        print(json.dumps(asdict(config), ensure_ascii=False))
        return 0
    if args.teacher_cmd == "set-key":
        import getpass

        # Kept for one host: --base-url's, else the configured one when it is this provider's.
        current = providers.load_config()
        base_url = args.base_url or (
            current.base_url if current.provider == args.provider else None
        )
        host = secrets.key_host(args.provider, base_url or None)
        key = (
            getpass.getpass(f"API key for {args.provider} at {host} (not echoed): ")
            if sys.stdin.isatty()
            else sys.stdin.readline().strip()
        )
        secrets.set_api_key(args.provider, key, base_url or None)
        print(f"saved the {args.provider} key for {host} in the OS keyring")
        return 0
    if args.teacher_cmd == "status":
        from app.cloud.service import outbox_counts, usage_by_provider
        from app.store import open_store

        store = open_store()
        status = {
            "config": asdict(providers.load_config()),
            "local_server": server.running_server(),
            "keyring_warning": secrets.keyring_warning(),
            "usage": usage_by_provider(store),
            "outbox": outbox_counts(store),
        }
        print(json.dumps(status, ensure_ascii=False, indent=1))
        return 0
    raise AssertionError(args.teacher_cmd)


def cmd_label(args: argparse.Namespace) -> int:
    from app.cloud.label import label_corpus, read_tasks

    tasks = read_tasks(Path(args.corpus), args.format, args.limit)
    service = _teacher_service(args)
    report = label_corpus(service, tasks, Path(args.out), args.concurrency, args.rate)
    print(json.dumps({**asdict(report), "labels_per_min": round(report.per_minute, 2)}))
    return 0 if report.failed == 0 and report.stopped is None else 1


def _teacher_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--mode",
        default="retrieved",
        choices=["retrieved", "fixed"],
        help="example dialogues: the k most similar, or the paper's fixed N",
    )
    example_args(parser, "shown to the teacher")
    parser.add_argument("--lang", default="zh", choices=["zh", "en"])
    parser.add_argument(
        "--max-tokens", type=int, default=256, help="longest teacher reply, in tokens"
    )


def cmd_gui(args: argparse.Namespace) -> int:
    if args.smoke is not None:
        from app.ui.smoke import run_smoke

        return run_smoke(args.smoke)
    from app.ui.app import run

    return run()


def cmd_screenshots(args: argparse.Namespace) -> int:
    from app.ui.screenshots import take_screenshots

    written = take_screenshots(
        Path(args.dir), model=args.model, replay=args.replay, language=args.language
    )
    print(json.dumps([str(p) for p in written]))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from app.source_checkout import benchmarks_module

    result: dict[str, Any] = benchmarks_module("cli").run(args.target, args)
    print(json.dumps(result, ensure_ascii=False))
    return 0


# --- parser --------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xiaoer", description="Xiaoer (店小二) customer-service assistant"
    )
    parser.add_argument("--version", action="version", version=f"xiaoer {__version__}")
    sub = parser.add_subparsers(dest="command")

    gui = sub.add_parser("gui", help="open the desktop window (the default command)")
    gui.add_argument(
        "--smoke",
        nargs="?",
        const="可以选择快递吗？",
        default=None,
        metavar="TEXT",
        help="check the installation: open the window offscreen, draft and score one reply, exit",
    )
    gui.set_defaults(func=cmd_gui)

    shots = sub.add_parser("screenshots", help="save PNGs of the main windows (offscreen)")
    shots.add_argument("dir")
    shots.add_argument("--model", default=weights.DEFAULT_PROFILE)
    shots.add_argument("--replay", default=None, help="a JDDC 2019 chat file for the queue")
    shots.add_argument(
        "--language", default="en", choices=["en", "zh_CN"], help="the window's language"
    )
    shots.set_defaults(func=cmd_screenshots)

    chat = sub.add_parser("chat", help="interactive terminal chat with the end model")
    _engine_args(chat)
    chat.set_defaults(func=cmd_chat)

    draft = sub.add_parser("draft", help="draft one reply to a customer message ('-' reads stdin)")
    draft.add_argument("text")
    _engine_args(draft)
    draft.set_defaults(func=cmd_draft)

    settings = sub.add_parser(
        "settings", help="every setting in the one settings file, checked (JSON)"
    )
    settings.set_defaults(func=cmd_settings)

    mdl = sub.add_parser("models", help="list, provision, verify and register models")
    msub = mdl.add_subparsers(dest="models_cmd", required=True)
    lst = msub.add_parser("list", help="built-in profiles and registered models")
    lst.add_argument("--json", action="store_true")
    prov = msub.add_parser("provision", help="assemble and verify built-in models")
    prov.add_argument("profiles", nargs="*", metavar="PROFILE")
    ver = msub.add_parser("verify", help="re-hash provisioned models; exit 0 only if all match")
    ver.add_argument("profiles", nargs="*", metavar="PROFILE")
    add = msub.add_parser("add", help="register a GGUF file or HF model directory under a name")
    add.add_argument("name")
    add.add_argument("path")
    add.add_argument("--chat-format", default="auto", choices=["auto", "chatml", "chatglm3"])
    mdl.set_defaults(func=cmd_models)

    score = sub.add_parser("score", help="score a reply with the paper's formula (JSON)")
    score.add_argument("--query", required=True, help="the customer's message")
    score.add_argument("--reply", required=True, help="the end model's (or an agent's) reply")
    score.add_argument("--cloud", default=None, help="the cloud teacher's reply, if there is one")
    score.add_argument("--alpha", type=float, default=0.8)
    score.add_argument("--theta", type=float, default=0.2)
    score.add_argument("--similarity", default="use", help="use | st:PATH")
    score.add_argument("--matcher", default="active", help="active | base | VERSION | DIR")
    score.set_defaults(func=cmd_score)

    redact = sub.add_parser("redact", help="the privacy firewall: replace personal data")
    redact_mode = redact.add_mutually_exclusive_group(required=True)
    redact_mode.add_argument("--jsonl", action="store_true", help='stdin: {"text": …} lines')
    redact_mode.add_argument(
        "--eval",
        metavar="FILE",
        help='a labelled set ({"text": …, "pii": […]} lines): one JSON report',
    )
    redact.set_defaults(func=cmd_redact)

    matcher = sub.add_parser("matcher", help="the shop's in-domain reply matcher")
    msub2 = matcher.add_subparsers(dest="matcher_cmd", required=True)
    mtrain = msub2.add_parser("train", help="train on JDDC-2018-format pairs and make it active")
    mtrain.add_argument("--pairs", nargs=2, required=True, metavar=("ENC", "DEC"))
    mtrain.add_argument("--limit", type=int, default=None, help="use only the first N pairs")
    mtrain.add_argument("--no-activate", action="store_true")
    msplit = msub2.add_parser(
        "split",
        help="a held-out ECD split by conversation: OUT/train.enc|dec + OUT/heldout.ecd.txt",
    )
    msplit.add_argument("--pairs", nargs=2, required=True, metavar=("ENC", "DEC"))
    msplit.add_argument("--test", type=int, default=1000, help="held-out contexts")
    msplit.add_argument("--seed", type=int, default=13)
    msplit.add_argument("--out", required=True)
    msub2.add_parser("list", help="trained versions and which is active (JSON)")
    mact = msub2.add_parser("activate", help="make a version the active matcher ('base' = e5)")
    mact.add_argument("version")
    matcher.set_defaults(func=cmd_matcher)

    evalm = sub.add_parser("eval-matcher", help="R10@1/2/5 on an ECD-format file (JSON)")
    evalm.add_argument("--ecd", required=True)
    evalm.add_argument(
        "--matcher",
        default="active",
        help="active | base | use | VERSION | DIR, or ranker: the active suggestion ranker with "
        "this install's knowledge as evidence",
    )
    evalm.add_argument("--limit", type=int, default=None, help="first N contexts only")
    evalm.set_defaults(func=cmd_eval_matcher)

    evalg = sub.add_parser(
        "eval-guard", help="precision/recall of the commitment guard on labelled sets (JSON)"
    )
    evalg.add_argument(
        "--cases",
        action="append",
        help="a JSONL labelled set (repeatable; default: dev + held-out)",
    )
    evalg.set_defaults(func=cmd_eval_guard)

    teacher = sub.add_parser("teacher", help="the cloud teacher: local server, settings, keys")
    tsub = teacher.add_subparsers(dest="teacher_cmd", required=True)
    serve = tsub.add_parser("serve", help="serve the local teacher on 127.0.0.1 until Ctrl-C")
    serve.add_argument("--profile", default="qwen2.5-1.5b")
    serve.add_argument("--port", type=int, default=8765)
    serve.add_argument("--threads", type=int, default=None)
    serve.add_argument(
        "--detach", action="store_true", help="serve in the background; `teacher stop` ends it"
    )
    tsub.add_parser("stop", help="stop the local teacher started by `teacher serve` (JSON)")
    ask = tsub.add_parser(
        "ask", help="ask the configured teacher for a reply (through the firewall)"
    )
    ask.add_argument("text")
    ask.add_argument("--show-sent", action="store_true", help="print what was sent (stderr)")
    ask.add_argument(
        "--drain", type=int, default=3, help="then send up to N queued requests (0: none)"
    )
    _teacher_args(ask)
    drain = tsub.add_parser(
        "drain", help="send the requests queued while the teacher was unavailable (JSON)"
    )
    drain.add_argument("--limit", type=int, default=None, help="at most N requests")
    # A queued request keeps the examples and settings it was first built with.
    drain.set_defaults(examples=None, mode="retrieved", k=8, lang="zh", max_tokens=256)
    cfg = tsub.add_parser("config", help="choose the provider (local, gemini, openai-compatible)")
    cfg.add_argument("--provider", choices=["local", "gemini", "openai-compatible"])
    cfg.add_argument("--model")
    cfg.add_argument("--base-url")
    key = tsub.add_parser("set-key", help="store a provider's API key in the OS keyring (stdin)")
    key.add_argument("provider", choices=["gemini", "openai-compatible"])
    key.add_argument(
        "--base-url",
        help="the server the key is for (default: the configured one); a key is only ever sent "
        "to the host it was saved for",
    )
    tsub.add_parser("status", help="settings, local server, keyring, usage and cost (JSON)")
    teacher.set_defaults(func=cmd_teacher)

    label = sub.add_parser("label", help="label a corpus with the teacher (resumable)")
    label.add_argument("--corpus", required=True)
    label.add_argument("--format", required=True, choices=["jddc2018", "jddc2019", "ecd", "jsonl"])
    label.add_argument("--out", required=True)
    label.add_argument("--limit", type=int, default=None)
    label.add_argument("--concurrency", type=int, default=1)
    label.add_argument(
        "--rate", type=float, default=None, help="at most this many requests a minute"
    )
    _teacher_args(label)
    label.set_defaults(func=cmd_label)

    bench = sub.add_parser(
        "bench", help="benchmarks that print one JSON object (source checkout: benchmarks/)"
    )
    bench.add_argument(
        "target",
        choices=[
            "engine",
            "score",
            "teacher",
            "ui",
            "evolve",
            "onboard",
            "knowledge",
            "redact",
            "team",
        ],
    )
    bench.add_argument("--model", default=weights.DEFAULT_PROFILE)
    bench.add_argument("--runs", type=int, default=5, help="measured repetitions")
    bench.add_argument("--max-tokens", type=int, default=64, help="engine: reply length")
    bench.add_argument("--batch", type=int, default=256, help="score: pairs in the batch")
    bench.add_argument("--labels", type=int, default=8, help="teacher: labels per concurrency")
    bench.add_argument("--profile", default="qwen2.5-1.5b", help="teacher: the local teacher model")
    bench.add_argument("--labels-evolve", type=int, default=50, help="evolve: labels per round")
    bench.add_argument(
        "--steps", type=int, default=None, help="evolve, onboard: training steps (onboard: 6)"
    )
    bench.add_argument("--pairs", type=int, default=400, help="onboard: JDDC pairs read")
    bench.add_argument(
        "--entries", default="10000,100000,1000000", help="knowledge: index sizes, comma-separated"
    )
    bench.add_argument("--agents", type=int, default=20, help="team: simulated agents (processes)")
    bench.add_argument("--minutes", type=float, default=2.0, help="team: how long the agents draft")
    bench.add_argument(
        "--database-url", default=None, help="team: the shop's PostgreSQL (default: one of its own)"
    )
    bench.add_argument(
        "--no-evolve", action="store_true", help="team: no evolution round during the load"
    )
    bench.set_defaults(func=cmd_bench)
    evolve_cli.add_parsers(sub)
    knowledge_cli.add_parsers(sub)
    suggest_cli.add_parsers(sub)
    team_cli.add_parsers(sub)
    end_server.add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        # The app's main entry point: the desktop window (`xiaoer chat` is the terminal chat).
        args = parser.parse_args(["gui", *(argv or [])])
    try:
        result: int = args.func(args)
        return result
    except (XiaoerError, EmptyMessageError, ValueError, LookupError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
