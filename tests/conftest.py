"""Shared fixtures: a temp data dir per test; the real embedded model provisioned once per session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from app import paths

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One models dir for the whole session, so the 491 MB model is assembled once."""
    path = tmp_path_factory.mktemp("models")
    os.environ[paths.MODELS_ENV] = str(path)
    return path


@pytest.fixture(autouse=True)
def data_home(tmp_path: Path, models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv(paths.HOME_ENV, str(home))
    monkeypatch.setenv(paths.MODELS_ENV, str(models_dir))
    return home


@pytest.fixture(scope="session")
def embedded_model_path(models_dir: Path) -> Path:
    """The real Qwen2.5 0.5B GGUF, assembled from the installed part packages and verified."""
    from app.engine import models

    os.environ[paths.MODELS_ENV] = str(models_dir)
    return models.provision(models.PROFILES[models.DEFAULT_PROFILE])


@pytest.fixture(scope="session")
def end_model(embedded_model_path: Path) -> Iterator[object]:
    """The real end model on llama.cpp, loaded once (tests that switch adapters switch back)."""
    from app.engine import EndModel, EngineConfig

    model = EndModel.load(EngineConfig())
    yield model
    model.close()


@pytest.fixture(scope="session")
def tiny_qwen_dir(embedded_model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Qwen2 model with the real Qwen tokenizer: real transformers and peft, fast."""
    torch = pytest.importorskip("torch", reason="the transformers backend needs the [hf] extra")
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    out = tmp_path_factory.mktemp("tiny-qwen")
    tokenizer = AutoTokenizer.from_pretrained(
        str(embedded_model_path.parent), gguf_file=embedded_model_path.name
    )
    tokenizer.save_pretrained(out)
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        initializer_range=0.5,
    )
    Qwen2ForCausalLM(config).save_pretrained(out)
    return out


def terminal_sigint() -> None:
    """``preexec_fn`` for children a test stops with Ctrl-C (SIGINT), as a terminal would.

    A suite started in the background (``nohup``, ``&``) ignores SIGINT, and children inherit
    that; a Python child then never sees KeyboardInterrupt.
    """
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def cli_env(models_dir: Path, home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env[paths.HOME_ENV] = str(home)
    env[paths.MODELS_ENV] = str(models_dir)
    return env
