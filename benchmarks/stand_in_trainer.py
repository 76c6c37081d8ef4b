"""A busy child reporting steps the way ``xiaoer evolve --jsonl`` does (the contract's shape), for
``xiaoer bench ui`` where the real trainer is not installed: ``python stand_in_trainer.py SECONDS``.
"""

from __future__ import annotations

import json
import sys
import time


def stand_in_training(seconds: float) -> None:
    """Keeps a core busy and reports 100 steps a second for ``seconds``."""
    import numpy as np

    total = int(seconds * 100)
    a = np.random.default_rng(0).normal(size=(160, 160))
    print(json.dumps({"event": "stage", "stage": "train"}), flush=True)
    start = time.perf_counter()
    for step in range(1, total + 1):
        deadline = start + step / 100
        while time.perf_counter() < deadline:
            a = np.tanh(a @ a.T / 160)
        elapsed = time.perf_counter() - start
        event = {
            "event": "step",
            "step": step,
            "total": total,
            "loss": 2.0 / (1 + step / 50),
            "lr": 2e-4,
            "tok_s": 900.0,
            "eta_s": elapsed / step * (total - step),
        }
        print(json.dumps(event), flush=True)
    print(json.dumps({"event": "done", "version": None, "promoted": False}), flush=True)


if __name__ == "__main__":
    stand_in_training(float(sys.argv[1]))
