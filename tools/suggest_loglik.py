"""Does the end model's log-likelihood of the best candidates improve the first suggestion?

For each held-out JDDC 2018 context (its conversation not in the knowledge) the suggester ranks
the shop's candidates as the app does; the 0.5B (llama.cpp, the app's GGUF) then scores the best
`--top` of them: log p(reply | the conversation in the app's chat prompt), per token, and the
same minus log p(reply | a bare greeting) (pointwise mutual information, so that generic replies
gain nothing for being likely anywhere). A re-rank adds w · (standardised feature) to the
standardised ranker score; the feature, w and the pool size are chosen on one half of the
conversations and measured on the other (2-fold), paired with the ranker's own first
suggestion. Prints one JSON object; per-context rows are cached in `--out` so a rerun only
analyses.

    python tools/suggest_loglik.py --knowledge /tmp/home \
        --pairs ../shared/data/jddc2018/train.enc ../shared/data/jddc2018/train.dec \
        --offset 9400 --limit 400 --out /tmp/loglik-dev.jsonl

docs/experiments/2026-12-04-grounded-suggestions.md has the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from app.engine.conversation import format_chatml, system_prompt, to_messages
from app.engine.weights import resolve
from app.knowledge import KnowledgeBase
from app.scoring import corpus
from app.scoring.scorers import USESimilarity
from app.store import open_store
from app.suggest.candidates import Suggester
from app.suggest.evaluate import as_turns, drop_overlapping, knowledge_keys

FEATURES = ("loglik_per_token", "pmi", "pmi_per_token")
WEIGHTS = (0.1, 0.25, 0.5, 1.0, 3.0)
POOLS = (5, 10)
MAX_PROMPT_TOKENS = 1500


class LogLik:
    """log p(text + end of turn | prompt) under a GGUF chat model, the prompt evaluated once."""

    def __init__(self, path: Path) -> None:
        from llama_cpp import Llama

        self.llm = Llama(model_path=str(path), n_ctx=2048, logits_all=True, verbose=False)
        self._prefix: list[int] = []

    def prompt(self, messages: list[tuple[str, str]]) -> int:
        ids = self.llm.tokenize(format_chatml(messages).encode(), add_bos=False, special=True)
        self.llm.reset()
        self.llm.eval(ids)
        self._prefix = ids
        return len(ids)

    def reply(self, text: str) -> tuple[float, int]:
        ids = self.llm.tokenize((text + "<|im_end|>").encode(), add_bos=False, special=True)
        start = len(self._prefix)
        self.llm.n_tokens = start  # keep the prompt's cache, drop the previous reply's
        self.llm.eval(ids)
        logits = np.asarray(self.llm.scores[start - 1 : start - 1 + len(ids)], dtype=np.float64)
        top = logits.max(axis=1, keepdims=True)
        logp = logits - top - np.log(np.exp(logits - top).sum(axis=1, keepdims=True))
        return float(logp[np.arange(len(ids)), ids].sum()), len(ids)


def measure(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    if args.out.exists():
        rows = [json.loads(line) for line in args.out.read_text(encoding="utf-8").splitlines()]
    done = {row["key"] for row in rows}
    pairs = list(corpus.read_jddc2018(*args.pairs))[args.offset : args.offset + args.limit]
    use = USESimilarity()
    model = LogLik(resolve().path)
    system = system_prompt()
    bare: dict[str, float] = {}
    with (
        open_store(f"sqlite:///{args.knowledge / 'xiaoer.db'}") as store,
        args.out.open("a", encoding="utf-8") as out,
    ):
        kb = KnowledgeBase(store, use)
        held, _ = drop_overlapping(pairs, knowledge_keys(list(kb.entries())))
        suggester = Suggester(kb)
        for n, pair in enumerate(held):
            key = f"{args.offset}:{n}"
            if key in done:
                continue
            found = sorted(suggester.suggest_context(pair.context).ranked, key=lambda s: -s.score)
            texts = [s.text for s in found[: args.top]]
            messages = to_messages(as_turns(pair.context[-6:]), system)
            if model.prompt(messages) > MAX_PROMPT_TOKENS:
                model.prompt([messages[0], *messages[-3:]])
            scored = [model.reply(t) for t in texts]
            new = [t for t in texts if t not in bare]
            if new:
                model.prompt([("system", system), ("user", "您好")])
                bare.update({t: model.reply(t)[0] for t in new})
            row = {
                "key": key,
                "conversation": pair.conversation,
                "score": [s.score for s in found[: args.top]],
                "similarity": [float(v) for v in use.similarity(texts, [pair.reply] * len(texts))],
                "loglik": [ll for ll, _ in scored],
                "tokens": [n_tok for _, n_tok in scored],
                "bare_loglik": [bare[t] for t in texts],
            }
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
            out.flush()
            rows.append(row)
            print(f"{len(rows)} contexts", file=sys.stderr, flush=True)
    return rows


def _standard(x: np.ndarray) -> np.ndarray:
    sd = x.std()
    return (x - x.mean()) / (sd if sd > 0 else 1.0)


def _feature(row: dict[str, Any], name: str) -> np.ndarray:
    ll, bare = np.array(row["loglik"]), np.array(row["bare_loglik"])
    tokens = np.maximum(np.array(row["tokens"]), 1)
    return {
        "loglik_per_token": ll / tokens,
        "pmi": ll - bare,
        "pmi_per_token": (ll - bare) / tokens,
    }[name]


def _pick(row: dict[str, Any], choice: tuple[str, float, int]) -> float:
    name, weight, pool = choice
    score = _standard(np.array(row["score"][:pool])) + weight * _standard(
        _feature(row, name)[:pool]
    )
    return float(row["similarity"][int(np.argmax(score))])


def _ci(values: np.ndarray) -> dict[str, float]:
    return {
        "mean": round(float(values.mean()), 4),
        "ci95": round(float(1.96 * values.std(ddof=1) / np.sqrt(len(values))), 4),
    }


def analyse(rows: list[dict[str, Any]]) -> dict[str, Any]:
    base = np.array([row["similarity"][0] for row in rows])
    grid = [(f, w, p) for f in FEATURES for w in WEIGHTS for p in POOLS]
    conversations = sorted({row["conversation"] for row in rows})
    np.random.default_rng(0).shuffle(conversations)
    first_half = set(conversations[: len(conversations) // 2])
    reranked = np.zeros(len(rows))
    chosen = []
    for fold in (True, False):
        fit = [r for r in rows if (r["conversation"] in first_half) == fold]
        best = max(grid, key=lambda g: np.mean([_pick(r, g) for r in fit]))
        chosen.append(best)
        for i, row in enumerate(rows):
            if (row["conversation"] in first_half) != fold:
                reranked[i] = _pick(row, best)
    in_sample = {
        f"{f} w{w} top{p}": round(
            float(np.mean([_pick(r, (f, w, p)) for r in rows]) - base.mean()), 4
        )
        for f, w, p in grid
    }
    return {
        "n": len(rows),
        "ranker_top1": _ci(base),
        "reranked_top1": _ci(reranked),
        "paired_difference": _ci(reranked - base),
        "chosen_per_fold": chosen,
        "best_of_pool": _ci(np.array([max(r["similarity"][: max(POOLS)]) for r in rows])),
        "in_sample_difference": in_sample,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", nargs=2, type=Path, required=True, metavar=("ENC", "DEC"))
    parser.add_argument("--knowledge", type=Path, required=True, help="as eval-suggest's")
    parser.add_argument("--offset", type=int, default=9400)
    parser.add_argument("--limit", type=int, default=400)
    parser.add_argument("--top", type=int, default=max(POOLS))
    parser.add_argument("--out", type=Path, required=True, help="per-context rows (JSON lines)")
    args = parser.parse_args()
    print(json.dumps(analyse(measure(args)), ensure_ascii=False))


if __name__ == "__main__":
    main()
