"""Does a cross model trained on the shop's pairs, with hard negatives, improve the first suggestion?

The cross model is the in-domain matcher's network (USE vectors of both sides, character n-grams,
and reply characters attending over the context's: `MatcherNet`). It is trained listwise on the
ranker's own best `--pool` candidates for sampled past dialogues of the knowledge (their own
conversation left out, as the ranker trains): the hardest negatives there are, and a graded
target, softmax(similarity to the agent's reply / tau). Its output is learned as a correction
to the ranker: softmax(a · z(ranker score) + f(context, candidate)). `--init DIR` starts from a
trained matcher, `--matcher-hard-negatives K` trains one on the knowledge first; either way
that matcher is measured as it is too.

Held out: the grounded candidates the app ranks for each context of the `--dev` and `--test`
pairs (conversations not in the knowledge), re-ranked by z(score) + w · z(f). w is chosen on dev
and measured once on test, paired with the ranker's own first suggestion. Prints one JSON object.

    python tools/suggest_crossmodel.py --knowledge /tmp/home \
        --pairs ../shared/data/jddc2018/train.enc ../shared/data/jddc2018/train.dec \
        --dev 9400 --test 9000 --limit 400 --matcher-hard-negatives 3

A study tool: it reaches into the suggester's and the matcher trainer's internals on purpose.
docs/experiments/2026-12-04-grounded-suggestions.md has the figures.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from app.knowledge import KnowledgeBase
from app.scoring import corpus
from app.scoring.corpus import DialoguePair
from app.scoring.matcher_features import (
    MatcherTrainConfig,
    default_encoder,
    overlap_from_shingles,
    prepare_context,
    prepare_reply,
    text_shingles,
)
from app.scoring.matcher_train import MatcherNet, _Features, train_matcher
from app.scoring.scorers import USESimilarity
from app.store import open_store
from app.suggest.candidates import GUARD_CHECKED, Suggester, _TurnState
from app.suggest.evaluate import drop_overlapping, knowledge_keys
from app.suggest.train import held_out_turns

WEIGHTS = (0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0)
BATCH = 32

Group = dict[str, Any]


def _group(state: _TurnState, order: list[int], truth: np.ndarray, scores: np.ndarray) -> Group:
    answers = np.stack([state.candidates[i].answer_vector for i in order])
    return {
        "context": list(state.context),
        "texts": [state.candidates[i].filled_text for i in order],
        "score": scores[order],
        "sims": np.clip(answers @ truth, 0.0, 1.0),
    }


def knowledge_groups(
    kb: KnowledgeBase, sug: Suggester, n: int, pool: int, seed: int
) -> list[Group]:
    vectors = sug.vectors
    entries = [e for e in kb.entries() if e.kind == "dialogue" and e.id in vectors]
    entries = random.Random(seed).sample(entries, min(n, len(entries)))
    out = []
    for entry, state, truth in held_out_turns(kb, vectors, entries, sug.ranker):
        rows, _ = state._features(state.candidates)
        scores = sug.ranker.score(rows)
        order = [int(j) for j in np.argsort(-scores, kind="stable")[:pool]]
        out.append({**_group(state, order, truth, scores), "conv": vectors.conversation(entry.id)})
    return out


def heldout_groups(kb: KnowledgeBase, sug: Suggester, pairs: list[Any], pool: int) -> list[Group]:
    """The grounded candidates the app ranks (the guard's flagged ones go below them), best first."""
    truths = kb.encode([p.reply for p in pairs])
    out = []
    for pair, truth in zip(pairs, truths, strict=True):
        state = sug.suggest_context(pair.context)._state
        if state is None or not state.candidates:
            continue
        rows, _ = state._features(state.candidates)
        scores = sug.ranker.score(rows)
        order = [int(j) for j in np.argsort(-scores, kind="stable")[:GUARD_CHECKED]]
        grounded = [j for j in order if not any(state._check(state.candidates[j]))][:pool]
        if grounded:
            out.append(_group(state, grounded, truth, scores))
    return out


class CrossModel:
    def __init__(self, groups: list[Group], init: str | None) -> None:
        self.config = MatcherTrainConfig()
        for g in groups:
            g["last"], g["ctx"] = prepare_context(g["context"], self.config)
            g["reps"] = [prepare_reply(t, self.config) for t in g["texts"]]
            s = np.asarray(g["score"], dtype=np.float64)
            g["z"] = (s - s.mean()) / (s.std() + 1e-9)
        texts = list(dict.fromkeys(t for g in groups for t in (g["last"], g["ctx"], *g["reps"])))
        self.feats = _Features(texts, self.config, default_encoder(2))
        self.shingles = [text_shingles(t) for t in texts]
        self.net = MatcherNet(self.config)
        if init:
            weights = np.load(Path(init) / "matcher.npz")
            self.net.load_state_dict(
                {k: torch.from_numpy(weights[k]) for k in self.net.state_dict()}
            )

    def forward(self, groups: list[Group]) -> torch.Tensor:
        """Logits (groups, longest pool); padding is -1e4."""
        ix, feats, net = self.feats.index, self.feats, self.net
        last = [ix[g["last"]] for g in groups]
        ctx = [ix[g["ctx"]] for g in groups]
        u = net.encode_contexts(
            feats.sentences(last), feats.sentences(ctx), [feats.bag(last), feats.bag(ctx)]
        )
        flat = [ix[r] for g in groups for r in g["reps"]]
        v = net.encode_replies(feats.sentences(flat), feats.bag(flat))
        k = max(len(g["reps"]) for g in groups)
        index = torch.zeros(len(groups), k, dtype=torch.long)
        mask = torch.zeros(len(groups), k, dtype=torch.bool)
        overlap = torch.zeros(len(groups), k, 6)
        n = 0
        for i, g in enumerate(groups):
            for j, reply in enumerate(g["reps"]):
                index[i, j], mask[i, j] = n, True
                n += 1
                overlap[i, j] = torch.tensor(
                    overlap_from_shingles(
                        self.shingles[ix[g["last"]]], self.shingles[ix[g["ctx"]]],
                        self.shingles[ix[reply]], len(g["last"]), len(reply),
                    )
                )  # fmt: skip
        inter = net.interaction
        ctx_ids, rep_ids = feats.padded_chars(ctx), feats.padded_chars(flat)
        ctx_seq, rep_seq = inter.sequence(ctx_ids), inter.sequence(rep_ids)
        row = torch.arange(len(groups)).repeat_interleave(k)
        at = index.reshape(-1)
        chars = inter(ctx_seq[row], ctx_ids[row], rep_seq[at], rep_ids[at]).reshape(
            len(groups), k, -1
        )
        return net.score(u, v[index], overlap, chars).masked_fill(~mask, -1e4)

    def outputs(self, groups: list[Group]) -> list[np.ndarray]:
        self.net.eval()
        out = []
        with torch.no_grad():
            for start in range(0, len(groups), 64):
                batch = groups[start : start + 64]
                f = self.forward(batch)
                out += [
                    f[i, : len(g["reps"])].numpy().astype(np.float64) for i, g in enumerate(batch)
                ]
        return out

    def train(self, groups: list[Group], epochs: int, tau: float, lr: float, seed: int) -> float:
        scale = torch.nn.Parameter(torch.tensor(1.0))
        optimiser = torch.optim.AdamW([*self.net.parameters(), scale], lr=lr, weight_decay=1e-2)
        rng = random.Random(seed)
        loss_value = float("nan")
        for _ in range(epochs):
            self.net.train()
            rng.shuffle(groups)
            for start in range(0, len(groups), BATCH):
                batch = groups[start : start + BATCH]
                k = max(len(g["reps"]) for g in batch)
                z = torch.zeros(len(batch), k)
                sims = torch.full((len(batch), k), -1e4)
                for i, g in enumerate(batch):
                    z[i, : len(g["z"])] = torch.tensor(g["z"], dtype=torch.float32)
                    sims[i, : len(g["sims"])] = torch.tensor(g["sims"], dtype=torch.float32)
                logits = self.forward(batch)
                logits = torch.where(logits > -1e3, scale * z + logits, logits)
                loss = -(F.softmax(sims / tau, -1) * F.log_softmax(logits, -1)).sum(-1).mean()
                optimiser.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.net.parameters(), 5.0)
                optimiser.step()
                loss_value = float(loss.item())
        return loss_value


