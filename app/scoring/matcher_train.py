"""Training the in-domain matcher (torch); `train_matcher` is the entry point, `indomain` scores.

Each step takes a batch of contexts; every context is scored against its real reply, `negatives`
replies of other contexts in the batch and `hard_negatives` replies of lexically similar
contexts from other conversations. The loss is softmax cross-entropy over those candidates (pick
the real reply) plus a balanced pointwise logistic term, so one logit means the same thing for
every context and a two-parameter sigmoid calibrates it afterwards.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import nn

from app.fsio import atomic_savez, atomic_write_text
from app.scoring.corpus import DialoguePair, EcdGroup
from app.scoring.indomain import InDomainMatcher, evaluate_ecd
from app.scoring.matcher_features import (
    FORMAT_VERSION,
    META_FILE,
    OVERLAP_FEATURES,
    SENTENCE_DIM,
    SENTENCE_ENCODER,
    WEIGHTS_FILE,
    FloatArray,
    MatcherInfo,
    MatcherTrainConfig,
    PairLike,
    ProgressFn,
    SentenceEncoder,
    char_ids,
    default_encoder,
    ngram_ids,
    overlap_from_shingles,
    prepare_context,
    prepare_reply,
    text_shingles,
)

POINTWISE_WEIGHT = 0.5
MIN_PAIRS = 20
_BLOCK = 8  # pairs without a conversation id are held out in runs of this many consecutive pairs


class CharInteraction(nn.Module):  # type: ignore[misc]
    """Reply characters attend over context characters; aligned pairs are compared and pooled."""

    def __init__(self, buckets: int, dim: int, hidden: int) -> None:
        super().__init__()
        self.emb = nn.Embedding(buckets, dim, padding_idx=0)
        self.conv = nn.Conv1d(dim, dim, 3, padding=1)
        self.compare = nn.Linear(4 * dim, dim)
        self.out = nn.Linear(2 * dim, hidden)
        self.act = nn.GELU(approximate="tanh")

    def sequence(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.emb(ids)
        conv = self.conv(x.transpose(1, 2)).transpose(1, 2)
        # Padding must stay out of the conv of real neighbours: inference sees no padding.
        return (x + self.act(conv)) * (ids > 0).unsqueeze(-1)

    def forward(
        self, ctx: torch.Tensor, ctx_ids: torch.Tensor, rep: torch.Tensor, rep_ids: torch.Tensor
    ) -> torch.Tensor:
        ctx_mask, rep_mask = ctx_ids > 0, rep_ids > 0
        sim = rep @ ctx.transpose(1, 2) / math.sqrt(ctx.shape[-1])
        sim = sim.masked_fill(~ctx_mask.unsqueeze(1), -1e4)
        aligned = torch.softmax(sim, dim=-1) @ ctx
        aligned = aligned * ctx_mask.any(dim=1).view(-1, 1, 1)  # an empty context aligns to zeros
        z = self.act(self.compare(torch.cat([rep, aligned, rep * aligned, rep - aligned], -1)))
        keep = rep_mask.unsqueeze(-1)
        longest = z.masked_fill(~keep, -1e4).max(dim=1).values
        longest = longest * rep_mask.any(dim=1, keepdim=True)  # an empty reply pools to zeros
        mean = (z * keep).sum(dim=1) / rep_mask.sum(dim=1, keepdim=True).clamp(min=1)
        pooled: torch.Tensor = self.out(torch.cat([longest, mean], -1))
        return pooled


class MatcherNet(nn.Module):  # type: ignore[misc]
    """The torch twin of `InDomainMatcher`'s numpy forward pass (same parameter names)."""

    def __init__(self, config: MatcherTrainConfig) -> None:
        super().__init__()
        h = config.hidden
        self.config = config
        self.drop = nn.Dropout(config.dropout)
        if config.use_sentence_encoder:
            self.ctx_sentence = nn.Linear(2 * SENTENCE_DIM, h)
            self.rep_sentence = nn.Linear(SENTENCE_DIM, h)
        if config.ngram_buckets:
            self.ngram = nn.EmbeddingBag(config.ngram_buckets, config.ngram_dim, mode="mean")
            self.ctx_ngram = nn.Linear(2 * config.ngram_dim, h)
            self.rep_ngram = nn.Linear(config.ngram_dim, h)
        self.ctx_proj = nn.Sequential(nn.GELU(approximate="tanh"), nn.Dropout(0.1), nn.Linear(h, h))
        self.rep_proj = nn.Sequential(nn.GELU(approximate="tanh"), nn.Dropout(0.1), nn.Linear(h, h))
        width = 4 * h + OVERLAP_FEATURES
        if config.char_interaction:
            self.interaction = CharInteraction(config.char_buckets, config.char_dim, h)
            width += h
        self.head = nn.Sequential(
            nn.Linear(width, h),
            nn.GELU(approximate="tanh"),
            nn.Dropout(0.1),
            nn.Linear(h, h // 2),
            nn.GELU(approximate="tanh"),
            nn.Linear(h // 2, 1),
        )

    def encode_contexts(
        self, last: torch.Tensor | None, full: torch.Tensor | None, bags: list[torch.Tensor]
    ) -> torch.Tensor:
        h = 0
        if last is not None and full is not None:
            h = h + self.ctx_sentence(self.drop(torch.cat([last, full], -1)))
        if self.config.ngram_buckets:
            h = h + self.ctx_ngram(torch.cat([self.ngram(*bags[0]), self.ngram(*bags[1])], -1))
        out: torch.Tensor = self.ctx_proj(h)
        return out

    def encode_replies(
        self, sentence: torch.Tensor | None, bag: torch.Tensor | None
    ) -> torch.Tensor:
        h = 0
        if sentence is not None:
            h = h + self.rep_sentence(self.drop(sentence))
        if bag is not None:
            h = h + self.rep_ngram(self.ngram(*bag))
        out: torch.Tensor = self.rep_proj(h)
        return out

    def score(
        self, u: torch.Tensor, v: torch.Tensor, overlap: torch.Tensor, chars: torch.Tensor | None
    ) -> torch.Tensor:
        """u (n, h) contexts, v (n, k, h) candidates, overlap (n, k, 6), chars (n, k, h)."""
        uu = u.unsqueeze(1).expand_as(v)
        parts = [uu, v, uu * v, (uu - v).abs(), overlap]
        if chars is not None:
            parts.append(chars)
        out: torch.Tensor = self.head(torch.cat(parts, -1)).squeeze(-1)
        return out


class _Features:
    """Every text's features computed once: sentence vectors, n-gram ids, char ids, shingles."""

    def __init__(
        self, texts: list[str], config: MatcherTrainConfig, encoder: SentenceEncoder | None
    ) -> None:
        self.index = {t: i for i, t in enumerate(texts)}
        self.sentence: torch.Tensor | None = None
        if encoder is not None:
            rows = [
                np.asarray(encoder.encode(texts[i : i + 256]), dtype=np.float32)
                for i in range(0, len(texts), 256)
            ]
            self.sentence = torch.from_numpy(np.nan_to_num(np.concatenate(rows)))
        self.ngrams = (
            [ngram_ids(t, config.ngram_buckets) for t in texts] if config.ngram_buckets else []
        )
        self.chars = [char_ids(t, config.char_buckets) for t in texts]
        self.texts = texts

    def sentences(self, ids: Sequence[int]) -> torch.Tensor | None:
        return None if self.sentence is None else self.sentence[list(ids)]

    def bag(self, ids: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        rows = [self.ngrams[i] for i in ids]
        offsets = np.cumsum([0] + [len(r) for r in rows[:-1]])
        return torch.tensor(np.concatenate(rows)), torch.tensor(offsets)

    def padded_chars(self, ids: Sequence[int]) -> torch.Tensor:
        rows = [self.chars[i] for i in ids]
        out = torch.zeros(len(rows), max(1, *(len(r) for r in rows)), dtype=torch.long)
        for i, row in enumerate(rows):
            out[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        return out


def _items(pairs: Sequence[PairLike]) -> list[tuple[list[str], str, str | None]]:
    out: list[tuple[list[str], str, str | None]] = []
    for pair in pairs:
        if isinstance(pair, DialoguePair):
            out.append((list(pair.context), pair.reply, pair.conversation))
        else:
            context, reply = pair
            out.append((list(context), reply, None))
    return out


def _split_calibration(
    keys: list[str], fraction: float, rng: random.Random
) -> tuple[list[int], list[int]]:
    order = list(dict.fromkeys(keys))
    rng.shuffle(order)
    want = max(MIN_PAIRS // 2, round(fraction * len(keys)))
    held: set[str] = set()
    count = 0
    by_key: dict[str, int] = {}
    for key in keys:
        by_key[key] = by_key.get(key, 0) + 1
    for key in order:
        if count >= want or len(held) >= len(order) - 1:
            break
        held.add(key)
        count += by_key[key]
    calibration = [i for i, k in enumerate(keys) if k in held]
    train = [i for i, k in enumerate(keys) if k not in held]
    return train, calibration


def _mine_hard(
    contexts: list[str],
    replies: list[str],
    keys: list[str],
    how_many: int,
    seed: int,
) -> list[list[int]]:
    """For each pair, pairs whose context shares the most character bigrams (other chats)."""
    if how_many == 0:
        return [[] for _ in contexts]
    dim = 1 << 11
    row_ids: list[int] = []
    col_ids: list[int] = []
    for i, text in enumerate(contexts):
        grams = {text[j : j + 2] for j in range(len(text) - 1)} or {text}
        cols = {zlib.crc32(g.encode("utf-8", errors="replace")) % dim for g in grams}
        row_ids += [i] * len(cols)
        col_ids += sorted(cols)
    rows = torch.zeros(len(contexts), dim)
    rows[torch.tensor(row_ids, dtype=torch.long), torch.tensor(col_ids, dtype=torch.long)] = 1.0
    idf = torch.log((1 + len(contexts)) / (1 + (rows > 0).sum(0).float())) + 1
    rows = F.normalize(rows * idf, dim=1)
    shingles = [text_shingles(r) for r in replies]
    rng = random.Random(seed)
    out: list[list[int]] = []
    for start in range(0, len(contexts), 512):
        sims = rows[start : start + 512] @ rows.T
        top = sims.topk(min(40, len(contexts)), dim=1).indices.tolist()
        for offset, candidates in enumerate(top):
            i = start + offset
            picked = []
            for j in candidates:
                if keys[j] == keys[i] or replies[j] == replies[i]:
                    continue
                union = len(shingles[i] | shingles[j]) or 1
                if len(shingles[i] & shingles[j]) / union > 0.5:  # a paraphrase, not a negative
                    continue
                picked.append(j)
                if len(picked) == 4 * how_many:
                    break
            rng.shuffle(picked)
            out.append(picked)
    return out


def _platt(logits: npt.NDArray[np.float64], labels: npt.NDArray[np.float64]) -> tuple[float, float]:
    """Fits sigmoid(a * logit + b) by Newton's method, positives and negatives weighted evenly.

    Platt's smoothed targets and a small ridge keep the fit finite when the held-out logits
    separate perfectly (otherwise `a` runs off to infinity and every score becomes 0 or 1).
    """
    pos = labels > 0.5
    n_pos, n_neg = max(1, int(pos.sum())), max(1, int((~pos).sum()))
    targets = np.where(pos, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
    weights = np.where(pos, 0.5 / n_pos, 0.5 / n_neg)
    ridge = 1e-3

    def objective(a: float, b: float) -> float:
        z = a * logits + b
        # Cross-entropy against soft targets, computed without overflow.
        loss = weights * (np.logaddexp(0, z) - targets * z)
        return float(loss.sum() + 0.5 * ridge * ((a - 1) ** 2 + b**2))

    a, b = 1.0, 0.0
    current = objective(a, b)
    for _ in range(100):
        p = 0.5 * (1 + np.tanh(0.5 * (a * logits + b)))
        residual = weights * (p - targets)
        grad = np.array([np.sum(residual * logits) + ridge * (a - 1), np.sum(residual) + ridge * b])
        s = weights * p * (1 - p)
        hess = np.array(
            [
                [np.sum(s * logits**2) + ridge, np.sum(s * logits)],
                [np.sum(s * logits), np.sum(s) + ridge],
            ]
        )
        step = np.linalg.solve(hess, grad)
        shrink = 1.0
        while shrink > 1e-6:  # backtracking: plain Newton overshoots on separable logits
            trial = objective(a - shrink * float(step[0]), b - shrink * float(step[1]))
            if trial <= current:
                break
            shrink /= 2
        a, b = a - shrink * float(step[0]), b - shrink * float(step[1])
        improvement = current - objective(a, b)
        current = objective(a, b)
        if improvement < 1e-12:
            break
    return a, b


def train_matcher(
    pairs: Sequence[PairLike],
    out_dir: Path,
    config: MatcherTrainConfig | None = None,
    progress: ProgressFn | None = None,
    *,
    encoder: SentenceEncoder | None = None,
) -> MatcherInfo:
    """Trains a matcher on (context_turns, reply) pairs and saves it into `out_dir`.

    Pairs may be `DialoguePair`s: their conversation ids keep hard negatives and the calibration
    hold-out from mixing turns of one chat. `progress` gets JSON-able dicts (stage, epoch, loss).
    Needs torch (the `hf` extra); scoring does not.
    """
    config = config or MatcherTrainConfig()
    started = time.monotonic()

    def report(event: dict[str, Any]) -> None:
        if progress is not None:
            progress({**event, "seconds": round(time.monotonic() - started, 1)})

    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)

    items = _items(pairs)
    lasts, contexts, replies, keys = [], [], [], []
    for n, (turns, reply, conversation) in enumerate(items):
        last, context = prepare_context(turns, config)
        lasts.append(last)
        contexts.append(context)
        replies.append(prepare_reply(reply, config))
        keys.append(conversation if conversation is not None else f"block:{n // _BLOCK}")
    if len(items) < MIN_PAIRS:
        raise ValueError(f"need at least {MIN_PAIRS} pairs to train a matcher, got {len(items)}")
    if len(set(replies)) < 2:
        raise ValueError("all replies are identical; nothing to tell apart")
    train_idx, calib_idx = _split_calibration(keys, config.calibration_fraction, rng)

    if config.use_sentence_encoder and encoder is None:
        encoder = default_encoder(config.threads)
    sentence_encoder = encoder if config.use_sentence_encoder else None
    texts = list(dict.fromkeys(lasts + contexts + replies))
    report({"stage": "features", "texts": len(texts)})
    feats = _Features(texts, config, sentence_encoder)
    last_id = [feats.index[t] for t in lasts]
    ctx_id = [feats.index[t] for t in contexts]
    rep_id = [feats.index[t] for t in replies]
    shingles = [text_shingles(t) for t in texts]

    hard = _mine_hard(
        [contexts[i] for i in train_idx],
        [replies[i] for i in train_idx],
        [keys[i] for i in train_idx],
        config.hard_negatives,
        config.seed,
    )

    model = MatcherNet(config)
    optimiser = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    batch = min(config.batch_size, len(train_idx))
    steps_per_epoch = max(1, len(train_idx) // batch)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser,
        max_lr=config.learning_rate,
        total_steps=config.epochs * steps_per_epoch,
        pct_start=0.1,
    )

    def forward(rows: list[int], candidates: list[list[int]]) -> torch.Tensor:
        """Logits (len(rows), k) of each row's context against its candidate pairs' replies."""
        flat = sorted({c for cands in candidates for c in cands})
        where = {c: i for i, c in enumerate(flat)}
        u = model.encode_contexts(
            feats.sentences([last_id[r] for r in rows]),
            feats.sentences([ctx_id[r] for r in rows]),
            [feats.bag([last_id[r] for r in rows]), feats.bag([ctx_id[r] for r in rows])]
            if config.ngram_buckets
            else [],
        )
        flat_rep = [rep_id[c] for c in flat]
        v = model.encode_replies(
            feats.sentences(flat_rep), feats.bag(flat_rep) if config.ngram_buckets else None
        )
        index = torch.tensor([[where[c] for c in cands] for cands in candidates])
        overlap = torch.tensor(
            [
                [
                    overlap_from_shingles(
                        shingles[last_id[r]],
                        shingles[ctx_id[r]],
                        shingles[rep_id[c]],
                        len(lasts[r]),
                        len(replies[c]),
                    )
                    for c in cands
                ]
                for r, cands in zip(rows, candidates, strict=True)
            ],
            dtype=torch.float32,
        )
        chars = None
        if config.char_interaction:
            inter = model.interaction
            ctx_ids = feats.padded_chars([ctx_id[r] for r in rows])
            rep_ids = feats.padded_chars(flat_rep)
            ctx_seq, rep_seq = inter.sequence(ctx_ids), inter.sequence(rep_ids)
            k = index.shape[1]
            row_of = torch.arange(len(rows)).repeat_interleave(k)
            flat_index = index.reshape(-1)
            chars = inter(
                ctx_seq[row_of], ctx_ids[row_of], rep_seq[flat_index], rep_ids[flat_index]
            ).reshape(len(rows), k, -1)
        return model.score(u, v[index], overlap, chars)

    hard_lookup = {train_idx[i]: [train_idx[j] for j in row] for i, row in enumerate(hard)}
    losses: list[float] = []
    for epoch in range(config.epochs):
        model.train()
        order = list(train_idx)
        rng.shuffle(order)
        total = 0.0
        for step in range(steps_per_epoch):
            rows = order[step * batch : (step + 1) * batch]
            candidates = _candidates(rows, train_idx, hard_lookup, config, rng)
            logits = forward(rows, candidates)
            # Another pair with the very same reply text is not a negative.
            same = torch.tensor(
                [[replies[c] == replies[cands[0]] for c in cands] for cands in candidates]
            )
            same[:, 0] = False
            logits = logits.masked_fill(same, -1e4)
            loss = F.cross_entropy(logits, torch.zeros(len(rows), dtype=torch.long))
            labels = torch.zeros_like(logits)
            labels[:, 0] = 1.0
            weights = torch.where(labels > 0, 0.5, 0.5 / (logits.shape[1] - 1)) * (~same)
            pointwise = F.binary_cross_entropy_with_logits(
                logits, labels, weight=weights, reduction="sum"
            ) / len(rows)
            loss = loss + POINTWISE_WEIGHT * pointwise
            optimiser.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimiser.step()
            schedule.step()
            total += float(loss.item())
        losses.append(total / steps_per_epoch)
        report({"stage": "train", "epoch": epoch + 1, "epochs": config.epochs, "loss": losses[-1]})

    # Calibration and metrics on the held-out conversations, with random negatives as in ECD.
    model.eval()
    negatives = 9
    groups_rows: list[int] = []
    groups_cands: list[list[int]] = []
    for r in calib_idx:
        picked: list[int] = []
        seen = {replies[r]}
        for _ in range(50 * negatives):
            if len(picked) == negatives:
                break
            o = rng.randrange(len(items))
            if keys[o] != keys[r] and replies[o] not in seen:
                seen.add(replies[o])
                picked.append(o)
        if len(picked) == negatives:
            groups_rows.append(r)
            groups_cands.append([r, *picked])
    if not groups_rows:
        raise ValueError("too few distinct replies to hold out a calibration set")
    with torch.no_grad():
        held = (
            torch.cat(
                [
                    forward(groups_rows[i : i + 64], groups_cands[i : i + 64])
                    for i in range(0, len(groups_rows), 64)
                ]
            )
            .numpy()
            .astype(np.float64)
        )
    labels = np.zeros_like(held)
    labels[:, 0] = 1.0
    scale, bias = _platt(held.reshape(-1), labels.reshape(-1))
    groups = [
        EcdGroup(tuple(items[r][0]), tuple(items[c][1] for c in cands), 0)
        for r, cands in zip(groups_rows, groups_cands, strict=True)
    ]
    rows_left = iter(held)
    ranked = evaluate_ecd(lambda _context, _candidates: next(rows_left), groups)
    probs = 1 / (1 + np.exp(-np.clip(scale * held[:, :2] + bias, -50, 50)))  # positive + 1 negative
    even = labels[:, :2]
    metrics: dict[str, float] = {
        "heldout_r10_at_1": ranked["r10_at_1"],
        "heldout_r10_at_2": ranked["r10_at_2"],
        "heldout_r10_at_5": ranked["r10_at_5"],
        "heldout_groups": float(len(groups)),
        "heldout_brier": float(np.mean((probs - even) ** 2)),
        "heldout_ece": float(_ece(probs.reshape(-1), even.reshape(-1))),
        "final_loss": losses[-1],
    }

    weights = {
        name: tensor.detach().cpu().numpy().astype(np.float32)
        for name, tensor in model.state_dict().items()
    }
    version = weights_version(weights, config)
    meta: dict[str, Any] = {
        "format": FORMAT_VERSION,
        "version": version,
        "config": asdict(config),
        "calibration": {"scale": scale, "bias": bias},
        "sentence_encoder": SENTENCE_ENCODER if config.use_sentence_encoder else None,
        "corpus": {
            "pairs": len(items),
            "train_pairs": len(train_idx),
            "calibration_pairs": len(calib_idx),
            "conversations": len(set(keys)),
        },
        "seed": config.seed,
        "metrics": metrics,
    }
    # The numpy scorer must reproduce the torch logits; a mismatch is a bug, not noise.
    matcher = InDomainMatcher(weights, meta, sentence_encoder)
    probe = groups_rows[: min(8, len(groups_rows))]
    with torch.no_grad():
        reference = forward(probe, [groups_cands[groups_rows.index(r)] for r in probe]).numpy()
    mirrored = np.stack(
        [
            matcher.logits(items[r][0], [items[c][1] for c in groups_cands[groups_rows.index(r)]])
            for r in probe
        ]
    )
    drift = float(np.abs(mirrored - reference).max())
    if drift > 1e-3:
        raise RuntimeError(f"numpy scorer drifts from the trained model by {drift:.2e}")
    metrics["numpy_torch_max_diff"] = drift
    metrics["train_seconds"] = round(time.monotonic() - started, 2)

    # Weights first, then the meta file the loader starts from: each all or nothing.
    atomic_savez(out_dir / WEIGHTS_FILE, **weights)
    atomic_write_text(
        out_dir / META_FILE, json.dumps(meta, ensure_ascii=False, indent=2, sort_keys=True) + "\n"
    )
    report({"stage": "done", "version": version, **metrics})
    return MatcherInfo(
        path=out_dir,
        version=version,
        n_pairs=len(items),
        n_train=len(train_idx),
        n_calibration=len(calib_idx),
        train_seconds=metrics["train_seconds"],
        metrics=metrics,
        config=config,
    )


def weights_version(weights: Mapping[str, FloatArray], config: MatcherTrainConfig) -> str:
    """A content hash: the same weights and config always give the same version id."""
    digest = hashlib.sha256(json.dumps(asdict(config), sort_keys=True).encode())
    for name in sorted(weights):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(weights[name], dtype=np.float32).tobytes())
    return f"indomain-{digest.hexdigest()[:12]}"


def _candidates(
    rows: list[int],
    train_idx: list[int],
    hard_lookup: dict[int, list[int]],
    config: MatcherTrainConfig,
    rng: random.Random,
) -> list[list[int]]:
    """Per row: its own pair first, then random in-batch pairs, then hard (or random) ones."""
    k = min(config.negatives, len(rows) - 1)
    out = []
    for r in rows:
        others = rng.sample([o for o in rows if o != r], k)
        mined = hard_lookup.get(r, [])
        hard = rng.sample(mined, min(config.hard_negatives, len(mined)))
        while len(hard) < config.hard_negatives:
            o = rng.choice(train_idx)
            if o != r:
                hard.append(o)
        out.append([r, *others, *hard])
    return out


def _ece(probs: npt.NDArray[np.float64], labels: npt.NDArray[np.float64], bins: int = 10) -> float:
    """Expected calibration error over equal-width probability bins."""
    edges = np.minimum((probs * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        mask = edges == b
        if mask.any():
            total += mask.mean() * abs(float(probs[mask].mean()) - float(labels[mask].mean()))
    return total
