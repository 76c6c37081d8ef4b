"""Shared serving for thin clients (issue #21): the remote end model drafts through llama.cpp's
OpenAI-compatible server (`xiaoer serve-end`), streamed and cancellable; the servers' command
lines (llama.cpp, vLLM) are pure functions checked here."""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from app.engine.backend import GenerationConfig
from app.engine.conversation import Turn
from app.engine.remote import (
    END_KEY_ENV,
    END_MODEL_ENV,
    END_URL_ENV,
    RemoteConfig,
    RemoteEndModel,
    estimate_tokens,
)
from app.engine.weights import ModelError
from app.evolve.promotion import sha256_of
from app.local_server.end_server import (
    BASE_NAME,
    EndServer,
    EndServerError,
    ServedAdapter,
    active_adapter,
    llamacpp_command,
    llamacpp_server,
    vllm_command,
    vllm_env,
    vllm_load_request,
)

# A real PostgreSQL server for the team-mode test (pg_url).
pytest_plugins = ("tests.postgres",)
ADAPTER = ServedAdapter("lora-20261207", Path("/a/adapter.gguf"), Path("/a/adapter"), rank=8)


# --- the command lines -------------------------------------------------------------------------


def test_llamacpp_serves_the_adapter_under_its_version_and_never_cuts_replies_short() -> None:
    cmd = llamacpp_command(Path("/m/base.gguf"), ADAPTER, host="0.0.0.0", port=9000, n_threads=2)
    assert cmd[1:3] == ["-m", "app.local_server.end_server"]
    flags = dict(zip(cmd[3::2], cmd[4::2], strict=True))
    assert flags["--model"] == "/m/base.gguf"
    assert flags["--lora_path"] == "/a/adapter.gguf"
    assert flags["--model_alias"] == "lora-20261207"
    assert flags["--interrupt_requests"] == "false"  # a waiting request must not end a stream
    assert (flags["--host"], flags["--port"], flags["--n_threads"]) == ("0.0.0.0", "9000", "2")
    assert "--api_key" not in flags  # the key travels in the environment only


def test_llamacpp_without_an_adapter_serves_the_base_and_refuses_a_non_lora_version() -> None:
    cmd = llamacpp_command(Path("/m/base.gguf"), None)
    assert cmd[cmd.index("--model_alias") + 1] == BASE_NAME
    assert "--lora_path" not in cmd
    with pytest.raises(EndServerError, match="LoRA"):
        llamacpp_command(Path("/m/base.gguf"), ServedAdapter("kto-1", None, Path("/k")))


def test_vllm_serves_every_adapter_by_name_and_loads_new_ones_at_run_time() -> None:
    second = ServedAdapter("lora-2", None, Path("/b/adapter"), rank=24)
    cmd = vllm_command(Path("/hf/base"), [ADAPTER, second], port=8001, n_ctx=4096)
    assert cmd[:3] == ["vllm", "serve", "/hf/base"]
    assert "--enable-lora" in cmd
    assert cmd[cmd.index("--served-model-name") + 1] == BASE_NAME
    assert cmd[cmd.index("--max-model-len") + 1] == "4096"
    assert cmd[cmd.index("--max-lora-rank") + 1] == "32"  # the bucket that holds rank 24
    start = cmd.index("--lora-modules") + 1
    assert cmd[start:] == ["lora-20261207=/a/adapter", "lora-2=/b/adapter"]
    env = vllm_env("k" * 40)
    assert env == {"VLLM_API_KEY": "k" * 40, "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True"}
    assert vllm_load_request(second) == (
        "/v1/load_lora_adapter",
        {"lora_name": "lora-2", "lora_path": "/b/adapter"},
    )


def test_vllm_without_adapters_has_no_lora_modules_and_needs_peft_dirs() -> None:
    cmd = vllm_command(Path("/hf/base"), [])
    assert "--lora-modules" not in cmd and "--max-lora-rank" not in cmd
    with pytest.raises(EndServerError, match="peft"):
        vllm_command(Path("/hf/base"), [ServedAdapter("x", Path("/x.gguf"), None)])


def test_serve_end_print_shows_the_vllm_command(capsys: pytest.CaptureFixture[str]) -> None:
    from app.cli import main

    assert main(["serve-end", "--engine", "vllm", "--print", "--port", "8123"]) == 0
    out = capsys.readouterr().out
    assert "vllm serve BASE_HF_DIR --served-model-name xiaoer-base" in out
    assert "--enable-lora" in out and "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True" in out


# --- the remote end model without a server -----------------------------------------------------


def test_remote_config_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(END_URL_ENV, raising=False)
    assert RemoteConfig.from_env() is None
    monkeypatch.setenv(END_URL_ENV, "http://gpu.shop.lan:8080/v1")
    monkeypatch.setenv(END_KEY_ENV, "secret")
    monkeypatch.setenv(END_MODEL_ENV, "lora-3")
    config = RemoteConfig.from_env(n_ctx=4096)
    assert config is not None
    assert (config.base_url, config.api_key, config.model, config.n_ctx) == (
        "http://gpu.shop.lan:8080/v1",
        "secret",
        "lora-3",
        4096,
    )
    assert "secret" not in repr(config)
    with pytest.raises(ValueError, match="http"):
        RemoteConfig("gpu.shop.lan:8080")


