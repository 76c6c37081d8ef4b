"""`xiaoer eval-suggest`: how close the suggestions come to what the shop's agents replied.

Held-out contexts come from a JDDC-2018-format file (``--pairs ENC DEC``, a slice of it by
``--offset``/``--limit`` over the pairs read); the knowledge is the store of a Xiaoer data dir
(``--knowledge DIR``, filled with ``XIAOER_HOME=DIR xiaoer knowledge import …``), ranked by that
store's active ranker. A held-out conversation any of whose contexts the knowledge holds is left
out entirely (the count is printed): knowledge and held-out contexts must not share a chat.

Similarity is the app's: USE multilingual similarity of a reply to the agent's real reply.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.engine.conversation import Turn
from app.errors import XiaoerError
from app.scoring import corpus
from app.scoring.corpus import DialoguePair

OVERLAP_TURNS = 3


class EvalSuggestError(XiaoerError):
    """The evaluation can't run as asked (no knowledge, every context overlapping, bad files)."""


def _key(context: Sequence[str], reply: str) -> tuple[str, ...]:
    """A dialogue's identity across files: its last turns and reply, spaces ignored."""
    return (*(_squash(t) for t in context[-OVERLAP_TURNS:]), _squash(reply))


def _squash(text: str) -> str:
    return "".join(text.split())


def knowledge_keys(entries: Sequence[Any]) -> set[tuple[str, ...]]:
    """Keys of the knowledge's past dialogues: their last turns and reply, and every run of
    three consecutive turns (question before last, question, reply)."""
    keys = set()
    for e in entries:
        if e.kind != "dialogue":
            continue
        keys.add(_key(e.context, e.answer))
        if len(e.context) >= 2:
            keys.add(_key(e.context[-2:], e.answer))
    return keys


def _touches(pair: DialoguePair, keys: set[tuple[str, ...]]) -> bool:
    """Whether the pair, or any three consecutive turns of its chat so far, is in the knowledge
    (a conversation cut between the knowledge and the held-out side shares such a run)."""
    if _key(pair.context, pair.reply) in keys:
        return True
    turns = [*pair.context, pair.reply]
    return any(_key(turns[i : i + 2], turns[i + 2]) in keys for i in range(len(turns) - 2))


def drop_overlapping(
    pairs: Sequence[DialoguePair], keys: set[tuple[str, ...]]
) -> tuple[list[DialoguePair], int]:
    """The pairs whose conversation shares no dialogue with the knowledge, and how many pairs
    were dropped."""
    touched = {p.conversation for p in pairs if _touches(p, keys)}
    kept = [p for p in pairs if p.conversation not in touched]
    return kept, len(pairs) - len(kept)


def as_turns(context: Sequence[str]) -> list[Turn]:
    """JDDC context turns with roles: the last is the customer's, alternating backwards."""
    n = len(context)
    return [Turn("customer" if (n - 1 - i) % 2 == 0 else "agent", t) for i, t in enumerate(context)]


def _mean_ci(values: Sequence[float] | np.ndarray) -> tuple[float, float]:
    x = np.asarray(values, np.float64)
    if len(x) < 2:
        return float(x.mean()) if len(x) else math.nan, math.nan
    return float(x.mean()), float(1.96 * x.std(ddof=1) / math.sqrt(len(x)))


def _p95(values: Sequence[float]) -> float | None:
    return round(float(np.percentile(values, 95)), 1) if values else None


@dataclass
class _Row:
    reply: str
    top: list[str]
    retrieval_top1: str
    nearest: list[str]
    first_ms: float
    all_ms: float | None
    draft: str | None
    first_stage: str | None = None
    """The first suggestion of the ranker's first stage alone (when it has a second)."""


DraftFn = Callable[[list[Turn]], str]
SelectFn = Callable[[list[str], list[str]], list[float]]


