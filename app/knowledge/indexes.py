"""The knowledge base's search indexes, one per entry kind: built from the store's embeddings on
first use, cached on disk when an ANN index, and kept up to date after each import and removal.

Not locked itself: ``KnowledgeBase`` calls it under its lock."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from app.knowledge.formats import EntryKind
from app.knowledge.index import VectorIndex
from app.store import Store

KINDS: tuple[EntryKind, ...] = ("dialogue", "faq")


class KindIndexes:
    """``VectorIndex`` per kind for the entries in ``store``; ``encoder_version`` names the
    encoder the stored vectors must come from (a cached index of another one is not used)."""

    def __init__(
        self,
        store: Store,
        cache_dir: Path,
        ann_threshold: int,
        encoder_version: Callable[[], str],
    ) -> None:
        self.store = store
        self.cache_dir = cache_dir
        self.ann_threshold = ann_threshold
        self.encoder_version = encoder_version
        self._indexes: dict[EntryKind, VectorIndex] | None = None

    @property
    def loaded(self) -> bool:
        return self._indexes is not None

    def all(self) -> dict[EntryKind, VectorIndex]:
        """Every kind's index, built (or read from the cache) the first time."""
        if self._indexes is None:
            self._indexes = {kind: self._load(kind) for kind in KINDS}
        return self._indexes

    def drop(self) -> None:
        """Forget the indexes: they are built from the store again on the next use."""
        self._indexes = None

    def add(self, kind: EntryKind, ids: Sequence[int], vectors: npt.NDArray[np.float32]) -> None:
        """Entries saved to the store: searched from now on (nothing to do before a first use)."""
        if self._indexes is not None:
            self._indexes[kind].add(ids, vectors)

    def remove(self, kind: EntryKind, ids: Sequence[int]) -> None:
        if self._indexes is not None:
            self._indexes[kind].remove(ids)

    def changed(self, kind: EntryKind) -> None:
        """After an import or removal changed ``kind``'s entries: a stale or now too small ANN
        index is built again, a current one's cache is written again."""
        if self._indexes is None:
            return
        index = self._indexes[kind]
        if index.stale or (index.kind == "ivf" and len(index) < self.ann_threshold // 2):
            self._indexes[kind] = self._load(kind)  # rebuilt from the store
        elif index.kind == "ivf":
            with self.store.session() as session:
                ids = self.store.knowledge_ids(session, kind)
            self._save_cache(kind, index, ids)

    def _cache_path(self, kind: str) -> Path:
        return self.cache_dir / f"knowledge-{kind}.faiss"

    def _fingerprint(self, ids: Sequence[int]) -> str:
        digest = hashlib.sha256(self.encoder_version().encode())
        digest.update(np.asarray(ids, dtype="<i8").tobytes())
        return digest.hexdigest()

    def _load(self, kind: EntryKind) -> VectorIndex:
        with self.store.session() as session:
            ids = self.store.knowledge_ids(session, kind)
        fingerprint = self._fingerprint(ids)
        dim = self._dim()
        if len(ids) >= self.ann_threshold and dim:
            cached = VectorIndex.load(self._cache_path(kind), fingerprint, dim)
            if cached is not None and len(cached) == len(ids):
                return cached
        got_ids: list[int] = []
        chunks: list[npt.NDArray[np.float32]] = []
        after = 0
        while True:
            with self.store.session() as session:
                page = self.store.knowledge_embeddings_page(session, kind, after)
            if not page:
                break
            got_ids += [i for i, _ in page]
            chunks.append(
                np.frombuffer(b"".join(e for _, e in page), dtype="<f4").reshape(len(page), -1)
            )
            after = page[-1][0]
        dim = chunks[0].shape[1] if chunks else dim or 512
        vectors = np.concatenate(chunks) if chunks else np.zeros((0, dim), np.float32)
        index = VectorIndex.build(got_ids, vectors, dim, self.ann_threshold)
        if index.kind == "ivf":
            self._save_cache(kind, index, got_ids)
        return index

    def _dim(self) -> int:
        """The vectors' dimension, from any stored embedding (0 when there is none)."""
        for kind in KINDS:
            with self.store.session() as session:
                page = self.store.knowledge_embeddings_page(session, kind, 0, 1)
            if page:
                return len(page[0][1]) // 4
        return 0

    def _save_cache(self, kind: EntryKind, index: VectorIndex, ids: Sequence[int]) -> None:
        with contextlib.suppress(OSError):  # no cache: the index is built from the store next time
            index.save(self._cache_path(kind), self._fingerprint(sorted(ids)))
