"""The shop's knowledge base: imported past dialogues and FAQ entries, stored with the sentence
vectors of their questions, and searched by the cosine of those vectors.

The store is the truth (entries and embeddings live in SQLite); the search index is built from it
on first use, cached on disk when it is an ANN index, and kept up to date by every import and
removal made through this object. Safe to share between threads: imports and searches may run on
different workers (an import encodes without holding the lock, so searches go on meanwhile).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from sqlalchemy.exc import IntegrityError

from app.knowledge.formats import (
    EntryKind,
    ImportFormat,
    KnowledgeError,
    ParsedEntry,
    ParseResult,
    format_of,
    parse_file,
    parse_pairs,
)
from app.knowledge.index import ANN_THRESHOLD, VectorIndex, normalized
from app.knowledge.indexes import KINDS, KindIndexes
from app.scoring.corpus import DialoguePair
from app.store import Store
from app.store.knowledge import NewKnowledgeEntry

ProgressFn = Callable[[int, int], None]
"""(entries embedded and saved so far, entries to embed) during an import."""
ENCODE_BATCH = 512
"""Queries encoded (and then saved, in one short unit of work) at a time during an import."""


class SentenceEncoder(Protocol):
    version: str

    def encode(self, texts: list[str]) -> Any: ...


@dataclass(frozen=True)
class KnowledgeEntry:
    id: int
    source: str
    """The source's name."""
    kind: str
    """"dialogue" (a past agent reply) or "faq"."""
    context: tuple[str, ...]
    """The turns before the answer (customer first, alternating); an FAQ entry: (question,)."""
    query: str
    """The customer's last message (dialogue) or the FAQ question."""
    answer: str
    """The agent's reply or the FAQ answer."""
    conversation: str | None = None
    """The chat a past dialogue came from, when the file says (evaluations hold chats out)."""


@dataclass(frozen=True)
class KnowledgeHit:
    entry: KnowledgeEntry
    similarity: float
    """The cosine of the USE vectors of the search query and ``entry.query``."""


@dataclass(frozen=True)
class SourceInfo:
    name: str
    kind: str
    format: str
    path: str | None
    entries: int
    imported_at: datetime
    updated_at: datetime


@dataclass
class ImportReport:
    source: str
    format: str
    kind: str
    read: int = 0
    """Entries read from the file (after leaving out broken lines and duplicates)."""
    added: int = 0
    removed: int = 0
    """Entries of an earlier import that the file no longer holds."""
    unchanged: int = 0
    duplicates: int = 0
    skipped: int = 0
    """Lines, rows or blocks that could not be read."""
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        text = (
            f"{self.source}: {self.read} {self.kind} entries read, {self.added} added, "
            f"{self.removed} removed, {self.unchanged} unchanged"
        )
        if self.duplicates:
            text += f", {self.duplicates} duplicates left out"
        if self.skipped:
            text += f"; {self.skipped} unreadable lines skipped ({'; '.join(self.problems)})"
        return text