def ranker_selection(store: Any) -> tuple[SelectFn, str]:
    """The store's active ranker as a response selector (`xiaoer eval-matcher --matcher ranker`):
    each candidate is scored like a reply the agent typed for the group's conversation, with the
    store's knowledge as the evidence. Returns the scoring function and the ranker's version."""
    from app.knowledge import KnowledgeBase
    from app.scoring.scorers import USESimilarity
    from app.suggest.candidates import Suggester

    suggester = Suggester(KnowledgeBase(store, USESimilarity()))
    suggester.vectors.build_all()
    if not suggester.vectors.dialogue_ids():
        raise EvalSuggestError(
            "the ranker weighs candidates against the shop's past dialogues, and the knowledge "
            "holds none: import them first (xiaoer knowledge import FILE)"
        )

    def score(context: list[str], candidates: list[str]) -> list[float]:
        return suggester.suggest_context(context).score_texts(candidates)

    return score, suggester.ranker.version


def evaluate(
    pairs_files: tuple[Path, Path],
    offset: int,
    limit: int,
    knowledge_dir: Path,
    draft_fn: DraftFn | None = None,
    items_path: Path | None = None,
    k: int = 10,
    log: Callable[[str], None] = lambda _m: None,
) -> dict[str, Any]:
    """The eval-suggest report (one JSON object)."""
    from app.knowledge import KnowledgeBase
    from app.scoring.scorers import USESimilarity
    from app.store import open_store
    from app.suggest.candidates import Suggester

    enc, dec = pairs_files
    pairs = list(corpus.read_jddc2018(enc, dec))
    held = pairs[offset : offset + limit] if limit else pairs[offset:]
    if not held:
        raise EvalSuggestError(f"no pairs at offset {offset} of {enc} ({len(pairs)} pairs)")
    db = knowledge_dir / "xiaoer.db"
    if not db.is_file():
        raise EvalSuggestError(f"{knowledge_dir} holds no Xiaoer store (xiaoer.db)")
    use = USESimilarity()
    with open_store(f"sqlite:///{db}") as store:
        kb = KnowledgeBase(store, use)
        entries = list(kb.entries())
        if not entries:
            raise EvalSuggestError(f"the store in {knowledge_dir} holds no knowledge")
        held, dropped = drop_overlapping(held, knowledge_keys(entries))
        if dropped:
            log(f"left out {dropped} held-out contexts whose conversation is in the knowledge")
        if not held:
            raise EvalSuggestError(
                "every held-out context's conversation is in the knowledge: hold other "
                "conversations out (see docs/experiments/2026-12-04-grounded-suggestions.md)"
            )
        suggester = Suggester(kb, k=k)
        suggester.vectors.build_all()  # as after an import: not part of a turn's latency
        kb.warm()
        suggester.suggest_context(held[0].context)  # loads the encoder
        drafts = _load_items(items_path)
        rows: list[_Row] = []
        for i, pair in enumerate(held):
            started = time.perf_counter()
            result = suggester.suggest_context(pair.context)
            first_ms = (time.perf_counter() - started) * 1000
            key = "\u241e".join(pair.context)
            draft = drafts.get(key)
            all_ms = None
            if draft_fn is not None:
                if draft is None:
                    t0 = time.perf_counter()
                    draft = draft_fn(as_turns(pair.context))
                    drafts[key] = draft
                    _append_item(items_path, key, draft, (time.perf_counter() - t0) * 1000)
                t1 = time.perf_counter()
                result.add_draft(draft)
                all_ms = first_ms + (time.perf_counter() - t1) * 1000
            first_stage = None
            if suggester.matcher is not None:  # the second stage's own gain, paired
                alone = suggester.suggest_context(pair.context, second_stage=False)
                if draft is not None:
                    alone.add_draft(draft)
                first_stage = alone.ranked[0].text if alone.ranked else ""
            nearest = [h.entry.answer for h in kb.search(pair.context[-1], k, "dialogue")]
            rows.append(
                _Row(
                    pair.reply,
                    [s.text for s in result.ranked[:3]],
                    nearest[0] if nearest else "",
                    nearest,
                    first_ms,
                    all_ms,
                    draft,
                    first_stage,
                )
            )
            if (i + 1) % 50 == 0:
                log(f"{i + 1}/{len(held)} contexts")
        ranker = suggester.ranker
    return _report(rows, use, dropped, ranker.version, ranker.calibrated, draft_fn is not None)


