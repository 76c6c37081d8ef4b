"""``xiaoer bench ui``: the longest event-loop stall while a draft streams and while training runs.

A 5 ms timer runs on the UI thread; a stall is how much later than due it fired. Three phases are
measured on the real window with the real end model, in a throw-away data dir (the user's
database is not touched; the model files are shared): idle (the baseline), drafting (customer
messages arriving, drafts streaming and being scored), and training: the evolution panel runs the
real trainer child (``xiaoer train --jsonl``, LoRA on the end model, on a few shop pairs) through
QProcess, reads its JSON lines and draws the live loss, for ``training_s`` seconds after its first
step, then stops it with SIGTERM. Where the trainer is not available, a stand-in child that keeps a
core busy and reports steps 100 times a second is used, and the result says so. Target: at most
50 ms in both.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from app.ui.headless import headless_home, run_until

TICK_MS = 5
QUESTIONS = [
    "今天下单什么时候发货？",
    "可以开发票吗？",
    "这个尺码偏大还是偏小？",
    "收到货不满意可以退吗？",
]


class StallMeter:
    """The largest delay of a 5 ms timer on the UI thread: how long the event loop was blocked."""

    def __init__(self) -> None:
        from PySide6.QtCore import Qt, QTimer

        self.timer = QTimer()
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self._tick)
        self.last: float | None = None
        self.max_stall_ms = 0.0
        self.ticks = 0

    def _tick(self) -> None:
        now = time.perf_counter()
        if self.last is not None:
            self.max_stall_ms = max(self.max_stall_ms, (now - self.last) * 1000 - TICK_MS)
        self.last = now
        self.ticks += 1

    def start(self) -> None:
        self.last, self.max_stall_ms, self.ticks = None, 0.0, 0
        self.timer.start()

    def stop(self) -> float:
        self.timer.stop()
        return round(self.max_stall_ms, 1)


def trainer_available() -> bool:
    result = subprocess.run(
        [sys.executable, "-m", "app", "train", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.returncode == 0 and "--jsonl" in result.stdout


PAIRS = [
    ("今天下单什么时候发货？", "亲，今天16点前下单当天发货哦。"),
    ("可以开发票吗？", "可以的亲，下单时填写发票抬头即可。"),
    ("这个尺码偏大还是偏小？", "亲，尺码标准，按平时的码数选就可以。"),
    ("收到货不满意可以退吗？", "支持七天无理由退货的，亲放心购买。"),
]


def trainer_command(home: Path, model: str) -> list[str]:
    """The real trainer: a LoRA run on a few shop pairs, reporting JSON lines."""
    data = home / "bench-pairs.jsonl"
    data.write_text(
        "".join(
            json.dumps({"context": [q], "reply": r}, ensure_ascii=False) + "\n" for q, r in PAIRS
        ),
        encoding="utf-8",
    )
    return [
        sys.executable,
        "-m",
        "app",
        "train",
        "--corpus",
        str(data),
        "--format",
        "jsonl",
        "--steps",
        "10000",
        "--jsonl",
        "--no-register",
        "--out",
        str(home / "bench-run"),
    ]


def stand_in_training_command(seconds: float) -> list[str]:
    """Run by path: the child needs only numpy, not this checkout on its ``sys.path``."""
    return [sys.executable, str(Path(__file__).with_name("stand_in_trainer.py")), str(seconds)]


def bench_ui(model: str, max_tokens: int, training_s: float = 20.0) -> dict[str, Any]:
    from app.store import open_store
    from app.ui.app import application
    from app.ui.channels import Incoming
    from app.ui.main_window import MainWindow
    from app.ui.services import AppContext
    from app.ui.settings import UiSettings

    with headless_home() as home:
        app = application()
        settings = UiSettings(model=model, max_tokens=max_tokens, label_weak_drafts=False)
        real_trainer = trainer_available()
        context = AppContext(open_store(), settings)
        context.evolve_command = (
            (lambda: trainer_command(home, model))
            if real_trainer
            else (lambda: stand_in_training_command(training_s))
        )
        window = MainWindow(context)
        window.show()
        meter = StallMeter()
        if not run_until(lambda: window.model_ready or window.banner.isVisible(), 600):
            raise RuntimeError("the end model did not load within 10 minutes")
        if not window.model_ready:
            raise RuntimeError(window.banner.label.text())
        # Warm the scorer outside the measurement (it loads its models on first use).
        window.services.scoring.submit(window.services.scorer)
        run_until(lambda: not window.services.scoring.busy, 300)

        meter.start()
        run_until(lambda: False, 2.0)
        idle = meter.stop()

        # Customers arrive and their chats open (widgets built, first drafts written and scored).
        meter.start()
        views = []
        for n, question in enumerate(QUESTIONS):
            conversation_id = window.receive(
                Incoming("manual", f"bench-{n}", f"bench-{n}", question)
            )
            assert conversation_id is not None
            view = window.open_conversation(conversation_id)
            assert view is not None
            views.append(view)
        for view in views:
            run_until(lambda v=view: v.last_score is not None, 300)  # type: ignore[misc,unused-ignore]
        arrival = meter.stop()

        # While drafts stream: each chat's draft is regenerated, streamed, recorded and scored.
        meter.start()
        drafted = 0
        started = time.perf_counter()
        for view in views:
            before = view.draft_id
            view.request_draft()
            run_until(
                lambda v=view, b=before: v.draft_id not in (None, b) and v.last_score is not None,  # type: ignore[misc,unused-ignore]
                300,
            )
            drafted += view.draft_id != before
        drafting_s = time.perf_counter() - started
        drafting = meter.stop()

        window.toggle_evolution()
        panel = window.evolution
        panel.evolve_now()
        run = panel.run
        assert run is not None

        def stepping() -> bool:
            return any(e.get("event") == "step" for e in run.events) or not run.running

        # The trainer loads torch and the base weights first; the stalls that matter are while
        # it trains, so the meter starts at its first step.
        run_until(stepping, 900)
        meter.start()
        run_until(lambda: not run.running, training_s)
        training = meter.stop()
        steps = sum(1 for e in run.events if e.get("event") == "step")
        panel.stop_and_wait()

        window._closing = True  # measured work is over: no question on close
        window.close()
        app.processEvents()
        context.store.close()
    return {
        "max_stall_ms_idle": idle,
        "max_stall_ms_arrival": arrival,
        "max_stall_ms_drafting": drafting,
        "max_stall_ms_training": training,
        "target_ms": 50,
        "drafts": drafted,
        "drafting_s": round(drafting_s, 1),
        "training_process": "xiaoer train --jsonl (LoRA)" if real_trainer else "stand-in",
        "training_s": training_s,
        "training_steps_seen": steps,
        "model": model,
    }


if __name__ == "__main__":
    print(json.dumps(bench_ui("qwen2.5-0.5b", 64)))
