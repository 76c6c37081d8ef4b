"""The gate's general probes (the evolution settings' `probes`), drafted greedily by each adapter
version named, as the gate drafts them: what a warm start or a round does to bare messages
(docs/experiments/2026-12-07-warm-start.md, "Third run").

    XIAOER_HOME=DIR python tools/gate_probes.py none onboard-95bea41981

One JSON line per version and probe. `none` is the base model, `active` the active version.
"""

from __future__ import annotations

import json
import sys

from app.engine import weights
from app.evolve.cli import adapter_named
from app.evolve.data import TrainingExample
from app.evolve.gate import Served, draft_replies
from app.evolve.settings import EvolutionSettings
from app.store import open_store


def main(names: list[str]) -> None:
    probes = [TrainingExample((p,), "", "probe") for p in EvolutionSettings.load().probes]
    with open_store() as store:
        for name in names:
            served = Served.of(adapter_named(store, name))
            replies = draft_replies(served, probes, weights.DEFAULT_PROFILE)
            for probe, reply in zip(probes, replies, strict=True):
                line = {"version": name, "probe": probe.context[0], "reply": reply}
                print(json.dumps(line, ensure_ascii=False))


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        sys.exit(0 if len(sys.argv) > 1 else 2)
    main(sys.argv[1:])