def _similarities(use: Any, replies: list[str], texts: list[str]) -> np.ndarray:
    return np.asarray(use.similarity(texts, replies), np.float64)


def _report(
    rows: list[_Row],
    use: Any,
    dropped: int,
    ranker_version: str,
    calibrated: bool,
    with_model: bool,
) -> dict[str, Any]:
    human = [r.reply for r in rows]
    top1 = _similarities(use, human, [r.top[0] if r.top else "" for r in rows])
    top3 = np.stack(
        [
            _similarities(use, human, [r.top[j] if len(r.top) > j else "" for r in rows])
            for j in range(3)
        ]
    ).max(0)
    retrieval = _similarities(use, human, [r.retrieval_top1 for r in rows])
    k = max(len(r.nearest) for r in rows)
    oracle = np.stack(
        [
            _similarities(use, human, [r.nearest[j] if len(r.nearest) > j else "" for r in rows])
            for j in range(k)
        ]
    ).max(0)
    out: dict[str, Any] = {"n": len(rows)}
    mean, ci = _mean_ci(top1)
    out["top1_similarity_mean"] = round(mean, 4)
    out["top1_similarity_ci95"] = round(ci, 4)
    for name, values in (
        ("top3_best", top3),
        ("retrieval_top1", retrieval),
        ("oracle_k", oracle),
    ):
        mean, ci = _mean_ci(values)
        out[f"{name}_similarity_mean"] = round(mean, 4)
        out[f"{name}_similarity_ci95"] = round(ci, 4)
    if with_model:
        model = _similarities(use, human, [r.draft or "" for r in rows])
        mean, ci = _mean_ci(model)
        out["model_only_similarity_mean"] = round(mean, 4)
        out["model_only_similarity_ci95"] = round(ci, 4)
    else:
        out["model_only_similarity_mean"] = None
    diff_mean, diff_ci = _mean_ci(top1 - retrieval)
    out["top1_minus_retrieval_mean"] = round(diff_mean, 4)
    out["top1_minus_retrieval_ci95"] = round(diff_ci, 4)
    if all(r.first_stage is not None for r in rows):
        first = _similarities(use, human, [r.first_stage or "" for r in rows])
        out["first_stage_top1_similarity_mean"] = round(float(first.mean()), 4)
        diff_mean, diff_ci = _mean_ci(top1 - first)
        out["top1_minus_first_stage_mean"] = round(diff_mean, 4)
        out["top1_minus_first_stage_ci95"] = round(diff_ci, 4)
    out["p95_first_suggestion_ms"] = _p95([r.first_ms for r in rows])
    all_ms = [r.all_ms for r in rows if r.all_ms is not None]
    out["p95_all_candidates_ms"] = _p95(all_ms)
    out["dropped_overlapping"] = dropped
    out["oracle_k"] = k
    out["ranker"] = ranker_version
    out["calibrated"] = calibrated
    return out


def _load_items(path: Path | None) -> dict[str, str]:
    """Drafts written by an earlier run (JSON lines {"context", "draft"}), to reuse."""
    if path is None or not path.is_file():
        return {}
    drafts = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            drafts[str(item["context"])] = str(item["draft"])
        except (ValueError, KeyError, TypeError) as exc:
            raise EvalSuggestError(f"{path}:{n}: not a drafts line ({exc})") from exc
    return drafts


def _append_item(path: Path | None, key: str, draft: str, ms: float) -> None:
    if path is None:
        return
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps({"context": key, "draft": draft, "ms": round(ms)}, ensure_ascii=False))
        f.write("\n")
