"""The in-domain matcher: how well a reply fits a shop chat's context, as a probability.

Off-the-shelf sentence encoders barely beat chance at picking the real reply among plausible shop
replies, so this small model is trained on the shop's own conversations
(`matcher_train.train_matcher`, torch, minutes on two CPU cores) and scores at run time in plain
numpy (`load_matcher`, no torch needed). Its config and features are in `matcher_features`.

A (context, reply) pair is described by
- frozen USE-multilingual sentence embeddings of the last customer turn, of the last few turns
  and of the reply (optional, `use_sentence_encoder`),
- learned hashed character 1-3-gram embeddings of the same texts,
- a character-level interaction block: every reply character attends over the context's
  characters and the aligned pairs are compared (ESIM-style; `char_interaction`),
- six lexical-overlap features (shared characters and bigrams, lengths),
all fed to an MLP that outputs one logit. A Platt sigmoid fitted on held-out conversations turns
the logit into P(this is the real reply | context) at even odds against a random shop reply.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from app.scoring.corpus import EcdGroup
from app.scoring.matcher_features import (
    FORMAT_VERSION,
    META_FILE,
    OVERLAP_FEATURES,
    WEIGHTS_FILE,
    CachedEncoder,
    FloatArray,
    MatcherTrainConfig,
    SentenceEncoder,
    as_cached,
    char_ids,
    default_encoder,
    ngram_ids,
    overlap_from_shingles,
    prepare_context,
    prepare_reply,
    text_shingles,
)


def _gelu(x: FloatArray) -> FloatArray:
    # The tanh form: training uses nn.GELU(approximate="tanh") so both sides agree exactly.
    out = 0.5 * x * (1.0 + np.tanh(0.7978845608028654 * (x + 0.044715 * x**3)))
    return np.asarray(out, dtype=np.float32)


def _linear(weights: Mapping[str, FloatArray], name: str, x: FloatArray) -> FloatArray:
    out = x @ weights[f"{name}.weight"].T
    bias = weights.get(f"{name}.bias")
    return out + bias if bias is not None else out


def _sigmoid(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


class InDomainMatcher:
    """A trained matcher: `score(context_turns, replies)` gives match probabilities in [0, 1].

    The probability reads "this reply is the one a shop agent actually sent after this context",
    calibrated at even odds against a reply taken from another chat of the same shop. Sentence
    vectors are cached (bounded, thread-safe), so scoring many drafts for one context encodes
    the context once.
    """

    def __init__(
        self,
        weights: Mapping[str, FloatArray],
        meta: Mapping[str, Any],
        encoder: SentenceEncoder | None = None,
    ) -> None:
        self.weights = {k: np.asarray(v, dtype=np.float32) for k, v in weights.items()}
        self.meta = dict(meta)
        self.config = MatcherTrainConfig.from_dict(meta["config"])
        self.version = str(meta["version"])
        calibration = meta.get("calibration", {"scale": 1.0, "bias": 0.0})
        self.scale = float(calibration["scale"])
        self.bias = float(calibration["bias"])
        self._encoder: CachedEncoder | None = None
        if self.config.use_sentence_encoder:
            self._encoder = as_cached(encoder or default_encoder(self.config.threads))

    # The numpy mirror of matcher_train.MatcherNet; parameter names are the state_dict's.
    def _encode_contexts(
        self, contexts: list[tuple[str, str]], vectors: Mapping[str, FloatArray]
    ) -> FloatArray:
        w, cfg = self.weights, self.config
        h = np.zeros((len(contexts), cfg.hidden), dtype=np.float32)
        if self._encoder is not None:
            sentence = np.stack([np.concatenate([vectors[c[0]], vectors[c[1]]]) for c in contexts])
            h = h + _linear(w, "ctx_sentence", sentence)
        if cfg.ngram_buckets:
            bags = [np.concatenate([self._bag(c[0]), self._bag(c[1])]) for c in contexts]
            h = h + _linear(w, "ctx_ngram", np.stack(bags))
        return _linear(w, "ctx_proj.2", _gelu(h))

    def _encode_replies(self, replies: list[str], vectors: Mapping[str, FloatArray]) -> FloatArray:
        w, cfg = self.weights, self.config
        h = np.zeros((len(replies), cfg.hidden), dtype=np.float32)
        if self._encoder is not None:
            h = h + _linear(w, "rep_sentence", np.stack([vectors[r] for r in replies]))
        if cfg.ngram_buckets:
            h = h + _linear(w, "rep_ngram", np.stack([self._bag(r) for r in replies]))
        return _linear(w, "rep_proj.2", _gelu(h))

    def _bag(self, text: str) -> FloatArray:
        table = self.weights["ngram.weight"]
        return np.asarray(table[ngram_ids(text, self.config.ngram_buckets)].mean(axis=0))

    def _char_seq(self, text: str) -> FloatArray:
        w = self.weights
        ids = char_ids(text, self.config.char_buckets)
        x = w["interaction.emb.weight"][ids] if ids else np.zeros((0, self.config.char_dim))
        x = np.asarray(x, dtype=np.float32)
        if len(x) == 0:
            return x
        kernel, bias = w["interaction.conv.weight"], w["interaction.conv.bias"]  # (out, in, 3)
        padded = np.pad(x, ((1, 1), (0, 0)))
        conv = sum(padded[k : k + len(x)] @ kernel[:, :, k].T for k in range(3)) + bias
        return np.asarray(x + _gelu(np.asarray(conv, dtype=np.float32)), dtype=np.float32)

    def _interaction(
        self, contexts: list[str], replies: list[str], pairs: list[tuple[int, int]]
    ) -> FloatArray:
        """Per (context index, reply index) pair: reply characters attend over the context's."""
        w, cfg = self.weights, self.config
        ctx_seqs = [self._char_seq(c) for c in contexts]
        rep_seqs = [self._char_seq(r) for r in replies]
        scale = 1.0 / math.sqrt(cfg.char_dim)
        rows: list[FloatArray] = []
        starts: list[int] = []
        kept: list[int] = []
        n_rows = 0
        for i, (c, r) in enumerate(pairs):
            ctx, rep = ctx_seqs[c], rep_seqs[r]
            if len(rep) == 0:
                continue  # an empty reply pools to zeros
            if len(ctx):
                sim = rep @ ctx.T * scale
                sim = np.exp(sim - sim.max(axis=1, keepdims=True))
                aligned = (sim / sim.sum(axis=1, keepdims=True)) @ ctx
            else:
                aligned = np.zeros_like(rep)
            rows.append(np.concatenate([rep, aligned, rep * aligned, rep - aligned], axis=1))
            starts.append(n_rows)
            kept.append(i)
            n_rows += len(rep)
        out = np.zeros((len(pairs), 2 * cfg.char_dim), dtype=np.float32)
        if rows:
            # One compare matmul for every character of every pair, then per-pair pooling.
            z = _gelu(_linear(w, "interaction.compare", np.concatenate(rows)))
            lengths = np.diff([*starts, n_rows])[:, None]
            out[kept] = np.concatenate(
                [
                    np.maximum.reduceat(z, starts, axis=0),
                    np.add.reduceat(z, starts, axis=0) / lengths,
                ],
                axis=1,
            )
        return _linear(w, "interaction.out", out)

    def _pair_logits(
        self, contexts: list[tuple[str, str]], replies: list[str], pairs: list[tuple[int, int]]
    ) -> FloatArray:
        """Logits of prepared (last turn, context) × prepared reply pairs, given by index."""
        cfg = self.config
        vectors: dict[str, FloatArray] = {}
        if self._encoder is not None:  # one encoder call for every distinct text
            texts = list(dict.fromkeys([t for c in contexts for t in c] + replies))
            vectors = dict(zip(texts, self._encoder.encode(texts), strict=True))
        ci = [c for c, _ in pairs]
        ri = [r for _, r in pairs]
        u = self._encode_contexts(contexts, vectors)[ci]
        v = self._encode_replies(replies, vectors)[ri]
        parts = [u, v, u * v, np.abs(u - v)]
        last_sh = [text_shingles(c[0]) for c in contexts]
        ctx_sh = [text_shingles(c[1]) for c in contexts]
        rep_sh = [text_shingles(r) for r in replies]
        overlap = [
            overlap_from_shingles(
                last_sh[c], ctx_sh[c], rep_sh[r], len(contexts[c][0]), len(replies[r])
            )
            for c, r in pairs
        ]
        parts.append(np.asarray(overlap, dtype=np.float32).reshape(len(pairs), OVERLAP_FEATURES))
        if cfg.char_interaction:
            parts.append(self._interaction([c[1] for c in contexts], replies, pairs))
        x = np.concatenate(parts, axis=1)
        x = _gelu(_linear(self.weights, "head.0", x))
        x = _gelu(_linear(self.weights, "head.3", x))
        return np.asarray(_linear(self.weights, "head.5", x)[:, 0], dtype=np.float32)

    def logits(self, context_turns: Sequence[str], replies: Sequence[str]) -> FloatArray:
        """Raw model logits (before the calibrating sigmoid), one per reply."""
        if not replies:
            return np.zeros(0, dtype=np.float32)
        cfg = self.config
        context = prepare_context(list(context_turns), cfg)
        texts = list(dict.fromkeys(prepare_reply(r, cfg) for r in replies))
        where = {t: i for i, t in enumerate(texts)}
        pairs = [(0, where[prepare_reply(r, cfg)]) for r in replies]
        return self._pair_logits([context], texts, pairs)

    def probabilities(self, logits: npt.ArrayLike) -> npt.NDArray[np.float64]:
        z = self.scale * np.asarray(logits, dtype=np.float64) + self.bias
        return np.clip(_sigmoid(np.nan_to_num(z)), 0.0, 1.0)

    def score(
        self, context_turns: Sequence[str], replies: Sequence[str]
    ) -> npt.NDArray[np.float64]:
        """P(reply is the real one for this context), one per reply, each in [0, 1]."""
        return self.probabilities(self.logits(context_turns, replies))

    def score_pairs(self, pairs: Sequence[tuple[Sequence[str], str]]) -> npt.NDArray[np.float64]:
        """Batch `score`: every distinct context and reply is featurised once, all pairs at once."""
        if not pairs:
            return np.zeros(0, dtype=np.float64)
        cfg = self.config
        context_of: dict[tuple[str, ...], int] = {}
        contexts: list[tuple[str, str]] = []
        reply_of: dict[str, int] = {}
        index: list[tuple[int, int]] = []
        for turns, reply in pairs:
            key = tuple(turns)
            if key not in context_of:
                context_of[key] = len(contexts)
                contexts.append(prepare_context(list(turns), cfg))
            text = prepare_reply(reply, cfg)
            if text not in reply_of:
                reply_of[text] = len(reply_of)
            index.append((context_of[key], reply_of[text]))
        return self.probabilities(self._pair_logits(contexts, list(reply_of), index))