class KnowledgeBase:
    """The shop's knowledge in ``store``; ``encoder``: the app's shared USE model by default."""

    def __init__(
        self,
        store: Store,
        encoder: SentenceEncoder | None = None,
        *,
        cache_dir: Path | None = None,
        ann_threshold: int = ANN_THRESHOLD,
    ) -> None:
        self.store = store
        self._encoder = encoder
        self.cache_dir = cache_dir if cache_dir is not None else store.path.parent / "cache"
        self.ann_threshold = ann_threshold
        self._lock = threading.RLock()
        self.indexes = KindIndexes(
            store, self.cache_dir, ann_threshold, lambda: self.encoder_version
        )

    # --- the encoder -------------------------------------------------------------------------------

    @property
    def encoder(self) -> SentenceEncoder:
        if self._encoder is None:
            from app.scoring.scorers import USESimilarity

            self._encoder = USESimilarity()  # the process's one USE model, shared with scoring
        return self._encoder

    @property
    def encoder_version(self) -> str:
        return str(getattr(self.encoder, "version", type(self.encoder).__name__))

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Unit vectors of texts as the entries' questions are encoded (cleaned, cut)."""
        from app.scoring.scorers import prepare

        if not texts:
            return np.zeros((0, 0), np.float32)
        return normalized(self.encoder.encode([prepare(t) for t in texts]))

    # --- importing ---------------------------------------------------------------------------------

    def import_file(
        self,
        path: str | Path,
        fmt: ImportFormat | None = None,
        name: str | None = None,
        progress: ProgressFn | None = None,
    ) -> ImportReport:
        """Import (or import again) a knowledge file as the source ``name`` (default: the file's
        name). Again: entries new in the file are added, those gone from it removed, the rest
        left as they are (not encoded again). Raises KnowledgeError for a file that can't be read
        and for a default name already taken by another file's source."""
        path = Path(path).expanduser().resolve()
        if not path.exists():
            raise KnowledgeError(f"{path}: no such file or folder")
        fmt = fmt or format_of(path)
        parsed = parse_file(path, fmt)
        if name is None:
            name = path.name if path.is_dir() else path.stem
            with self.store.session() as session:
                existing = self.store.knowledge_source(session, name)
                if existing is not None and existing.path not in (None, str(path)):
                    raise KnowledgeError(
                        f"A knowledge source named {name!r} already exists (from "
                        f"{existing.path}). Give this one another name (--name), or the same "
                        "name on purpose to replace that source's entries with this file's."
                    )
        return self._import(name, parsed, fmt, str(path), progress)

    def import_pairs(
        self,
        name: str,
        pairs: Iterable[DialoguePair | tuple[Sequence[str], str]],
        kind: EntryKind = "dialogue",
        progress: ProgressFn | None = None,
    ) -> ImportReport:
        """Import pairs held in memory as the source ``name`` (format "pairs"): past dialogues,
        or with ``kind="faq"`` (question turns, answer) pairs whose last turn is the question."""
        parsed = parse_pairs(pairs)
        if kind == "faq":
            parsed.entries = [ParsedEntry("faq", (e.query,), e.answer) for e in parsed.entries]
            parsed.kind = "faq"
        elif kind != "dialogue":
            raise ValueError(f"kind must be 'dialogue' or 'faq', not {kind!r}")
        if not parsed.entries:
            raise KnowledgeError(f"{name}: no pairs with a customer message and a reply")
        return self._import(name, parsed, "pairs", None, progress)

    def _import(
        self,
        name: str,
        parsed: ParseResult,
        fmt: str,
        path: str | None,
        progress: ProgressFn | None,
    ) -> ImportReport:
        started = time.perf_counter()
        name = name.strip()
        if not name:
            raise KnowledgeError("A knowledge source needs a name")
        report = ImportReport(
            name, fmt, parsed.kind, skipped=parsed.skipped, problems=list(parsed.problems)
        )
        unique: dict[str, ParsedEntry] = {}
        for entry in parsed.entries:
            unique.setdefault(entry.content_hash, entry)
        report.read = len(unique)
        report.duplicates = len(parsed.entries) - len(unique)

        with self.store.session() as session:
            source = self.store.knowledge_source(session, name)
            if source is None:
                source = self.store.add_knowledge_source(
                    session,
                    name,
                    kind=parsed.kind,
                    format=fmt,
                    path=path,
                    encoder=self.encoder_version,
                )
            elif source.kind != parsed.kind:
                raise KnowledgeError(
                    f"The source {name!r} holds {source.kind} entries and this file "
                    f"{parsed.kind} entries: give it another name"
                )
            source_id = source.id
            stale_encoder = source.encoder != self.encoder_version
            known = self.store.knowledge_hashes(session, source_id)
        if stale_encoder:
            self._reembed(source_id)
        new = [e for h, e in unique.items() if h not in known]
        vanished = [i for h, i in known.items() if h not in unique]
        report.unchanged = len(unique) - len(new)

        for start in range(0, len(new), ENCODE_BATCH):
            batch = new[start : start + ENCODE_BATCH]
            vectors = self.encode([e.query for e in batch])  # outside any unit of work
            rows = _new_rows(batch, vectors)
            # Saved and indexed under the lock: an index built from the store meanwhile would
            # otherwise hold this batch already and get it twice.
            with self._lock:
                try:
                    with self.store.session() as session:
                        ids = self.store.add_knowledge_entries(session, source_id, rows)
                        self.store.refresh_knowledge_source(session, source_id)
                except IntegrityError as exc:  # the unique (source, hash): another import ran
                    raise KnowledgeError(
                        f"{name}: another import of this source ran at the same time; "
                        f"import it again ({report.added} entries were added before this)"
                    ) from exc
                self.indexes.add(parsed.kind, ids, vectors)
            report.added += len(ids)
            if progress is not None:
                progress(report.added, len(new))

        with self._lock:
            with self.store.session() as session:
                self.store.delete_knowledge_entries(session, vanished)
                self.store.refresh_knowledge_source(
                    session, source_id, path=path, format=fmt, encoder=self.encoder_version
                )
            report.removed = len(vanished)
            self.indexes.remove(parsed.kind, vanished)
            if new or vanished:
                self.indexes.changed(parsed.kind)
        report.seconds = round(time.perf_counter() - started, 3)
        return report

    def _reembed(self, source_id: int) -> None:
        """Encode a source's questions again: its vectors were made by another encoder."""
        with self.store.session() as session:
            source = self.store.knowledge_source_by_id(session, source_id)
            name = source.name if source is not None else ""
        after = 0
        while True:
            with self.store.session() as session:
                rows = self.store.knowledge_entries_page(session, after, ENCODE_BATCH, name)
            if not rows:
                break
            vectors = self.encode([r.query for r in rows])
            with self.store.session() as session:
                self.store.set_knowledge_embeddings(
                    session, {r.id: vectors[i].astype("<f4").tobytes() for i, r in enumerate(rows)}
                )
            after = rows[-1].id
        with self.store.session() as session:
            self.store.refresh_knowledge_source(session, source_id, encoder=self.encoder_version)
        with self._lock:
            self.indexes.drop()  # rebuilt from the new vectors on the next search

    # --- sources -----------------------------------------------------------------------------------

    def sources(self) -> list[SourceInfo]:
        with self.store.session() as session:
            return [
                SourceInfo(s.name, s.kind, s.format, s.path, s.entries, s.imported_at, s.updated_at)
                for s in self.store.knowledge_sources(session)
            ]

    def remove(self, name: str) -> int:
        """Remove a source and its entries; returns how many entries went with it."""
        with self._lock:
            with self.store.session() as session:
                source = self.store.knowledge_source(session, name)
                if source is None:
                    raise KnowledgeError(f"No knowledge source named {name!r}")
                kind = source.kind
                ids = self.store.remove_knowledge_source(session, name)
            self.indexes.remove(kind, ids)
            self.indexes.changed(kind)
        return len(ids)

    def entries(self, source: str | None = None) -> Iterator[KnowledgeEntry]:
        """Every entry (of one source) in import order, read a page at a time."""
        after = 0
        while True:
            with self.store.session() as session:
                rows = self.store.knowledge_entries_page(session, after, 1000, source)
            if not rows:
                return
            for row in rows:
                yield _entry(row)
            after = rows[-1].id

    def __len__(self) -> int:
        with self.store.session() as session:
            return self.store.knowledge_count(session)

    # --- search ------------------------------------------------------------------------------------

    def search(self, query: str, k: int = 10, kind: str | None = None) -> list[KnowledgeHit]:
        """The ``k`` entries whose questions are most similar to ``query``, best first."""
        if not query.strip() or k <= 0:
            return []
        return self.search_vectors(self.encode([query]), k, kind)[0]

    def search_vectors(
        self, vectors: npt.ArrayLike, k: int = 10, kind: str | None = None
    ) -> list[list[KnowledgeHit]]:
        """``search`` for many queries at once, given as their (USE) vectors, one row each."""
        queries = normalized(vectors)
        if kind is not None and kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS} or None, not {kind!r}")
        kinds = KINDS if kind is None else (kind,)
        found: list[list[tuple[float, int]]] = [[] for _ in range(len(queries))]
        with self._lock:
            indexes = self._ensure_indexes()
            for name in kinds:
                index = indexes[name]
                if not len(index):
                    continue
                if index.dim != queries.shape[1]:
                    raise ValueError(
                        f"the query vectors have {queries.shape[1]} dimensions, the knowledge "
                        f"base's {index.dim}"
                    )
                sims, ids = index.search(queries, k)
                for row in range(len(queries)):
                    found[row] += [
                        (float(s), int(i))
                        for s, i in zip(sims[row], ids[row], strict=True)
                        if i >= 0
                    ]
        best = [sorted(row, key=lambda hit: -hit[0])[:k] for row in found]
        wanted = sorted({i for row in best for _, i in row})
        with self.store.session() as session:
            rows = self.store.knowledge_entries_by_id(session, wanted)
        entries = {i: _entry(r) for i, r in rows.items()}
        return [
            [KnowledgeHit(entries[i], s) for s, i in row if i in entries]  # removed meanwhile
            for row in best
        ]

    def index_kinds(self) -> dict[str, str]:
        """Which index serves each kind ("exact" or "ivf"), building them if needed."""
        with self._lock:
            return {name: index.kind for name, index in self._ensure_indexes().items()}

    def warm(self) -> None:
        """Build the index now (it is built on the first search otherwise)."""
        with self._lock:
            self._ensure_indexes()

    def _ensure_indexes(self) -> dict[EntryKind, VectorIndex]:
        """The indexes, built on first use after the sources another encoder embedded are
        embedded again (under the lock)."""
        if not self.indexes.loaded:
            with self.store.session() as session:
                stale = [
                    s.id for s in self.store.stale_knowledge_sources(session, self.encoder_version)
                ]
            for source_id in stale:
                self._reembed(source_id)
        return self.indexes.all()


def _new_rows(
    batch: Sequence[ParsedEntry], vectors: npt.NDArray[np.float32]
) -> list[NewKnowledgeEntry]:
    """Parsed entries with their questions' vectors, as the store saves them."""
    return [
        NewKnowledgeEntry(
            e.kind,
            e.context,
            e.query,
            e.answer,
            e.content_hash,
            vectors[i].astype("<f4").tobytes(),
            e.conversation,
        )
        for i, e in enumerate(batch)
    ]


def _entry(row: Any) -> KnowledgeEntry:
    return KnowledgeEntry(
        id=row.id,
        source=row.source,
        kind=row.kind,
        context=tuple(row.context),
        query=row.query,
        answer=row.answer,
        conversation=row.conversation,
    )
