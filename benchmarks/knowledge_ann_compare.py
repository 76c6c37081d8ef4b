"""Compare nearest-neighbour indexes for the knowledge base (the measurements behind the choice of
faiss IVF in app/knowledge/index.py; docs/knowledge.md has the results).

    python -m benchmarks.knowledge_ann_compare --entries 100000            # random unit vectors
    python -m benchmarks.knowledge_ann_compare --real ../shared/data       # USE vectors of JDDC

Random: numpy exact, faiss IVF-Flat (the app's index), faiss HNSW-Flat and, when installed
(``pip install usearch``), usearch HNSW in f16 and i8, each built with two threads and queried
one query at a time on one thread; queries are noisy copies of stored vectors (cosine ~0.94 and
~0.83), so recall@1 is measured against a known answer. Real: the USE vectors of the JDDC
2018 and 2019 customer questions; 1,000 held-out questions are searched in the others, and the
IVF index's top 1 and top 10 are compared with exact search's (at that size the app itself
would search exactly: this measures how well IVF's cells fit real sentence vectors).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

DIM = 512


def _p(times: list[float], q: float) -> float:
    return round(float(np.percentile(times, q)) * 1000, 3)


def _timed(search: Any, queries: np.ndarray) -> tuple[dict[str, float], np.ndarray]:
    search(queries[0])
    times, tops = [], []
    for q in queries:
        t0 = time.perf_counter()
        tops.append(search(q))
        times.append(time.perf_counter() - t0)
    return {"p50_ms": _p(times, 50), "p95_ms": _p(times, 95)}, np.asarray(tops)


def random_compare(n: int) -> dict[str, Any]:
    import faiss

    from app.knowledge.index import nlist_for, nprobe_for
    from benchmarks.knowledge import random_unit_vectors

    vectors = random_unit_vectors(n, 0)
    rng = np.random.default_rng(1)
    answers = rng.choice(n, 200, replace=False)
    noise = rng.standard_normal((200, DIM), dtype=np.float32)
    close, far = vectors[answers] + 0.015 * noise, vectors[answers] + 0.03 * noise
    out: dict[str, Any] = {"entries": n, "vectors": "random unit vectors"}

    def run(name: str, build: Any, search: Any) -> None:
        faiss.omp_set_num_threads(2)
        t0 = time.perf_counter()
        index = build()
        build_s = round(time.perf_counter() - t0, 2)
        faiss.omp_set_num_threads(1)
        timing, tops = _timed(lambda q: search(index, q), close)
        _, far_tops = _timed(lambda q: search(index, q), far)
        out[name] = {
            "build_s": build_s,
            **timing,
            "recall_at_1": float((tops == answers).mean()),
            "recall_at_1_far": float((far_tops == answers).mean()),
        }

    run("numpy_exact", lambda: vectors, lambda x, q: int(np.argmax(x @ q)))

    def ivf() -> Any:
        index = faiss.IndexIVFFlat(
            faiss.IndexFlatIP(DIM), DIM, nlist_for(n), faiss.METRIC_INNER_PRODUCT
        )
        index.train(vectors[rng.choice(n, min(n, 40 * nlist_for(n)), replace=False)])
        index.add(vectors)
        index.nprobe = nprobe_for(nlist_for(n))
        return index

    run("faiss_ivf_flat", ivf, lambda x, q: int(x.search(q[None], 10)[1][0, 0]))

    def hnsw() -> Any:
        index = faiss.IndexHNSWFlat(DIM, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 40
        index.add(vectors)
        index.hnsw.efSearch = 64
        return index

    run("faiss_hnsw_flat", hnsw, lambda x, q: int(x.search(q[None], 10)[1][0, 0]))
    try:
        from usearch.index import Index
    except ImportError:
        out["usearch"] = "not installed"
        return out
    for dtype in ("f16", "i8"):

        def build(dtype: str = dtype) -> Any:
            index = Index(ndim=DIM, metric="ip", dtype=dtype, connectivity=16)
            index.add(np.arange(n), vectors, threads=2)
            return index

        run(f"usearch_hnsw_{dtype}", build, lambda x, q: int(x.search(q, 10, threads=1).keys[0]))
    return out


def real_compare(data: Path) -> dict[str, Any]:
    from app.knowledge.index import VectorIndex, nlist_for
    from app.scoring import corpus
    from app.scoring.scorers import USESimilarity, prepare

    pairs = list(corpus.read_jddc2018(data / "jddc2018/train.enc", data / "jddc2018/train.dec"))
    pairs += list(corpus.read_jddc2019(data / "jddc2019/chat_0.1per.txt"))
    questions = list(dict.fromkeys(p.context[-1] for p in pairs))
    t0 = time.perf_counter()
    vectors = np.asarray(USESimilarity().encode([prepare(q) for q in questions]), np.float32)
    encode_s = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    held = rng.choice(len(questions), 1000, replace=False)
    rest = np.setdiff1d(np.arange(len(questions)), held)
    ids = rest.astype(np.int64)
    exact = VectorIndex.build(ids, vectors[rest], DIM, ann_threshold=10**9)
    _, e_ids = exact.search(vectors[held], 10)
    out: dict[str, Any] = {
        "vectors": "USE vectors of JDDC 2018 + 2019 customer questions",
        "indexed": len(rest),
        "queries": len(held),
        "nlist": nlist_for(len(rest)),
        "encode_per_s": round(len(questions) / encode_s, 1),
    }
    # The app probes 3% of the cells, at least 32 (here: 8% of them). Fewer probes show how the
    # cells hold up when a query sees a smaller share.
    for nprobe in (2, 4, 8, 12, 32):
        ivf = VectorIndex.build(ids, vectors[rest], DIM, ann_threshold=1, nprobe=nprobe)
        _, a_ids = ivf.search(vectors[held], 10)
        overlap = np.mean([len(set(e) & set(a)) / 10 for e, a in zip(e_ids, a_ids, strict=True)])
        out[f"nprobe_{nprobe}"] = {
            "share_of_cells_probed": round(nprobe / nlist_for(len(rest)), 4),
            "top1_agrees_with_exact": float((e_ids[:, 0] == a_ids[:, 0]).mean()),
            "top10_overlap_with_exact": round(float(overlap), 3),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--real", type=Path, help="the shared data folder (JDDC 2018 + 2019)")
    args = parser.parse_args()
    result = real_compare(args.real) if args.real else random_compare(args.entries)
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