def load_matcher(path: Path, encoder: SentenceEncoder | None = None) -> InDomainMatcher:
    """Loads a matcher saved by `matcher_train.train_matcher` (a directory, or its matcher.json)."""
    directory = path.parent if path.name == META_FILE else path
    meta = json.loads((directory / META_FILE).read_text(encoding="utf-8"))
    if meta.get("format") != FORMAT_VERSION:
        raise ValueError(
            f"{directory}: matcher format {meta.get('format')!r}, need {FORMAT_VERSION}"
        )
    with np.load(directory / WEIGHTS_FILE, allow_pickle=False) as archive:
        weights = {name: archive[name] for name in archive.files}
    return InDomainMatcher(weights, meta, encoder)


# --- evaluation -------------------------------------------------------------------------------------

ScoreFn = Callable[[list[str], list[str]], npt.ArrayLike]


def evaluate_ecd(score_fn: ScoreFn, groups: Sequence[EcdGroup]) -> dict[str, float]:
    """R10@1, R10@2, R10@5 of `score_fn(context_turns, candidates) -> scores` over ECD groups.

    Ties are neither won nor lost: a true reply tied with t others and beaten by g counts its
    expected hit rate under a random order of the tied ones, min(1, max(0, (k - g) / (t + 1))).
    A constant scorer thus gets 0.1 / 0.2 / 0.5 on groups of ten. NaN scores are an error.
    """
    if not groups:
        raise ValueError("no groups to evaluate")
    hits = {1: 0.0, 2: 0.0, 5: 0.0}
    for index, group in enumerate(groups):
        scores = np.asarray(
            score_fn(list(group.context), list(group.candidates)), dtype=np.float64
        ).reshape(-1)
        if scores.shape[0] != len(group.candidates):
            raise ValueError(
                f"group {index}: {scores.shape[0]} scores for {len(group.candidates)} candidates"
            )
        if np.isnan(scores).any():
            raise ValueError(f"group {index}: score_fn returned NaN")
        true = scores[group.answer]
        greater = int((scores > true).sum())
        ties = int((scores == true).sum()) - 1
        for k in hits:
            hits[k] += min(1.0, max(0.0, (k - greater) / (ties + 1)))
    n = len(groups)
    return {
        "r10_at_1": hits[1] / n,
        "r10_at_2": hits[2] / n,
        "r10_at_5": hits[5] / n,
        "n": n,
    }
