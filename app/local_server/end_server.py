"""``xiaoer serve-end``: the shop's end model on one server, for thin desktops (team mode).

Two engines, both OpenAI-compatible (``POST /v1/chat/completions``, streamed), both with the
shop's active adapter:

- ``llamacpp`` (CPU; any machine): llama-cpp-python's server — the same app the local teacher
  runs (``app.local_server.llama_server.locked_down_app``: its key required, CORS off) — with the
  embedded 0.5B GGUF and the active adapter as a GGUF LoRA (``adapter.gguf``, the file the
  desktops load, checked against its recorded SHA-256). It serves one model under one name:
  the adapter's version, or ``xiaoer-base``. A new version means a restart (``--follow`` does it).
  ``--interrupt_requests false``: by default that server cuts a streaming reply short whenever
  another request waits, which with a shop's agents sharing it would be every draft.
- ``vllm`` (CUDA): ``vllm serve`` of the base model's HF weights (the dequantised copy the
  adapters were trained on) with ``--enable-lora``; every adapter version is served under its own
  name (``--lora-modules NAME=PATH``, the peft directory), so a request picks its adapter by
  ``model``; new versions are loaded while it runs (``POST /v1/load_lora_adapter``, allowed by
  ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True``). vLLM is not a dependency: the command is built here
  (a pure function, tested) and run when ``vllm`` is installed, else printed.

The key: ``$XIAOER_END_KEY`` (at least 32 characters; the desktops send the same), never on the
command line, which any user of the machine can read.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from app.errors import XiaoerError
from app.local_server.llama_server import ALLOWED_HOSTS, MIN_KEY_CHARS

END_KEY_ENV = "XIAOER_END_KEY"  # the same variable the desktops read (app.engine.remote)
SERVER_MODULE = "app.local_server.end_server"
BASE_NAME = "xiaoer-base"
"""The served name of the base model (no adapter)."""
VLLM_RUNTIME_LORA_ENV = {"VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True"}


class EndServerError(XiaoerError):
    """The end-model server could not start; the message says why."""


@dataclass(frozen=True)
class ServedAdapter:
    """The shop's active adapter as the servers load it."""

    version: str
    gguf: Path | None
    """llama.cpp's file (LoRA versions only)."""
    peft_dir: Path | None
    """vLLM's directory (a peft LoRA adapter)."""
    rank: int | None = None


# --- the command lines (pure) ----------------------------------------------------------------


def llamacpp_command(
    model: Path,
    adapter: ServedAdapter | None,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    n_ctx: int = 2048,
    n_threads: int | None = None,
    python: str = sys.executable,
) -> list[str]:
    """``python -m app.local_server.end_server …`` serving ``model`` with ``adapter``'s GGUF LoRA under
    the adapter's version (else ``xiaoer-base``). llama-cpp-python 0.3.x server flags."""
    if adapter is not None and adapter.gguf is None:
        raise EndServerError(
            f"Adapter {adapter.version} has no GGUF LoRA: llama.cpp serves LoRA versions only"
        )
    threads = str(n_threads or max(os.cpu_count() or 1, 1))
    cmd = [
        python,
        "-m",
        SERVER_MODULE,
        "--model",
        str(model),
        "--model_alias",
        adapter.version if adapter is not None else BASE_NAME,
        "--host",
        host,
        "--port",
        str(port),
        "--n_ctx",
        str(n_ctx),
        "--n_threads",
        threads,
        "--n_threads_batch",
        threads,
        "--interrupt_requests",
        "false",
        "--chat_format",
        "chatml",
        "--verbose",
        "false",
    ]
    if adapter is not None:
        cmd += ["--lora_path", str(adapter.gguf)]
    return cmd


