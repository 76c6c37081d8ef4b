"""``xiaoer bench engine|score|redact|teacher``: what the app does live, each with a baseline
measured in the same run."""

from __future__ import annotations

import resource
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

from app.engine import weights
from app.engine.backend import GenerationConfig
from app.engine.conversation import Turn
from app.engine.end_model import EndModel, EngineConfig

# A 4-turn conversation (agent greeting, customer, agent, customer); the last question varies per
# run so that no run is served from a fully cached prompt — only the shared prefix is reused,
# exactly as in a live chat.
HISTORY = [
    Turn("agent", "您好，欢迎光临小店，请问有什么可以帮您？"),
    Turn("customer", "我昨天下的单，想问一下什么时候发货"),
    Turn("agent", "亲，您的订单已经在打包了，今天下午就会发出哦。"),
]
QUESTIONS = [
    "可以选择快递吗？",
    "能便宜点吗？",
    "今天买的话今天发货吗？",
    "这个尺码偏大还是偏小？",
    "可以开发票吗？",
    "收到货不满意可以退吗？",
]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _time_stream(stream: Iterator[str], count_tokens: Callable[[str], int]) -> tuple[float, float]:
    """(seconds to the first text, decode tokens/s after it) for one streamed reply."""
    start = time.perf_counter()
    first = None
    pieces = []
    for piece in stream:
        if first is None:
            first = time.perf_counter()
        pieces.append(piece)
    end = time.perf_counter()
    if first is None:
        raise RuntimeError("the model produced no output")
    n_tokens = count_tokens("".join(pieces))
    decode_s = end - first
    return first - start, (n_tokens - 1) / decode_s if decode_s > 0 and n_tokens > 1 else 0.0