def test_token_estimate_counts_cjk_digits_and_emoji_at_least_once() -> None:
    assert estimate_tokens("可以选择快递吗？") == 8
    assert estimate_tokens("order 12345") == 3 + 6  # "order" is 5 letters → 3; 6 non-letters
    assert estimate_tokens("👍") == 4


def test_an_unreachable_server_is_a_model_error() -> None:
    from app.local_server.teacher_server import _free_port

    config = RemoteConfig(f"http://127.0.0.1:{_free_port()}/v1", "k", model="m", timeout_s=5)
    model = RemoteEndModel.connect(config)
    with pytest.raises(ModelError, match="end-model server"):
        list(model.stream_reply([Turn("customer", "在吗")]))


# --- against llama.cpp's server with the real 0.5B ------------------------------------------


@pytest.fixture(scope="module")
def lora_gguf(embedded_model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small LoRA in llama.cpp's GGUF form for the real model (random A, B near zero)."""
    from app.engine.gguf_lora import base_tensor_shapes, write_lora_gguf

    arch, shapes = base_tensor_shapes(embedded_model_path)
    rng = np.random.default_rng(3)
    pairs = {}
    for name in ("blk.0.attn_q.weight", "blk.0.attn_v.weight"):
        n_out, n_in = shapes[name]
        pairs[name] = (
            rng.normal(0, 0.01, (4, n_in)).astype(np.float32),
            rng.normal(0, 1e-4, (n_out, 4)).astype(np.float32),
        )
    return write_lora_gguf(tmp_path_factory.mktemp("lora") / "adapter.gguf", arch, 8.0, pairs)


@pytest.fixture(scope="module")
def end_server(
    embedded_model_path: Path, lora_gguf: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EndServer]:
    key = secrets.token_urlsafe(32)
    adapter = ServedAdapter("lora-test", lora_gguf, None)
    log = tmp_path_factory.mktemp("log") / "end-server.log"
    with llamacpp_server(embedded_model_path, adapter, key, log, n_threads=2) as server:
        server.start()
        yield server


def remote(server: EndServer, **overrides: object) -> RemoteEndModel:
    config = RemoteConfig(server.base_url, server.api_key, **overrides)  # type: ignore[arg-type]
    return RemoteEndModel.connect(config, GenerationConfig(temperature=0.0, max_tokens=48, seed=1))


@pytest.mark.slow
def test_a_thin_client_streams_a_draft_from_the_served_adapter(end_server: EndServer) -> None:
    model = remote(end_server)
    assert model.backend.served_models() == ["lora-test"]
    pieces = list(model.stream_reply([Turn("customer", "可以选择快递吗？")]))
    assert len(pieces) > 1  # streamed, not one block
    assert "".join(pieces).strip()
    assert model.backend.request_model() == "lora-test"
    assert model.last_fit.prompt_tokens > 0
    model.close()


@pytest.mark.slow
def test_cancelling_mid_stream_stops_the_draft_and_frees_the_server(
    end_server: EndServer,
) -> None:
    model = remote(end_server)
    model.generation = GenerationConfig(temperature=0.0, max_tokens=200, seed=1)
    cancel = threading.Event()
    pieces = []
    for piece in model.stream_reply([Turn("customer", "请详细介绍一下你们店的退换货流程")], cancel):
        pieces.append(piece)
        if len(pieces) == 3:
            cancel.set()
    assert len(pieces) == 3  # nothing after the cancel
    # The server noticed the closed request and stopped decoding for it (its log says so) …
    deadline = time.monotonic() + 120  # a wait for the server, not a timing: 2 busy cores
    while "Disconnected from client" not in end_server.log.read_text(errors="replace"):
        assert time.monotonic() < deadline, "the server went on decoding a cancelled draft"
        time.sleep(0.1)
    # … and answers the next draft in full.
    model.generation = GenerationConfig(temperature=0.0, max_tokens=16, seed=1)
    assert model.reply([Turn("customer", "在吗")])
    model.close()


@pytest.mark.slow
def test_the_server_refuses_a_wrong_key(end_server: EndServer) -> None:
    config = RemoteConfig(end_server.base_url, "wrong-" + "x" * 40, model="lora-test")
    model = RemoteEndModel.connect(config)
    with pytest.raises(ModelError, match=r"401|403|Authentication|Permission"):
        list(model.stream_reply([Turn("customer", "在吗")]))
    model.close()


@pytest.mark.slow
def test_two_agents_drafting_at_once_both_get_their_whole_reply(end_server: EndServer) -> None:
    """llama-cpp-python's server ends a stream early when another request waits, unless told
    not to (``--interrupt_requests false``): with a shop's agents sharing it, that would cut
    most drafts short."""
    conversation = [Turn("customer", "可以选择快递吗？")]
    alone = remote(end_server).reply(conversation)
    results: list[str] = []

    def draft() -> None:
        results.append(remote(end_server).reply(conversation))

    agents = [threading.Thread(target=draft) for _ in range(2)]
    for agent in agents:
        agent.start()
    for agent in agents:
        agent.join()
    assert results == [alone, alone]


def test_a_request_names_the_shops_adapter_once_the_server_serves_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """vLLM serves the base and each loaded adapter under its own name; the desktop asks for
    the shop's active version only when the server lists it, else for the base."""
    model = RemoteEndModel.connect(RemoteConfig("http://vllm.shop.lan:8000/v1", "k"))
    served = [BASE_NAME]
    monkeypatch.setattr(model.backend, "served_models", lambda: list(served))
    assert model.backend.request_model() == BASE_NAME
    model.set_adapter("lora-2")
    assert model.backend.request_model() == BASE_NAME  # not loaded on the server yet
    served.append("lora-2")
    model.set_adapter("lora-2")  # (the list is asked again after a change, else every 10 s)
    assert model.backend.request_model() == "lora-2"
    assert model.backend.adapters == ["lora-2"]
    model.set_adapter(None)
    assert model.backend.request_model() == BASE_NAME


@pytest.mark.slow
def test_the_hot_swap_of_a_thin_desktop_names_the_shops_active_version(
    end_server: EndServer, tmp_path: Path
) -> None:
    from app.evolve.promotion import apply_active_adapter
    from app.store import AdapterVersion, open_store

    model = remote(end_server)
    with open_store(f"sqlite:///{tmp_path / 'desktop.db'}") as store:
        assert apply_active_adapter(model, store) is None
        with store.session() as session:
            for version in ("lora-test", "lora-next"):
                session.add(
                    AdapterVersion(
                        version=version,
                        method="lora",
                        base_model="qwen2.5-0.5b",
                        path=str(tmp_path / version),
                        metrics={},
                        status="candidate",
                    )
                )
            session.flush()
            store.set_active_adapter(session, "lora-next")
        # No files here and no hash to check: a thin desktop's server holds the adapters.
        assert apply_active_adapter(model, store) == "lora-next"
        assert model.active_adapter == "lora-next"
        assert model.backend.request_model() == "lora-test"  # what the server serves now
        with store.session() as session:
            store.set_active_adapter(session, "lora-test")
        assert apply_active_adapter(model, store) == "lora-test"
        assert model.backend.request_model() == "lora-test"
        assert model.reply([Turn("customer", "在吗")])
    model.close()


def test_the_window_drafts_through_the_shops_server_when_xiaoer_end_url_is_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from app.ui.services import load_end_model
    from app.ui.settings import UiSettings

    settings = UiSettings(n_ctx=4096, prompt_lang="en")
    monkeypatch.setenv(END_URL_ENV, "http://end.shop.lan:8080/v1")
    monkeypatch.setenv(END_KEY_ENV, "k" * 40)
    model = load_end_model(settings, lambda done, total: None)  # no download, no request
    assert isinstance(model, RemoteEndModel)
    assert (model.backend.n_ctx, model.backend.config.base_url) == (4096, os.environ[END_URL_ENV])
    assert model.system.startswith("You are Xiaoer")  # the English system prompt
    model.close()


def test_the_server_machine_serves_the_adapter_the_worker_published(
    pg_url: str, tmp_path: Path
) -> None:
    """llama.cpp's server may run on another machine than the worker: it fetches the active
    version's GGUF from the shop's database and checks its hash."""
    from app.store import AdapterVersion, open_store
    from app.team import adapters

    worker_dir = tmp_path / "worker" / "lora-7"
    worker_dir.mkdir(parents=True)
    (worker_dir / "adapter.gguf").write_bytes(os.urandom(2048))
    with open_store(pg_url) as shop:
        assert active_adapter(shop) is None
        with shop.session() as session:
            session.add(
                AdapterVersion(
                    version="lora-7",
                    method="lora",
                    base_model="qwen2.5-0.5b",
                    path=str(worker_dir),
                    metrics={"sha256": sha256_of(worker_dir / "adapter.gguf")},
                    status="candidate",
                )
            )
        adapters.publish(shop, "lora-7")
        with shop.session() as session:
            adapters.activate(session, shop, "lora-7")
        (worker_dir / "adapter.gguf").unlink()  # not on this machine
        served = active_adapter(shop, root=tmp_path / "served")
    assert served is not None and served.version == "lora-7"
    assert served.gguf == tmp_path / "served" / "lora-7" / "adapter.gguf"
    with open_store(pg_url) as shop, shop.session() as session:
        row = shop.get_adapter(session, "lora-7")
        assert row is not None and sha256_of(served.gguf) == row.metrics["sha256"]
    assert llamacpp_command(Path("/m.gguf"), served)[-1] == str(served.gguf)