def vllm_command(
    base_dir: Path,
    adapters: Sequence[ServedAdapter],
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    n_ctx: int = 2048,
    max_loras: int = 4,
    vllm: str = "vllm",
) -> list[str]:
    """``vllm serve`` of the base model's HF directory with every adapter under its version's
    name. The key is read by vLLM from ``$VLLM_API_KEY`` (``vllm_env``), not given here."""
    cmd = [
        vllm,
        "serve",
        str(base_dir),
        "--served-model-name",
        BASE_NAME,
        "--host",
        host,
        "--port",
        str(port),
        "--max-model-len",
        str(n_ctx),
        "--enable-lora",
        "--max-loras",
        str(max_loras),
    ]
    ranks = [a.rank for a in adapters if a.rank]
    if ranks:
        cmd += ["--max-lora-rank", str(_lora_rank_bucket(max(ranks)))]
    modules = []
    for adapter in adapters:
        if adapter.peft_dir is None:
            raise EndServerError(f"Adapter {adapter.version} has no peft directory for vLLM")
        modules.append(f"{adapter.version}={adapter.peft_dir}")
    if modules:
        cmd += ["--lora-modules", *modules]
    return cmd


def _lora_rank_bucket(rank: int) -> int:
    """vLLM accepts a few maximum ranks; the smallest that holds ``rank``."""
    for bucket in (8, 16, 32, 64, 128, 256, 320, 512):
        if rank <= bucket:
            return bucket
    raise EndServerError(f"vLLM serves LoRA ranks up to 512, not {rank}")


def vllm_env(api_key: str) -> dict[str, str]:
    """vLLM's environment: the key (``VLLM_API_KEY``) and run-time LoRA loading allowed."""
    return {"VLLM_API_KEY": api_key, **VLLM_RUNTIME_LORA_ENV}


def vllm_load_request(adapter: ServedAdapter) -> tuple[str, dict[str, str]]:
    """The request that loads a new version into a running vLLM: (path, JSON body)."""
    if adapter.peft_dir is None:
        raise EndServerError(f"Adapter {adapter.version} has no peft directory for vLLM")
    return "/v1/load_lora_adapter", {
        "lora_name": adapter.version,
        "lora_path": str(adapter.peft_dir),
    }


# --- the shop's adapter ------------------------------------------------------------------------


def active_adapter(store: Any, root: Path | None = None) -> ServedAdapter | None:
    """The store's active adapter, its GGUF checked against the recorded hash; None: the base.

    From the shop's database (team mode), a LoRA's GGUF is fetched from where the worker
    published it into ``root`` (default: the data dir's ``adapters/served``) and checked, so
    llama.cpp's server may run on any machine. The peft folder vLLM loads is not published: it
    is the worker's own (vLLM runs on the training machine, or reads its adapters folder).
    """
    from app.evolve.promotion import verified_served_path

    with store.session() as session:
        row = store.active_adapter(session)
        if row is None:
            return None
        version, method, peft_dir = row.version, row.method, Path(row.path) / "adapter"
        gguf = verified_served_path(row) if method == "lora" and not store.is_server else None
    if method == "lora" and store.is_server:
        from app.evolve.versions import adapters_dir
        from app.team import adapters

        _, folder = adapters.fetch(store, version, root or adapters_dir() / "served")
        gguf = folder / "adapter.gguf"
    has_peft = (peft_dir / "adapter_config.json").is_file()
    rank = json.loads((peft_dir / "adapter_config.json").read_text()).get("r") if has_peft else None
    return ServedAdapter(
        version,
        gguf,
        peft_dir if has_peft else None,
        int(rank) if isinstance(rank, int) else None,
    )


def api_key_from_env() -> str:
    key = os.environ.get(END_KEY_ENV, "")
    if len(key) < MIN_KEY_CHARS:
        raise EndServerError(
            f"Set {END_KEY_ENV} to a key of at least {MIN_KEY_CHARS} characters (e.g. "
            "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`); the desktops "
            "send the same key"
        )
    return key


# --- running llama.cpp's server ----------------------------------------------------------------


