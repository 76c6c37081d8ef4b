"""``xiaoer bench knowledge``: how fast the knowledge index builds and answers, per size.

The index timings use random unit vectors of the USE dimension (512), generated here: a million
real entries would take ~30 minutes to encode. Random vectors are the hard case for an ANN index
(no clusters to exploit), so the recall figures are a floor; each query is a noisy copy of one
stored vector (cosine ~0.9 to it), so its true nearest neighbour is known. One real-encoder
figure is added: the time to encode a query with the shared USE model, and a whole search
(encode, index, read the entries) over the demo FAQ.
"""

from __future__ import annotations

import gc
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from app.knowledge.index import ANN_THRESHOLD, VectorIndex, nlist_for, nprobe_for

DIM = 512
QUERIES = 200
EXACT_QUERIES_MAX = 50
"""Exact searches timed at sizes where the IVF index answers (for comparison; slow at 1M)."""
NOISE = 0.015
"""Per-dimension noise of a query around its stored vector: cosine ≈ 1/√(1 + 512·σ²) ≈ 0.94."""
FAR_NOISE = 0.03
"""A harder set of queries, cosine ≈ 0.83 to their stored vector (recall only)."""
K = 10


def rss_mb() -> float:
    """This process's resident memory now (Linux /proc; elsewhere the peak so far)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, AttributeError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def random_unit_vectors(n: int, seed: int) -> npt.NDArray[np.float32]:
    rng = np.random.default_rng(seed)
    out = np.empty((n, DIM), np.float32)
    for start in range(0, n, 100_000):
        part = rng.standard_normal((min(100_000, n - start), DIM), dtype=np.float32)
        out[start : start + len(part)] = part / np.linalg.norm(part, axis=1, keepdims=True)
    return out


def _ms(times: list[float], q: float) -> float:
    return round(float(np.percentile(times, q)) * 1000, 3)


def _time_searches(
    index: VectorIndex, queries: npt.NDArray[np.float32]
) -> tuple[list[float], npt.NDArray[np.int64]]:
    index.search(queries[:1], K)  # warm caches
    times, tops = [], []
    for q in queries:
        t0 = time.perf_counter()
        _, ids = index.search(q[None], K)
        times.append(time.perf_counter() - t0)
        tops.append(ids[0, 0])
    return times, np.asarray(tops)


def bench_size(n: int, seed: int = 0) -> dict[str, Any]:
    gc.collect()
    base_mb = rss_mb()
    vectors = random_unit_vectors(n, seed)
    rng = np.random.default_rng(seed + 1)
    answers = rng.choice(n, QUERIES, replace=False)
    noise = rng.standard_normal((QUERIES, DIM), dtype=np.float32)
    queries = vectors[answers] + NOISE * noise
    far_queries = vectors[answers] + FAR_NOISE * noise
    ids = np.arange(1, n + 1, dtype=np.int64)

    t0 = time.perf_counter()
    index = VectorIndex.build(ids, vectors, DIM)
    build_s = time.perf_counter() - t0
    times, tops = _time_searches(index, queries)
    result: dict[str, Any] = {
        "entries": n,
        "index": index.kind,
        "build_s": round(build_s, 2),
        "p50_query_ms": _ms(times, 50),
        "p95_query_ms": _ms(times, 95),
        "recall_at_1": round(float((tops == ids[answers]).mean()), 3),
        "recall_at_1_far": round(
            float((index.search(far_queries, 1)[1][:, 0] == ids[answers]).mean()), 3
        ),
    }
    if index.kind == "ivf":
        result.update(nlist=nlist_for(n), nprobe=nprobe_for(nlist_for(n)))
        exact = VectorIndex.build(ids, vectors, DIM, ann_threshold=n + 1)
        exact_times, exact_tops = _time_searches(exact, queries[:EXACT_QUERIES_MAX])
        result.update(
            exact_p50_query_ms=_ms(exact_times, 50),
            exact_p95_query_ms=_ms(exact_times, 95),
            top1_agrees_with_exact=round(float((tops[:EXACT_QUERIES_MAX] == exact_tops).mean()), 3),
        )
        del exact
    del vectors
    gc.collect()
    result["index_resident_mb"] = round(rss_mb() - base_mb, 1)
    del index
    gc.collect()
    return result


def bench_encoder(runs: int = 30) -> dict[str, Any]:
    """The real USE model: query encode time, and a whole search over the demo FAQ."""
    from app.knowledge.base import KnowledgeBase
    from app.knowledge.demo import import_demo_faq
    from app.store import open_store

    questions = [f"你好，我昨天买的羽绒服第{i}件什么时候发货？" for i in range(runs + 1)]
    with (
        tempfile.TemporaryDirectory() as tmp,
        open_store(f"sqlite:///{Path(tmp) / 'bench.db'}") as store,
    ):
        kb = KnowledgeBase(store)
        t0 = time.perf_counter()
        report = import_demo_faq(kb)
        import_s = time.perf_counter() - t0  # includes loading the USE model
        kb.search(questions[0], K)
        encode, search = [], []
        for q in questions[1:]:
            t0 = time.perf_counter()
            kb.encode([q])
            encode.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            kb.search(q, K)
            search.append(time.perf_counter() - t0)
    return {
        "encoder": kb.encoder_version,
        "demo_faq_entries": report.added,
        "demo_faq_import_s_with_model_load": round(import_s, 2),
        "p50_query_encode_ms": round(statistics.median(encode) * 1000, 2),
        "p95_query_encode_ms": _ms(encode, 95),
        "p50_search_ms": round(statistics.median(search) * 1000, 2),
        "p95_search_ms": _ms(search, 95),
    }


def bench_knowledge(sizes: list[int]) -> dict[str, Any]:
    import faiss

    if not sizes or min(sizes) < K:
        raise ValueError(f"--entries needs sizes of at least {K}")
    return {
        "benchmark": "knowledge",
        "vectors": f"random unit vectors, {DIM} dimensions (the USE size); queries are noisy "
        "copies of stored vectors (cosine ~0.94; _far: ~0.83), so recall is measured against a "
        "known answer. Random vectors have no clusters: the ANN's hardest case.",
        "k": K,
        "queries": QUERIES,
        "ann_threshold": ANN_THRESHOLD,
        "cpu_count": os.cpu_count(),
        "faiss_threads": faiss.omp_get_max_threads(),
        "faiss": faiss.__version__,
        "sizes": [bench_size(n) for n in sizes],
        "real_encoder": bench_encoder(),
    }
