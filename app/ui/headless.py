"""Driving the real window without a person: an offscreen Qt in a throw-away data dir, and an
event loop spun until something holds (``xiaoer gui --smoke``, ``xiaoer screenshots``, the UI
benchmark in ``benchmarks/ui.py``)."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from app import paths


@contextmanager
def headless_home() -> Iterator[Path]:
    """An offscreen Qt and a temporary data dir that shares the user's model files."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    models = paths.models_dir()
    saved = {k: os.environ.get(k) for k in (paths.HOME_ENV, paths.MODELS_ENV)}
    with tempfile.TemporaryDirectory(prefix="xiaoer-ui-") as home:
        os.environ[paths.HOME_ENV] = home
        os.environ[paths.MODELS_ENV] = str(models)
        try:
            yield Path(home)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def run_until(condition: Callable[[], bool], timeout_s: float) -> bool:
    """Spin the Qt event loop until ``condition()`` holds or the time is up."""
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    timer = QTimer()
    timer.setInterval(10)
    deadline = time.monotonic() + timeout_s

    def check() -> None:
        if condition() or time.monotonic() > deadline:
            loop.quit()

    timer.timeout.connect(check)
    timer.start()
    if not condition():
        loop.exec()
    timer.stop()
    return condition()