class EndServer:
    """llama.cpp's server as a child process, until ``stop()`` (or the ``with`` block ends)."""

    def __init__(self, command: list[str], api_key: str, base_url: str, log: Path) -> None:
        self.command = command
        self.api_key = api_key
        self.base_url = base_url
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 180.0) -> str:
        from app.local_server.teacher_server import _child_env, _tail, served_models

        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**_child_env(), END_KEY_ENV: self.api_key},
            )
        deadline = time.monotonic() + timeout_s
        while served_models(self.base_url, timeout=1.0, api_key=self.api_key) is None:
            code = self.process.poll()
            if code is not None or time.monotonic() > deadline:
                self.stop()
                raise EndServerError(
                    f"The end-model server {'exited with ' + str(code) if code is not None else 'did not answer'}"
                    f" while starting. Log {self.log}:\n{_tail(self.log)}"
                )
            time.sleep(0.25)
        return self.base_url

    def stop(self, grace_s: float = 10.0) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> EndServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def llamacpp_server(
    model: Path,
    adapter: ServedAdapter | None,
    api_key: str,
    log: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    n_ctx: int = 2048,
    n_threads: int | None = None,
) -> EndServer:
    """An EndServer for llama.cpp (``port`` 0: a free one)."""
    from app.local_server.teacher_server import _free_port

    port = port or _free_port()
    command = llamacpp_command(
        model, adapter, host=host, port=port, n_ctx=n_ctx, n_threads=n_threads
    )
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    return EndServer(command, api_key, f"http://{shown}:{port}/v1", log)


# --- python -m app.local_server.end_server: the llama.cpp app, keyed --------------------------------


def main(argv: list[str] | None = None) -> int:
    import uvicorn
    from llama_cpp.server.cli import add_args_from_model, parse_model_from_args
    from llama_cpp.server.settings import ModelSettings, ServerSettings, Settings

    from app.local_server.llama_server import locked_down_app

    api_key = os.environ.pop(END_KEY_ENV, "")
    if len(api_key) < MIN_KEY_CHARS:
        print(f"refusing to serve without a key in ${END_KEY_ENV}", file=sys.stderr)
        return 2
    parser = argparse.ArgumentParser(prog=f"python -m {SERVER_MODULE}")
    add_args_from_model(parser, Settings)
    args = parser.parse_args(argv)
    if args.api_key is not None:
        print(f"the key comes from ${END_KEY_ENV}, not --api_key", file=sys.stderr)
        return 2
    server_settings = parse_model_from_args(ServerSettings, args)
    model_settings = [parse_model_from_args(ModelSettings, args)]
    # On loopback, Host is checked against DNS rebinding as for the teacher; a shop server is
    # reached by whatever name the shop gives it, and its key is what guards it.
    hosts = ALLOWED_HOSTS if server_settings.host in ALLOWED_HOSTS else ["*"]
    app = locked_down_app(server_settings, model_settings, api_key, hosts)
    uvicorn.run(app, host=server_settings.host, port=server_settings.port)
    return 0


# --- xiaoer serve-end ------------------------------------------------------------------------


def add_parsers(sub: Any) -> None:
    serve = sub.add_parser(
        "serve-end",
        help="serve the end model with the shop's active adapter to thin desktops (team mode)",
    )
    serve.add_argument("--engine", choices=["llamacpp", "vllm"], default="llamacpp")
    serve.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to serve the shop's network")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--n-ctx", type=int, default=2048)
    serve.add_argument("--threads", type=int, default=None, help="llamacpp: CPU threads")
    serve.add_argument(
        "--database-url",
        default=None,
        help="where the active adapter is recorded (default: $XIAOER_DATABASE_URL, else solo)",
    )
    serve.add_argument(
        "--follow",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="check the shop's active adapter this often: llamacpp restarts with a new one, "
        "vllm loads it while running (0: never)",
    )
    serve.add_argument(
        "--print", action="store_true", help="print the command line and exit (no key needed)"
    )
    serve.set_defaults(func=cmd_serve_end)


