"""Nearest-neighbour search over the entries' unit vectors (inner product = cosine).

Below ``ANN_THRESHOLD`` vectors the search is exact: one numpy matrix product. Above it a faiss
inverted-file index (``IndexIVFFlat``) answers: the vectors are grouped into ``nlist`` cells by
k-means, and a query scans only the ``nprobe`` cells nearest to it (3% of them). faiss
(``faiss-cpu``, Meta, MIT) ships wheels for Linux, macOS and Windows; hnswlib has no wheel here
and builds from source; usearch's and faiss's HNSW graphs took several times longer to build
than the IVF index on two cores (docs/knowledge.md has the measurements). IVF also adds and removes entries in place, so an
import or a removal updates the index without rebuilding it.

The IVF index is trained on the vectors it is built from; when it grows past ``RETRAIN_GROWTH``
times that, ``stale`` says so and its owner rebuilds it from the store.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from app.fsio import atomic_write_bytes

ANN_THRESHOLD = 30_000
"""Vectors from which the IVF index is used. Exact search of one query over 10k 512-d vectors
takes ~1 ms here, over 30k ~3–5 ms, and it grows linearly (~150–200 ms at 1M) while the IVF index
answers in under a millisecond from 30k on; below 30k its build (k-means, ~2 s) buys nothing.
Measured with ``xiaoer bench knowledge`` (docs/knowledge.md)."""
FEW_QUERIES = 8
"""Up to this many queries are searched on one thread: a single query's matrix product is too
small to share, and next to a busy decoder two threads spin-wait on each other (measured: 12 ms
instead of 0.8 ms for 10k vectors)."""
MIN_NPROBE = 32
PROBED_SHARE = 0.03
"""Share of the cells a query scans (at least ``MIN_NPROBE``). On the USE vectors of JDDC
questions, IVF's top 1 agreed with exact search's for 92% of queries at 2% of the cells, 98% at
8%; on a million random vectors, 3.2% of the cells (128) found a query's planted neighbour at
cosine 0.83 for 97.5% of queries in 10.5 ms (0.8%: 83%, 2 ms). docs/knowledge.md has the runs."""
RETRAIN_GROWTH = 4.0
_MAX_SCORES = 1 << 25
"""Query × vector scores computed at once by the exact search (128 MB of float32)."""

Floats = npt.NDArray[np.float32]
Ids = npt.NDArray[np.int64]
IndexKind = Literal["exact", "ivf"]


def normalized(vectors: npt.ArrayLike) -> Floats:
    out = np.array(vectors, dtype=np.float32, ndmin=2)
    out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    return out


def nlist_for(n: int) -> int:
    """Cells for n vectors: ~4·√n (faiss's guideline), so a cell holds ~√n/4 vectors."""
    return int(min(16384, max(16, 4 * np.sqrt(n))))


def nprobe_for(nlist: int) -> int:
    """Cells a query scans: ``PROBED_SHARE`` of them, at least ``MIN_NPROBE`` (all if fewer)."""
    return min(nlist, max(MIN_NPROBE, int(np.ceil(PROBED_SHARE * nlist))))


class VectorIndex:
    """Ids and their unit vectors, searched by inner product."""

    def __init__(
        self, dim: int, ann_threshold: int = ANN_THRESHOLD, nprobe: int | None = None
    ) -> None:
        """``nprobe``: cells a query scans in the IVF index; None: ``nprobe_for(nlist)``."""
        self.ann_threshold = ann_threshold
        self.nprobe = nprobe
        self._reset(dim)

    def _reset(self, dim: int) -> None:
        self.dim = dim
        # Exact: rows [0, n) of a matrix with spare capacity, so small adds don't copy it all.
        self._matrix: Floats = np.zeros((0, dim), dtype=np.float32)
        self._ids: Ids = np.zeros(0, dtype=np.int64)
        self._n = 0
        self._ivf: Any = None
        self._trained_on = 0

    @property
    def kind(self) -> IndexKind:
        return "exact" if self._ivf is None else "ivf"

    def __len__(self) -> int:
        return int(self._ivf.ntotal) if self._ivf is not None else self._n

    @property
    def stale(self) -> bool:
        """The IVF index grew so far past what it was trained on that its cells are crowded."""
        return self._ivf is not None and len(self) > RETRAIN_GROWTH * self._trained_on

    def ids(self) -> Ids:
        if self._ivf is not None:
            raise RuntimeError("the IVF index does not list its ids")
        return self._ids[: self._n].copy()

    # --- changes ---------------------------------------------------------------------------------

    def add(self, ids: npt.ArrayLike, vectors: npt.ArrayLike) -> None:
        ids_arr = np.asarray(ids, dtype=np.int64).reshape(-1)
        vecs = normalized(vectors) if len(ids_arr) else np.zeros((0, self.dim), np.float32)
        if len(self) == 0 and self._ivf is None and vecs.shape[1] != self.dim:
            self._reset(vecs.shape[1])  # an empty index takes the first vectors' dimension
        if vecs.shape != (len(ids_arr), self.dim):
            raise ValueError(
                f"{len(ids_arr)} ids need {len(ids_arr)}×{self.dim} vectors, got {vecs.shape}"
            )
        if not len(ids_arr):
            return
        if self._ivf is not None:
            self._ivf.add_with_ids(vecs, ids_arr)
            return
        need = self._n + len(ids_arr)
        if need >= self.ann_threshold:
            self._build_ivf(
                np.concatenate([self._ids[: self._n], ids_arr]),
                np.concatenate([self._matrix[: self._n], vecs]),
            )
            return
        if need > len(self._matrix):
            grown = np.zeros((max(need, 2 * len(self._matrix), 1024), self.dim), np.float32)
            grown[: self._n] = self._matrix[: self._n]
            ids_grown = np.zeros(len(grown), np.int64)
            ids_grown[: self._n] = self._ids[: self._n]
            self._matrix, self._ids = grown, ids_grown
        self._matrix[self._n : need] = vecs
        self._ids[self._n : need] = ids_arr
        self._n = need

    def remove(self, ids: npt.ArrayLike) -> int:
        """Remove these ids (unknown ones are ignored); returns how many were removed."""
        ids_arr = np.asarray(ids, dtype=np.int64).reshape(-1)
        if not len(ids_arr):
            return 0
        if self._ivf is not None:
            return int(self._ivf.remove_ids(ids_arr))
        keep = ~np.isin(self._ids[: self._n], ids_arr)
        kept = int(keep.sum())
        removed = self._n - kept
        if removed:
            self._matrix[:kept] = self._matrix[: self._n][keep]
            self._ids[:kept] = self._ids[: self._n][keep]
            self._n = kept
        return removed

    def _build_ivf(self, ids: Ids, vectors: Floats) -> None:
        import faiss

        n = len(ids)
        nlist = nlist_for(n)
        quantizer = faiss.IndexFlatIP(self.dim)
        ivf = faiss.IndexIVFFlat(quantizer, self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
        ivf.cp.min_points_per_centroid = 5  # fewer than faiss's 39 points a cell: quieter, faster
        sample = min(n, 40 * nlist)
        rng = np.random.default_rng(0)  # the same vectors give the same index
        pick = np.sort(rng.choice(n, sample, replace=False)) if sample < n else slice(None)
        ivf.train(np.ascontiguousarray(vectors[pick]))
        ivf.add_with_ids(np.ascontiguousarray(vectors), ids)
        ivf.nprobe = self.nprobe or nprobe_for(nlist)
        self._reset(self.dim)
        self._ivf, self._trained_on = ivf, n

    @classmethod
    def build(
        cls,
        ids: npt.ArrayLike,
        vectors: npt.ArrayLike,
        dim: int,
        ann_threshold: int = ANN_THRESHOLD,
        nprobe: int | None = None,
    ) -> VectorIndex:
        index = cls(dim, ann_threshold, nprobe)
        ids_arr = np.asarray(ids, dtype=np.int64).reshape(-1)
        if len(ids_arr) >= ann_threshold:
            index._build_ivf(ids_arr, normalized(vectors))
        else:
            index.add(ids_arr, vectors)
        return index

    # --- search --------------------------------------------------------------------------------

    def search(self, queries: npt.ArrayLike, k: int) -> tuple[npt.NDArray[np.float32], Ids]:
        """(similarities, ids), each (queries × k'), best first, k' = min(k, len(self)); rows are
        padded with id -1 where the IVF search found fewer than k'."""
        q = normalized(queries)
        if q.shape[1] != self.dim:
            raise ValueError(f"queries have {q.shape[1]} dimensions, the index {self.dim}")
        k = min(k, len(self))
        if k <= 0:
            return np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64)
        with _one_thread() if len(q) <= FEW_QUERIES else contextlib.nullcontext():
            if self._ivf is not None:
                sims, ids = self._ivf.search(q, k)
                return sims.astype(np.float32), ids.astype(np.int64)
            return self._exact(q, k)

    def _exact(self, q: Floats, k: int) -> tuple[npt.NDArray[np.float32], Ids]:
        matrix, ids = self._matrix[: self._n], self._ids[: self._n]
        out_sims = np.empty((len(q), k), np.float32)
        out_ids = np.empty((len(q), k), np.int64)
        step = max(1, _MAX_SCORES // max(self._n, 1))
        for start in range(0, len(q), step):
            scores = q[start : start + step] @ matrix.T  # (queries, n)
            top = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k < self._n else None
            if top is None:
                top = np.broadcast_to(np.arange(self._n), scores.shape)
            top_scores = np.take_along_axis(scores, top, axis=1)
            order = np.argsort(-top_scores, axis=1, kind="stable")
            rows = np.take_along_axis(top, order, axis=1)
            out_sims[start : start + step] = np.take_along_axis(top_scores, order, axis=1)
            out_ids[start : start + step] = ids[rows]
        return out_sims, out_ids

    # --- cache file ------------------------------------------------------------------------------

    def save(self, path: Path, fingerprint: str) -> None:
        """Write the IVF index to ``path`` (all or nothing), tagged with ``fingerprint``."""
        import faiss

        if self._ivf is None:
            raise RuntimeError("only the IVF index is cached; the exact one builds in no time")
        data = faiss.serialize_index(self._ivf).tobytes()
        meta = json.dumps({"fingerprint": fingerprint, "trained_on": self._trained_on}).encode()
        # All or nothing (temp file, fsync, rename); private: the vectors encode customers' words.
        atomic_write_bytes(path, len(meta).to_bytes(4, "little") + meta + data, mode=0o600)

    @classmethod
    def load(
        cls, path: Path, fingerprint: str, dim: int, nprobe: int | None = None
    ) -> VectorIndex | None:
        """The index cached at ``path`` if it is whole and was saved with ``fingerprint``; None
        otherwise (a missing, damaged or outdated cache is rebuilt, never fatal)."""
        import faiss

        try:
            raw = path.read_bytes()
            size = int.from_bytes(raw[:4], "little")
            meta = json.loads(raw[4 : 4 + size])
            if meta.get("fingerprint") != fingerprint:
                return None
            ivf = faiss.extract_index_ivf(
                faiss.deserialize_index(np.frombuffer(raw[4 + size :], dtype=np.uint8))
            )
            if ivf.d != dim:
                return None
        except (OSError, ValueError, RuntimeError, UnicodeDecodeError):
            return None
        index = cls(dim, nprobe=nprobe)
        ivf.nprobe = nprobe or nprobe_for(ivf.nlist)
        index._ivf, index._trained_on = ivf, int(meta.get("trained_on", ivf.ntotal))
        return index


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """numpy's BLAS and faiss's OpenMP on one thread for the duration."""
    import faiss

    from app.scoring.scorers import scorer_threads

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        with scorer_threads(1):
            yield
    finally:
        faiss.omp_set_num_threads(before)
