"""The trainer as a child process (``python -m app.evolve.train``), read through its JSON lines.

A crash or an out-of-memory kill there can't take the app down, and its memory is returned when it
exits. Setting a cancel event stops it with SIGTERM; it checkpoints, and the same config resumes.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.evolve.config import TrainConfig
from app.store.models import RunStatus

Progress = Callable[[dict[str, Any]], None]
"""Receives one progress event: the trainer's JSON lines and the round's stage events."""
log = logging.getLogger(__name__)

STDERR_TAIL_LINES = 50
"""The trainer's last stderr lines kept for the error and the log (a traceback, the OOM note)."""
KILLED_EXIT_CODES = (-9, 128 + 9)
"""SIGKILL as Popen reports it, and as a shell does: what the kernel's out-of-memory killer sends."""


def run_training(
    config_path: Path, progress: Progress | None = None, cancel: threading.Event | None = None
) -> tuple[RunStatus, dict[str, Any]]:
    """Run ``python -m app.evolve.train`` as a child process, forwarding its JSON lines.

    Returns (succeeded | failed | cancelled, the final event). Setting ``cancel`` sends SIGTERM;
    the child checkpoints and exits, and the same config resumes later. A failure's event carries
    the child's last stderr lines (``stderr``; the last few in ``message`` too) and is logged and
    appended to the run's ``train.jsonl``; a SIGKILL is reported as the out-of-memory kill it
    nearly always is.
    """
    child = subprocess.Popen(
        [sys.executable, "-m", "app.evolve.train", "--config", str(config_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        errors="replace",
    )
    tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
    assert child.stderr is not None
    stderr = child.stderr  # drained on its own thread, so a chatty child never blocks on it
    reader = threading.Thread(
        target=lambda: tail.extend(line.rstrip() for line in stderr if line.strip()),
        name="xiaoer-train-stderr",
        daemon=True,
    )
    reader.start()
    watcher = None
    if cancel is not None:

        def watch() -> None:
            while child.poll() is None:
                if cancel.wait(0.2):
                    child.terminate()
                    return

        watcher = threading.Thread(target=watch, name="xiaoer-train-cancel", daemon=True)
        watcher.start()
    last: dict[str, Any] = {}
    assert child.stdout is not None
    for line in child.stdout:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        last = event
        if progress:
            progress(event)
    code = child.wait()
    reader.join(timeout=5)
    if code == 0 and last.get("event") == "done":
        return "succeeded", last
    if last.get("event") == "cancelled" or (cancel is not None and cancel.is_set()):
        return "cancelled", last
    failure = _training_failure(code, last, list(tail))
    _log_failure(config_path, failure)
    return "failed", failure


def _training_failure(code: int, last: dict[str, Any], stderr: list[str]) -> dict[str, Any]:
    if code in KILLED_EXIT_CODES:
        message = (
            f"the training process was killed, most likely out of memory (exit code {code}): "
            "close other programs, or train with a smaller batch or shorter inputs"
        )
    elif last.get("event") == "error":
        message = str(last.get("message", ""))
    else:
        message = f"the training process exited with code {code}"
    if stderr:
        message += " — its last output: " + " | ".join(stderr[-5:])
    return {"event": "error", "message": message, "exit_code": code, "stderr": stderr}


def _log_failure(config_path: Path, failure: dict[str, Any]) -> None:
    """Into the app's log and the run's own ``train.jsonl`` (when the config names the run)."""
    log.warning("training failed: %s", failure["message"])
    for line in failure["stderr"]:
        log.warning("trainer stderr: %s", line)
    try:
        run_log = Path(TrainConfig.load(config_path).output_dir) / "train.jsonl"
        with run_log.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(failure, ensure_ascii=False) + "\n")
    except (OSError, ValueError, TypeError):
        pass  # no readable config, no run folder: the app's log has it