def _store(url: str | None) -> Any:
    from app.store import open_store
    from app.store.db import shop_database_url

    return open_store(url or shop_database_url())


def cmd_serve_end(args: argparse.Namespace) -> int:
    from app.engine import weights

    with _store(args.database_url) as store:
        adapter = active_adapter(store)
    if args.engine == "vllm":
        from app.evolve.base import trainable_dir

        base = trainable_dir(weights.DEFAULT_PROFILE) if not args.print else Path("BASE_HF_DIR")
        command = vllm_command(
            base, [adapter] if adapter else [], host=args.host, port=args.port, n_ctx=args.n_ctx
        )
        vllm = shutil.which("vllm")
        if args.print or vllm is None:
            if not args.print:
                print("vllm is not installed here; its command line:", file=sys.stderr)
            env = " ".join(f"{k}={v}" for k, v in VLLM_RUNTIME_LORA_ENV.items())
            print(f"VLLM_API_KEY=${END_KEY_ENV} {env} " + " ".join(command))
            return 0 if args.print else 1
        key = api_key_from_env()
        process = subprocess.Popen(command, env={**os.environ, **vllm_env(key)})
        loaded = {adapter.version} if adapter else set()
        return _follow_vllm(process, args, key, loaded)
    model = weights.provision(weights.PROFILES[weights.DEFAULT_PROFILE])
    command = llamacpp_command(
        model, adapter, host=args.host, port=args.port, n_ctx=args.n_ctx, n_threads=args.threads
    )
    if args.print:
        print(" ".join(command))
        return 0
    from app import paths

    key = api_key_from_env()
    log = paths.data_dir() / "logs" / "end-server.log"
    while True:
        server = EndServer(command, key, f"http://{args.host}:{args.port}/v1", log)
        with server:
            server.start()
            served = adapter.version if adapter else BASE_NAME
            print(json.dumps({"serving": served, "url": server.base_url}), flush=True)
            adapter = _wait_for_change(server, args, adapter)
            if adapter is _EXITED:
                return 1
        command = llamacpp_command(
            model,
            adapter,
            host=args.host,
            port=args.port,
            n_ctx=args.n_ctx,
            n_threads=args.threads,
        )


_EXITED: Any = object()


def _follow_vllm(
    process: subprocess.Popen[bytes], args: argparse.Namespace, key: str, loaded: set[str]
) -> int:
    """Wait for vLLM to exit; with ``--follow``, load each newly active adapter into it while it
    runs (``POST /v1/load_lora_adapter``). Requests name the version; vLLM routes by name."""
    import urllib.request

    host = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
    while True:
        try:
            return process.wait(args.follow or None)
        except subprocess.TimeoutExpired:
            pass
        with _store(args.database_url) as store:
            now = active_adapter(store)
        if now is None or now.version in loaded:
            continue
        path, body = vllm_load_request(now)
        request = urllib.request.Request(
            f"http://{host}:{args.port}{path}",
            data=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=120):
                loaded.add(now.version)
            print(json.dumps({"loaded": now.version}), flush=True)
        except OSError as exc:  # not up yet, or refused: the next check tries again
            print(json.dumps({"load_failed": now.version, "error": str(exc)}), flush=True)


def _wait_for_change(
    server: EndServer, args: argparse.Namespace, adapter: ServedAdapter | None
) -> ServedAdapter | None:
    """Block until the server exits (returns _EXITED) or, with ``--follow``, the shop's active
    adapter changes (returns the new one)."""
    assert server.process is not None
    while True:
        try:
            server.process.wait(args.follow or None)
            return _EXITED  # type: ignore[no-any-return]
        except subprocess.TimeoutExpired:
            pass
        with _store(args.database_url) as store:
            now = active_adapter(store)
        if (now.version if now else None) != (adapter.version if adapter else None):
            return now


if __name__ == "__main__":
    sys.exit(main())
