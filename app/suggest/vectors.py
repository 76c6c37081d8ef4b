"""Sentence vectors of the knowledge entries' recent context and answers, for the ranker.

The knowledge base stores and indexes the vector of each entry's question (the customer's last
message). Ranking also needs the vector of the entry's last few turns (does its situation match
ours, not just its last message?) and of its answer (how close is this answer to the answers given
in similar situations?). They are computed once per entry with the same USE model, kept in memory
and cached in one ``.npz`` file next to the knowledge index, keyed by entry id; entries imported
later are encoded when first needed.
"""

from __future__ import annotations

import threading
import zipfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from app.fsio import atomic_write_bytes
from app.knowledge import KnowledgeBase, KnowledgeEntry

Floats = npt.NDArray[np.float32]
CONTEXT_TURNS = 3
"""Turns that make up an entry's (and a conversation's) recent context."""
STOCK_SIZE = 500
"""The shop's most typical answers, offered as candidates in every situation (see `stock_ids`)."""
CACHE_FILE = "suggest-vectors.npz"
ENCODE_BATCH = 256


def context_window(turns: Sequence[str]) -> str:
    return " ".join(t for t in turns[-CONTEXT_TURNS:] if t)


class KnowledgeVectors:
    """Query, recent-context and answer vectors per knowledge entry id (unit rows)."""

    def __init__(self, kb: KnowledgeBase, path: Path | None = None) -> None:
        self.kb = kb
        self.path = path if path is not None else kb.cache_dir / CACHE_FILE
        self._lock = threading.Lock()
        self._row: dict[int, int] = {}
        self._ids: list[int] = []
        self._kind: list[str] = []
        self._answers: list[str] = []
        self._conv: list[str] = []
        dim = 512
        self._q = np.zeros((0, dim), np.float32)
        self._c = np.zeros((0, dim), np.float32)
        self._a = np.zeros((0, dim), np.float32)
        self._stock: npt.NDArray[np.int64] = np.zeros(0, np.int64)
        self._centroid: Floats | None = None
        self._stock_entries: dict[int, KnowledgeEntry] = {}
        self._load()

    # --- persistence ---------------------------------------------------------------------------

    def _load(self) -> None:
        if not self.path.is_file():
            return
        try:
            with np.load(self.path, allow_pickle=False) as data:
                if str(data["encoder"]) != self.kb.encoder_version:
                    return  # made by another encoder: encode again
                ids = [int(i) for i in data["ids"]]
                self._q, self._c, self._a = data["q"], data["c"], data["a"]
                self._kind = [str(k) for k in data["kind"]]
                self._answers = [str(a) for a in data["answers"]]
                self._conv = [str(c) for c in data["conv"]]
        except (OSError, KeyError, ValueError, zipfile.BadZipFile):
            return  # a broken cache is rebuilt, never trusted
        self._ids = ids
        self._row = {i: r for r, i in enumerate(ids)}
        self._refresh_stock()

    def save(self) -> None:
        import io

        with self._lock:
            buffer = io.BytesIO()
            np.savez(
                buffer,
                encoder=np.array(self.kb.encoder_version),
                ids=np.array(self._ids, np.int64),
                q=self._q,
                c=self._c,
                a=self._a,
                kind=np.array(self._kind, dtype=str),
                answers=np.array(self._answers, dtype=str),
                conv=np.array(self._conv, dtype=str),
            )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.path, buffer.getvalue())

    # --- filling -------------------------------------------------------------------------------

    def ensure(self, entries: Iterable[KnowledgeEntry]) -> int:
        """Encode the entries not known yet; returns how many were added."""
        missing = list({e.id: e for e in entries if e.id not in self._row}.values())
        for start in range(0, len(missing), ENCODE_BATCH):
            batch = missing[start : start + ENCODE_BATCH]
            q = self.kb.encode([e.query for e in batch])
            c = self.kb.encode([context_window(e.context) or e.query for e in batch])
            a = self.kb.encode([e.answer for e in batch])
            with self._lock:
                fresh = [i for i, e in enumerate(batch) if e.id not in self._row]
                for i in fresh:
                    e = batch[i]
                    self._row[e.id] = len(self._ids)
                    self._ids.append(e.id)
                    self._kind.append(e.kind)
                    self._answers.append(e.answer)
                    self._conv.append(e.conversation or f"entry:{e.id}")
                self._q = np.concatenate([self._q, q[fresh]])
                self._c = np.concatenate([self._c, c[fresh]])
                self._a = np.concatenate([self._a, a[fresh]])
        if missing:
            self._refresh_stock()
        return len(missing)

    def build_all(self, progress: Callable[[int, int], None] | None = None) -> int:
        """Every entry of the knowledge base encoded, entries removed from it dropped, saved."""
        entries = list(self.kb.entries())
        present = {e.id for e in entries}
        with self._lock:
            keep = [r for r, i in enumerate(self._ids) if i in present]
            if len(keep) != len(self._ids):
                self._ids = [self._ids[r] for r in keep]
                self._kind = [self._kind[r] for r in keep]
                self._answers = [self._answers[r] for r in keep]
                self._conv = [self._conv[r] for r in keep]
                self._q, self._c, self._a = self._q[keep], self._c[keep], self._a[keep]
                self._row = {i: r for r, i in enumerate(self._ids)}
        missing = [e for e in entries if e.id not in self._row]
        added = 0
        for start in range(0, len(missing), ENCODE_BATCH * 4):
            added += self.ensure(missing[start : start + ENCODE_BATCH * 4])
            if progress is not None:
                progress(added, len(missing))
        self._refresh_stock()
        self.save()
        return added

    def _refresh_stock(self) -> None:
        """The centroid of all past answers, and the `STOCK_SIZE` distinct past answers nearest it:
        the replies a shop gives in many situations ("还有其他可以帮您的吗")."""
        with self._lock:
            dialogue = np.array([k == "dialogue" for k in self._kind], bool)
            if not dialogue.any():
                self._centroid, self._stock = None, np.zeros(0, np.int64)
                return
            centroid = self._a[dialogue].mean(0)
            centroid /= max(float(np.linalg.norm(centroid)), 1e-12)
            self._centroid = centroid.astype(np.float32)
            rows = np.flatnonzero(dialogue)
            order = rows[np.argsort(-(self._a[rows] @ self._centroid), kind="stable")]
            seen: set[str] = set()
            stock: list[int] = []
            for r in order:
                if self._answers[r] not in seen:
                    seen.add(self._answers[r])
                    stock.append(self._ids[r])
                    if len(stock) == STOCK_SIZE:
                        break
            self._stock = np.array(stock, np.int64)

    # --- reading -------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, entry_id: object) -> bool:
        return entry_id in self._row

    def rows(self, ids: Sequence[int]) -> npt.NDArray[np.int64]:
        return np.array([self._row[i] for i in ids], np.int64)

    def query(self, ids: Sequence[int]) -> Floats:
        return self._q[self.rows(ids)]

    def context(self, ids: Sequence[int]) -> Floats:
        return self._c[self.rows(ids)]

    def answer(self, ids: Sequence[int]) -> Floats:
        return self._a[self.rows(ids)]

    def answer_text(self, entry_id: int) -> str:
        return self._answers[self._row[entry_id]]

    def conversation(self, entry_id: int) -> str:
        return self._conv[self._row[entry_id]]

    def centrality(self, answers: Floats) -> npt.NDArray[np.float64]:
        """Cosine of answer vectors to the centroid of all past answers (0 with no history)."""
        if self._centroid is None or not len(answers):
            return np.zeros(len(answers))
        return np.asarray(answers @ self._centroid, np.float64)

    def stock_entry(self, entry_id: int) -> KnowledgeEntry:
        """A stock reply as an entry holding its answer (its question and context are not kept
        here; the store has them)."""
        entry = self._stock_entries.get(entry_id)
        if entry is None:
            entry = KnowledgeEntry(
                id=entry_id,
                source="",
                kind="dialogue",
                context=(),
                query="",
                answer=self.answer_text(entry_id),
                conversation=self.conversation(entry_id),
            )
            self._stock_entries[entry_id] = entry
        return entry

    def stock_ids(self) -> list[int]:
        return [int(i) for i in self._stock]

    def dialogue_ids(self) -> list[int]:
        return [i for i, k in zip(self._ids, self._kind, strict=True) if k == "dialogue"]