def picks(groups: list[Group], outputs: list[np.ndarray], w: float) -> np.ndarray:
    out = []
    for g, f in zip(groups, outputs, strict=True):
        fz = (f - f.mean()) / (f.std() + 1e-9)
        out.append(g["sims"][int(np.argmax(g["z"] + w * fz))])
    return np.array(out)


def paired(new: np.ndarray, base: np.ndarray) -> dict[str, float]:
    d = new - base
    return {
        "mean": round(float(new.mean()), 4),
        "minus_ranker": round(float(d.mean()), 4),
        "ci95": round(1.96 * float(d.std(ddof=1)) / len(d) ** 0.5, 4),
    }


def measure(model: CrossModel, splits: dict[str, list[Group]]) -> dict[str, Any]:
    """The re-rank at each w on dev and test, and test at the w that is best on dev."""
    out: dict[str, Any] = {}
    for name, groups in splits.items():
        outputs = model.outputs(groups)
        base = np.array([g["sims"][0] for g in groups])
        out[name] = {str(w): paired(picks(groups, outputs, w), base) for w in WEIGHTS}
    best = max(WEIGHTS, key=lambda w: out["dev"][str(w)]["minus_ranker"])
    return {**out, "w_chosen_on_dev": best, "test_at_w": out["test"][str(best)]}


