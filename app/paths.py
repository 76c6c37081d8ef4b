"""Where Xiaoer keeps its files: one data dir, overridable with XIAOER_HOME."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "xiaoer"
HOME_ENV = "XIAOER_HOME"
MODELS_ENV = "XIAOER_MODELS_DIR"


PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """``path`` created if needed, readable by this user only (POSIX): it holds customers'
    messages. A folder of ours found open to others is closed (one of another user is left)."""
    path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    _tighten(path, PRIVATE_DIR_MODE)
    return path


def private_file(path: Path) -> Path:
    """``path`` (created empty if missing) readable and writable by this user only (POSIX)."""
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE_MODE))
    _tighten(path, PRIVATE_FILE_MODE)
    return path


def _tighten(path: Path, mode: int) -> None:
    if os.name != "posix":
        return  # Windows: the user's profile folders are private already
    st = path.stat()
    if st.st_mode & 0o777 & ~mode and st.st_uid == os.getuid():
        os.chmod(path, mode)


def data_dir() -> Path:
    """The user's data dir (models, database, adapters, logs); created on first use, private."""
    override = os.environ.get(HOME_ENV)
    path = Path(override).expanduser() if override else Path(platformdirs.user_data_dir(APP_NAME))
    return private_dir(path)


def logs_dir() -> Path:
    """The app's logs (they quote customers' messages): private like the data dir."""
    return private_dir(data_dir() / "logs")


def models_dir() -> Path:
    """Assembled model files; XIAOER_MODELS_DIR shares one copy between several data dirs."""
    override = os.environ.get(MODELS_ENV)
    path = Path(override).expanduser() if override else data_dir() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path
