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


def cli_env(models_dir: Path, home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env[paths.HOME_ENV] = str(home)
    env[paths.MODELS_ENV] = str(models_dir)
    return env