def train_start(kb: KnowledgeBase, out: Path, hard_negatives: int) -> str:
    """The in-domain matcher trained on the knowledge's own dialogues (what the cross model
    starts from)."""
    pairs = [
        DialoguePair(tuple(e.context), e.answer, e.conversation or f"entry:{e.id}")
        for e in kb.entries()
        if e.kind == "dialogue"
    ]
    config = MatcherTrainConfig(hard_negatives=hard_negatives)
    return str(train_matcher(pairs, out, config).path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--knowledge", required=True, help="a data dir with knowledge and ranker")
    parser.add_argument("--pairs", nargs=2, required=True, metavar=("ENC", "DEC"))
    parser.add_argument("--dev", type=int, default=9400, help="offset of the dev pairs")
    parser.add_argument("--test", type=int, default=9000, help="offset of the test pairs")
    parser.add_argument("--limit", type=int, default=400)
    parser.add_argument("--train", type=int, default=9000, help="knowledge dialogues to learn from")
    parser.add_argument("--pool", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--tau", type=float, default=0.1)
    parser.add_argument("--lr", type=float, default=3e-4)
    start = parser.add_mutually_exclusive_group()
    start.add_argument("--init", help="a trained matcher's directory to start from")
    start.add_argument(
        "--matcher-hard-negatives",
        type=int,
        metavar="K",
        help="first train the in-domain matcher on the knowledge (K hard negatives) into "
        "--knowledge/crossmodel-matcher, and start from it",
    )
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    torch.set_num_threads(2)

    everything = list(corpus.read_jddc2018(Path(args.pairs[0]), Path(args.pairs[1])))
    store = open_store(f"sqlite:///{Path(args.knowledge) / 'xiaoer.db'}")
    with store:
        kb = KnowledgeBase(store, USESimilarity())
        init = args.init
        if args.matcher_hard_negatives is not None:
            out = Path(args.knowledge) / "crossmodel-matcher"
            init = train_start(kb, out, args.matcher_hard_negatives)
        sug = Suggester(kb)
        sug.vectors.build_all()
        kb.warm()
        keys = knowledge_keys(list(kb.entries()))
        splits = {}
        for name, offset in (("dev", args.dev), ("test", args.test)):
            held, _ = drop_overlapping(everything[offset : offset + args.limit], keys)
            splits[name] = heldout_groups(kb, sug, held, args.pool)
        train = knowledge_groups(kb, sug, args.train, args.pool, args.seed) if args.epochs else []
    model = CrossModel([*train, *splits["dev"], *splits["test"]], init)
    result: dict[str, Any] = {"init": init, "train_groups": len(train)}
    for name, groups in splits.items():
        result[name] = {
            "n": len(groups),
            "ranker_first": round(float(np.mean([g["sims"][0] for g in groups])), 4),
            "best_of_pool": round(float(np.mean([g["sims"].max() for g in groups])), 4),
        }
    if init:
        result["start"] = measure(model, splits)
    if train:
        result["final_loss"] = model.train(train, args.epochs, args.tau, args.lr, args.seed)
        result["listwise"] = measure(model, splits)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
