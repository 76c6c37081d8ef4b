"""One evolution round on top of the active adapter, its labels the human agents' replies of
JDDC 2018 pairs standing in for a strong teacher: the evolution curve of issue 19
(docs/experiments/2026-12-07-warm-start.md, "A round on top of the warm start").

    XIAOER_HOME=DIR python tools/evolution_round.py --pairs ENC DEC --first 9400 --start 9600 --n 200

Labels are pairs [start, start + n) (new) and [first, start) (earlier rounds' labels, replayed as
the store's older labels are); the round trains as *Evolve now* does (`labels.training_set`,
`Evolution.train`, one pass), is exported for llama.cpp and printed as JSON. Promote it with
`xiaoer adapters promote` and draft with `xiaoer eval --adapter`.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from app.evolve import labels as labelling
from app.evolve.data import TrainingExample
from app.evolve.loop import Evolution
from app.evolve.settings import EvolutionSettings
from app.scoring import corpus
from app.store import open_store
from app.store.models import utcnow


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", nargs=2, required=True, metavar=("ENC", "DEC"))
    parser.add_argument("--first", type=int, required=True, help="the first round's first pair")
    parser.add_argument("--start", type=int, required=True, help="this round's first pair")
    parser.add_argument("--n", type=int, default=200, help="this round's pairs")
    args = parser.parse_args()
    pairs = list(corpus.read_jddc2018(Path(args.pairs[0]), Path(args.pairs[1])))
    now, then = utcnow(), datetime(2000, 1, 1, tzinfo=UTC)  # then: before any adapter
    labels = [
        (i, now if i >= args.start else then, TrainingExample(tuple(p.context), p.reply, "teacher"))
        for i, p in enumerate(pairs[: args.start + args.n])
        if i >= args.first
    ]
    store = open_store()
    settings = replace(EvolutionSettings.load(), holdback=0)
    examples, _ = labelling.training_set(store, settings, labels)
    settings = replace(settings, steps=len(examples))  # one pass
    with store.session() as session:
        active = store.active_adapter(session)
        parent = active.version if active else None
    print(json.dumps({"labels": len(labels), "examples": len(examples), "parent": parent}))
    evo = Evolution(store, settings)
    version = evo.train(examples, progress=lambda _event: None)
    evo.export(version)
    print(json.dumps({"version": version}))


if __name__ == "__main__":
    main()
