"""Where Xiaoer keeps its files: one data dir, overridable with XIAOER_HOME."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "xiaoer"
HOME_ENV = "XIAOER_HOME"
MODELS_ENV = "XIAOER_MODELS_DIR"


def data_dir() -> Path:
    """The user's data dir (models, database, adapters, logs); created on first use."""
    override = os.environ.get(HOME_ENV)
    path = Path(override).expanduser() if override else Path(platformdirs.user_data_dir(APP_NAME))
    path.mkdir(parents=True, exist_ok=True)
    return path


def models_dir() -> Path:
    """Assembled model files; XIAOER_MODELS_DIR shares one copy between several data dirs."""
    override = os.environ.get(MODELS_ENV)
    path = Path(override).expanduser() if override else data_dir() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path
