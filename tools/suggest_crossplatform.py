"""Does a suggestion ranker trained on one shop's chats carry over to another platform's?

Response selection on JDDC 2019 (10 candidates, one true, ECD format): the sample's sessions are
split with `build_heldout_split`; the held-out groups are written as an ECD file (for
`xiaoer eval-matcher --ecd`), the other sessions are imported as that shop's knowledge, and each
group's candidates are scored by a given ranker (trained elsewhere, e.g. on JDDC 2018) through
`Suggestions.score_texts`, against plain USE cosine of the customer's last message and the reply.
Prints one JSON object: R10@1 per scorer with its 95 % interval, and paired differences to USE.

    python tools/suggest_crossplatform.py RANKER_DIR --chat ../shared/data/jddc2019/chat_0.1per.txt \
        --out /tmp/x2019 [--train-here] [--evidence DATA_DIR]
    xiaoer eval-matcher --ecd /tmp/x2019/heldout.ecd.txt --matcher use    # the same USE baseline
    xiaoer eval-matcher --ecd /tmp/x2019/heldout.ecd.txt --matcher base   # e5

docs/experiments/2026-12-04-grounded-suggestions.md has the figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

from app.knowledge import KnowledgeBase
from app.scoring import corpus
from app.scoring.scorers import USESimilarity
from app.store import open_store
from app.suggest.candidates import Suggester
from app.suggest.ranker import Ranker, load_stage_matcher
from app.suggest.train import train_ranker
from app.suggest.vectors import KnowledgeVectors


def _interval(values: np.ndarray) -> float:
    return round(1.96 * float(values.std(ddof=1)) / len(values) ** 0.5, 4)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ranker", type=Path, help="a ranker directory (ranker.json)")
    parser.add_argument("--chat", type=Path, required=True, help="a JDDC-2019-format chat file")
    parser.add_argument("--out", type=Path, required=True, help="folder for the ECD file and store")
    parser.add_argument("--test", type=int, default=500, help="held-out groups")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument(
        "--train-here", action="store_true", help="also train a ranker on this knowledge"
    )
    parser.add_argument(
        "--evidence",
        type=Path,
        help="a Xiaoer data dir whose knowledge is the evidence instead of the other sessions "
        "(the ranker's own shop: what `xiaoer eval-matcher --matcher ranker` uses)",
    )
    args = parser.parse_args()

    args.out.mkdir(parents=True, exist_ok=True)
    pairs = corpus.dedupe_pairs(corpus.read_jddc2019(args.chat))
    split = corpus.build_heldout_split(pairs, n_test=args.test, seed=args.seed)
    ecd = args.out / "heldout.ecd.txt"
    corpus.write_ecd(split.test, ecd)
    groups = corpus.read_ecd(ecd)  # as eval-matcher reads them
    print(f"{len(split.train)} knowledge pairs, {len(groups)} groups", file=sys.stderr)

    use = USESimilarity()
    db = (args.evidence or args.out) / "xiaoer.db"
    with open_store(f"sqlite:///{db}") as store:
        kb = KnowledgeBase(store, use)
        if args.evidence is None:
            kb.import_pairs("knowledge", split.train)  # idempotent on a second run
        vectors = KnowledgeVectors(kb)
        vectors.build_all()
        ranker = Ranker.load(args.ranker)
        rankers = {"ranker": ranker, "consensus_alone": Ranker.untrained()}
        if ranker.second is not None:
            rankers["ranker_first_stage_alone"] = dataclasses.replace(ranker, second=None)
        if args.train_here:
            here = train_ranker(kb, vectors)
            if here is not None:
                rankers["ranker_trained_here"] = here
        hits: dict[str, list[bool]] = {name: [] for name in [*rankers, "use_cosine"]}
        suggester = Suggester(kb, Ranker.untrained(), vectors)
        matchers = {name: load_stage_matcher(r, use.cached) for name, r in rankers.items()}
        for group in groups:
            candidates = list(group.candidates)
            for name, ranker in rankers.items():
                suggester.ranker, suggester.matcher = ranker, matchers[name]
                scores = suggester.suggest_context(group.context).score_texts(candidates)
                hits[name].append(int(np.argmax(scores)) == group.answer)
            cosine = use.similarity([group.context[-1]] * len(candidates), candidates)
            hits["use_cosine"].append(int(np.argmax(cosine)) == group.answer)
    report: dict[str, object] = {"n": len(groups)}
    base = np.array(hits["use_cosine"], float)
    for name, values in hits.items():
        x = np.array(values, float)
        row: dict[str, float] = {"r10_at_1": round(float(x.mean()), 4), "ci95": _interval(x)}
        if name != "use_cosine":
            row["minus_use_cosine"] = round(float((x - base).mean()), 4)
            row["minus_use_cosine_ci95"] = _interval(x - base)
        report[name] = row
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