def bench_engine(model_spec: str, runs: int, max_tokens: int) -> dict[str, Any]:
    from app.engine.llamacpp_backend import completion_kwargs, default_threads, open_llama

    if model_spec in weights.PROFILES:
        weights.provision(weights.PROFILES[model_spec])
    generation = GenerationConfig(temperature=0.0, max_tokens=max_tokens, seed=1)
    questions = (QUESTIONS * (runs // len(QUESTIONS) + 2))[: runs + 1]

    t0 = time.perf_counter()
    model = EndModel.load(EngineConfig(model=model_spec), generation)
    load_s = time.perf_counter() - t0
    count = model.backend.count_tokens
    app_runs = [
        _time_stream(model.stream_reply([*HISTORY, Turn("customer", q)]), count) for q in questions
    ][1:]  # the first run warms caches and allocators
    prompts = [model.prepare([*HISTORY, Turn("customer", q)])[0] for q in questions]
    n_ctx = model.backend.n_ctx
    app_rss = peak_rss_mb()
    model.close()
    del model

    # Baseline: raw llama-cpp-python on the same prompts with the same settings.
    source = weights.resolve(model_spec)
    llm = open_llama(source.path, n_ctx, default_threads())
    kwargs = completion_kwargs(generation, ["<|im_end|>", "<|endoftext|>", "<|im_start|>"])

    def raw_stream(prompt: str) -> Iterator[str]:
        for chunk in llm.create_completion(prompt, **kwargs):
            yield chunk["choices"][0]["text"]

    def raw_count(text: str) -> int:
        return len(llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    raw_runs = [_time_stream(raw_stream(p), raw_count) for p in prompts][1:]
    llm.close()

    def median(values: list[float]) -> float:
        return round(statistics.median(values), 4)

    decode = median([r[1] for r in app_runs])
    raw_decode = median([r[1] for r in raw_runs])
    return {
        "benchmark": "engine",
        "model": model_spec,
        "runs": runs,
        "max_tokens": max_tokens,
        "threads": default_threads(),
        "load_s": round(load_s, 3),
        "ttft_s": median([r[0] for r in app_runs]),
        "decode_tok_s": decode,
        "raw_ttft_s": median([r[0] for r in raw_runs]),
        "raw_decode_tok_s": raw_decode,
        "decode_ratio": round(decode / raw_decode, 3) if raw_decode else None,
        "peak_rss_mb": round(app_rss, 1),
    }


REPLIES = [
    "亲，可以的，您下单时备注想要的快递公司就可以了。",
    "这款连衣裙是纯棉面料的，洗后不会缩水。",
    "亲亲，价格已经是活动价了，暂时没有办法再优惠了哦。",
    "今天下午四点前付款的订单当天就能发货。",
    "可以开发票的，下单时选择电子发票并填写抬头即可。",
    "支持七天无理由退货，商品不影响二次销售就可以。",
]


def _score_items(n: int, history: bool = False, tag: str = "") -> list[Any]:
    from app.scoring.scorers import ScoreItem

    items = []
    for i in range(n):
        q = QUESTIONS[i % len(QUESTIONS)]
        earlier = [t.text for t in HISTORY] if history else []
        # Distinct texts per item, so no run is served by de-duplication or the cache.
        items.append(
            ScoreItem(
                [*earlier, f"{q}（第{i}位顾客{tag}）"],
                f"{REPLIES[i % len(REPLIES)]}（{i}{tag}）",
                f"{REPLIES[(i + 1) % len(REPLIES)]}[{i}{tag}]",
            )
        )
    return items


def _median_ms(scorer: Any, items: list[Any]) -> float:
    """Median ms of `scorer.score(context, draft, cloud_reply)`, one draft at a time."""
    times = []
    for item in items:
        t0 = time.perf_counter()
        scorer.score(item.context, item.reply, item.cloud_reply)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def _time_scorer(scorer: Any, runs: int, batch: int) -> dict[str, float]:
    """Per-draft latency (new query, new cloud reply, new draft), the same with a 4-turn
    conversation, a second draft for an already scored query and cloud reply, and batch pairs/s."""
    items = _score_items(runs + batch + 1)
    scorer.score_many(items[:1])  # load the models
    per_draft = _median_ms(scorer, items[1 : runs + 1])
    four_turn = _median_ms(scorer, _score_items(runs, history=True, tag="·4"))
    # Another draft for each query already scored above: the query and cloud reply are cached.
    again = [
        type(it)(it.context, f"{REPLIES[(i + 2) % len(REPLIES)]}<{i}>", it.cloud_reply)
        for i, it in enumerate(items[1 : runs + 1])
    ]
    same_query = _median_ms(scorer, again)
    t0 = time.perf_counter()
    scorer.score_many(items[runs + 1 :])
    return {
        "per_draft_ms": per_draft,
        "per_draft_ms_4turn": four_turn,
        "per_draft_ms_same_query": same_query,
        "pairs_per_s": batch / (time.perf_counter() - t0),
    }


def bench_score(runs: int, batch: int) -> dict[str, Any]:
    """Scoring latency and throughput of the default scorer (USE similarity + the active matcher,
    the in-domain one once trained), and of the off-the-shelf e5 matcher (the baseline) in the
    same run. A draft = its similarity to the cloud reply plus the matching of the draft and of
    the cloud reply to the customer's query; every text is new unless the key says otherwise."""
    from app.scoring.registry import load_scorer
    from app.scoring.scorers import SCORER_THREADS

    scorer = load_scorer()
    timing = _time_scorer(scorer, runs, batch)
    result: dict[str, Any] = {
        "benchmark": "score",
        "scorer_versions": scorer.versions,
        "runs": runs,
        "batch": batch,
        "threads": SCORER_THREADS,
        **{k: round(v, 2 if k.endswith("_ms") or "_ms_" in k else 1) for k, v in timing.items()},
    }
    if not scorer.versions["matching"].startswith("e5"):
        base = load_scorer(matching="base")
        base_timing = _time_scorer(base, runs, batch)
        result.update(
            baseline_matching=base.versions["matching"],
            baseline_per_draft_ms=round(base_timing["per_draft_ms"], 2),
            baseline_pairs_per_s=round(base_timing["pairs_per_s"], 1),
            speedup_vs_baseline=round(base_timing["per_draft_ms"] / timing["per_draft_ms"], 2),
        )
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    return result


REDACT_SAMPLES = [
    "我的手机号是13812345678，麻烦尽快发货",
    "订单号：520401029636，什么时候发货",
    "收货地址：上海市浦东新区张江路188号3号楼502室",
    "这件衣服199元，能便宜到159吗？",
    "收件人：张伟，电话13700001111",
    "可以选择快递吗？",
    "快递单号是SF1234567890123，查不到物流",
    "太烦了，我从昨天就一直等这个快递，都不敢出门。",
]


def bench_redact() -> dict[str, Any]:
    """The privacy firewall: the first call (it loads jieba's dictionary and the division names),
    short messages a second, and one 20,000-character text (best of five; docs/firewall.md)."""
    from app.cloud.redact import redact_for_cloud

    t0 = time.perf_counter()
    redact_for_cloud("收件人：张伟，电话13700001111")
    first_ms = (time.perf_counter() - t0) * 1000
    messages = REDACT_SAMPLES * 1000
    t0 = time.perf_counter()
    for text in messages:
        redact_for_cloud(text)
    per_s = len(messages) / (time.perf_counter() - t0)
    joined = "\n".join(REDACT_SAMPLES)
    long_text = (joined * (20_000 // len(joined) + 1))[:20_000]
    runs = []
    for _ in range(5):
        t0 = time.perf_counter()
        redact_for_cloud(long_text)
        runs.append((time.perf_counter() - t0) * 1000)
    return {
        "redact_first_call_ms": round(first_ms, 1),
        "redact_msgs_per_s": round(per_s, 1),
        "redact_20k_chars_ms": round(min(runs), 1),
    }


def bench_teacher(n_labels: int, max_tokens: int, profile: str) -> dict[str, Any]:
    """Labels a minute against the real local teacher server at concurrency 1 and 4, and the
    privacy firewall's throughput."""
    import tempfile
    from pathlib import Path

    from app.cloud.label import LabelTask, label_corpus
    from app.cloud.providers import local_teacher
    from app.cloud.service import TeacherService
    from app.local_server.teacher_server import TeacherServer

    firewall = bench_redact()

    model_path = weights.provision(weights.PROFILES[profile])
    result: dict[str, Any] = {
        "benchmark": "teacher",
        "profile": profile,
        "labels": n_labels,
        "max_tokens": max_tokens,
    }
    with TeacherServer(model_path, n_ctx=2048) as server, tempfile.TemporaryDirectory() as tmp:
        server.start()
        teacher = local_teacher(server.base_url, timeout=600)
        for concurrency in (1, 4):
            service = TeacherService(teacher, max_concurrency=concurrency, max_tokens=max_tokens)
            # Distinct questions per run: no cache, no prompt reuse between the two runs.
            tasks = [
                LabelTask(
                    f"c{concurrency}-{i}",
                    (Turn("customer", f"{QUESTIONS[i % len(QUESTIONS)]}（{concurrency}-{i}）"),),
                    None,
                )
                for i in range(n_labels)
            ]
            report = label_corpus(
                service,
                tasks,
                Path(tmp) / f"c{concurrency}.jsonl",
                concurrency=concurrency,
                progress=lambda line: None,
            )
            if report.failed:
                raise RuntimeError(f"{report.failed} of {n_labels} labels failed")
            result[f"labels_per_min_c{concurrency}"] = round(report.per_minute, 2)
    result.update(firewall)
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    return result
