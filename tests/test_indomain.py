"""The in-domain matcher: training on a learnable synthetic shop, ranking metrics, persistence, odd input."""

from __future__ import annotations

import json
import random
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.scoring import corpus, indomain, matcher_features
from app.scoring.corpus import DialoguePair, EcdGroup
from app.scoring.indomain import evaluate_ecd, load_matcher
from app.scoring.matcher_features import MatcherInfo, MatcherTrainConfig

pytest.importorskip("torch", reason="training the matcher needs torch (the hf extra)")
from app.scoring.matcher_train import train_matcher  # after the torch check

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# A tiny shop: eight topics, each with its own question phrasings and agent answers.
TOPICS: dict[str, tuple[list[str], list[str]]] = {
    "shipping": (
        ["什么时候发货", "今天能发货吗", "多久能发出", "下单后几天发货"],
        ["今天下单明天就发货哦", "我们[数字x]小时内发货的亲", "仓库已经在打包了，马上发出"],
    ),
    "price": (
        ["能便宜点吗", "有优惠券吗", "还能降价吗", "有没有满减活动"],
        ["店铺首页可以领取优惠券哦", "现在满[数字x]减[数字x]，很划算的", "价格已经是最低了亲"],
    ),
    "size": (
        ["我身高一米七穿什么码", "尺码偏大还是偏小", "体重[数字x]斤选哪个码", "这款尺码标准吗"],
        ["建议您参考详情页的尺码表", "这款偏小，建议拍大一码", "按平时的尺码选就可以"],
    ),
    "refund": (
        ["怎么申请退款", "退款多久到账", "我不想要了能退吗", "退货运费谁出"],
        [
            "在订单详情点申请退款就可以",
            "退款会在[数字x]个工作日内原路返回",
            "支持七天无理由退货的亲",
        ],
    ),
    "invoice": (
        ["可以开发票吗", "发票怎么开", "能开专票吗", "电子发票在哪下载"],
        [
            "订单完成后可以在订单详情下载电子发票",
            "可以开的，请提供抬头和税号",
            "支持开具增值税专用发票",
        ],
    ),
    "logistics": (
        ["快递到哪了", "物流怎么不动了", "为什么还没送到", "能帮我催一下快递吗"],
        [
            "已经帮您联系快递员加急配送",
            "物流显示已经到达您所在城市的站点了",
            "快递今天会派送的，请保持电话畅通",
        ],
    ),
    "quality": (
        ["衣服有线头怎么办", "收到的商品坏了", "质量有问题可以换吗", "颜色和图片不一样"],
        [
            "非常抱歉，可以给您换一件新的",
            "麻烦拍照片给我们，马上为您处理",
            "质量问题我们承担来回运费",
        ],
    ),
    "stock": (
        ["这个还有货吗", "红色什么时候补货", "缺货还会上吗", "这款有库存吗"],
        ["目前有现货，可以直接下单", "这个颜色预计下周补货哦", "库存紧张，建议尽快下单"],
    ),
}
TRAIN_PRODUCTS = ["连衣裙", "运动鞋", "牛仔裤", "羽绒服", "保温杯", "蓝牙耳机", "洗面奶", "狗粮"]
TEST_PRODUCTS = ["台灯", "背包", "电饭煲", "手机壳"]  # never seen in training
GREETINGS = ["你好", "在吗", "亲", "您好"]
ALL_ANSWERS = sorted({a for _, answers in TOPICS.values() for a in answers})


def shop_pairs(n: int, seed: int, products: list[str]) -> list[tuple[list[str], str, str]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        topic = rng.choice(sorted(TOPICS))
        questions, answers = TOPICS[topic]
        context = [
            rng.choice(GREETINGS),
            "有什么可以帮您的吗",
            f"我买的{rng.choice(products)}{rng.choice(questions)}",
        ]
        out.append((context, rng.choice(answers), topic))
    return out


def shop_groups(n: int, seed: int) -> list[EcdGroup]:
    """Held-out contexts (unseen products), each with its answer and 9 answers of other topics."""
    rng = random.Random(seed)
    groups = []
    for context, answer, topic in shop_pairs(n, seed, TEST_PRODUCTS):
        wrong = [a for a in ALL_ANSWERS if a not in TOPICS[topic][1]]
        candidates = [answer, *rng.sample(wrong, 9)]
        rng.shuffle(candidates)
        groups.append(EcdGroup(tuple(context), tuple(candidates), candidates.index(answer)))
    return groups


def small_config(**overrides: Any) -> MatcherTrainConfig:
    values: dict[str, Any] = {
        "epochs": 20,
        "batch_size": 32,
        "learning_rate": 3e-3,
        "use_sentence_encoder": False,
        "hidden": 64,
        "ngram_buckets": 1 << 12,
        "ngram_dim": 32,
        "char_buckets": 1 << 10,
        "char_dim": 16,
        # Two torch threads spin-wait on each other on a busy 2-core machine: 36 s against 5 s.
        "threads": 1,
    }
    values.update(overrides)
    return MatcherTrainConfig(**values)


class HashingEncoder:
    """A stand-in for USE: normalised hashed bags of characters (deterministic, instant)."""

    calls = 0

    def encode(self, texts: list[str]) -> np.ndarray:
        HashingEncoder.calls += 1
        out = np.zeros((len(texts), 512), dtype=np.float32)
        for i, text in enumerate(texts):
            for ch in text or " ":
                out[i, zlib.crc32(ch.encode("utf-8", errors="replace")) % 512] += 1.0
        return out / np.linalg.norm(out, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, MatcherInfo]:
    out = tmp_path_factory.mktemp("matcher")
    pairs = [(c, a) for c, a, _ in shop_pairs(200, 1, TRAIN_PRODUCTS)]
    info = train_matcher(pairs, out, small_config())
    return out, info


@pytest.fixture(scope="module")
def trained_with_sentences(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small matcher that reads sentence vectors (HashingEncoder in training)."""
    out = tmp_path_factory.mktemp("matcher-sentences")
    pairs = [(c, a) for c, a, _ in shop_pairs(80, 5, TRAIN_PRODUCTS)]
    config = small_config(use_sentence_encoder=True, epochs=2)
    train_matcher(pairs, out, config, encoder=HashingEncoder())
    return out


# --- training and ranking -------------------------------------------------------------------------


def test_trained_matcher_ranks_true_reply_first(trained: tuple[Path, MatcherInfo]) -> None:
    path, info = trained
    matcher = load_matcher(path)
    result = evaluate_ecd(matcher.score, shop_groups(60, 2))
    assert result["n"] == 60
    assert result["r10_at_1"] >= 0.5, result  # chance is 0.1
    assert result["r10_at_5"] >= result["r10_at_2"] >= result["r10_at_1"]
    assert info.metrics["heldout_r10_at_1"] > 0.1


def test_untrained_scores_are_not_already_good(tmp_path: Path) -> None:
    # One step at a tiny learning rate: the ranking skill above must come from training.
    pairs = [(c, a) for c, a, _ in shop_pairs(200, 1, TRAIN_PRODUCTS)]
    train_matcher(pairs, tmp_path, small_config(epochs=1, learning_rate=1e-6))
    result = evaluate_ecd(load_matcher(tmp_path).score, shop_groups(60, 2))
    assert result["r10_at_1"] < 0.4, result


def test_training_writes_config_version_metrics_and_corpus_size(
    trained: tuple[Path, MatcherInfo],
) -> None:
    path, info = trained
    meta = json.loads((path / "matcher.json").read_text(encoding="utf-8"))
    assert meta["version"] == info.version
    assert meta["version"].startswith("indomain-")
    assert meta["seed"] == 13
    assert MatcherTrainConfig.from_dict(meta["config"]) == small_config()
    assert meta["corpus"]["pairs"] == 200
    assert meta["corpus"]["train_pairs"] + meta["corpus"]["calibration_pairs"] == 200
    assert info.n_train == meta["corpus"]["train_pairs"]
    for key in ("heldout_r10_at_1", "heldout_brier", "heldout_ece", "final_loss"):
        assert np.isfinite(meta["metrics"][key])
    assert meta["metrics"]["numpy_torch_max_diff"] < 1e-3
    assert (path / "matcher.npz").is_file()


def test_same_seed_same_model_other_seed_other_model(tmp_path: Path) -> None:
    pairs = [(c, a) for c, a, _ in shop_pairs(120, 3, TRAIN_PRODUCTS)]
    # Bit-identical needs one thread: with the default 15 negatives, two runs on two threads
    # differed in the last bits of the weights (torch's parallel kernels); on one they do not.
    config = small_config(epochs=2, char_interaction=False, threads=1)
    a = train_matcher(pairs, tmp_path / "a", config)
    b = train_matcher(pairs, tmp_path / "b", config)
    other = small_config(epochs=2, char_interaction=False, threads=1, seed=7)
    c = train_matcher(pairs, tmp_path / "c", other)
    assert a.version == b.version
    assert a.version != c.version


def test_progress_reports_each_epoch(tmp_path: Path) -> None:
    events: list[dict[str, Any]] = []
    pairs = [(c, a) for c, a, _ in shop_pairs(60, 4, TRAIN_PRODUCTS)]
    train_matcher(pairs, tmp_path, small_config(epochs=3), progress=events.append)
    epochs = [e["epoch"] for e in events if e["stage"] == "train"]
    assert epochs == [1, 2, 3]
    assert events[-1]["stage"] == "done"
    json.dumps(events)  # JSON-lines friendly


def test_dialogue_pairs_and_a_sentence_encoder(tmp_path: Path) -> None:
    raw = shop_pairs(160, 5, TRAIN_PRODUCTS)
    pairs = [DialoguePair(tuple(c), a, f"chat{i // 4}") for i, (c, a, _) in enumerate(raw)]
    encoder = HashingEncoder()
    info = train_matcher(pairs, tmp_path, small_config(use_sentence_encoder=True), encoder=encoder)
    assert info.metrics["numpy_torch_max_diff"] < 1e-3
    matcher = load_matcher(tmp_path, encoder=encoder)
    result = evaluate_ecd(matcher.score, shop_groups(40, 6))
    assert result["r10_at_1"] >= 0.4, result


def test_too_few_pairs_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least"):
        train_matcher([(["你好"], "您好")] * 5, tmp_path, small_config())


@pytest.mark.parametrize(
    "bad",
    [
        {"epochs": 0},
        {"batch_size": 1},
        {"negatives": 0},
        {"hard_negatives": -1},
        {"hidden": 63},
        {"ngram_buckets": 1},
        {"learning_rate": 0.0},
        {"dropout": 1.0},
        {"calibration_fraction": 0.0},
        {"calibration_fraction": 0.6},
        {"context_turns": 0},
    ],
)
def test_config_validation(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        MatcherTrainConfig(**bad)


# --- persistence and the batch API --------------------------------------------------------------------


def test_save_load_round_trip_gives_identical_scores(
    trained: tuple[Path, MatcherInfo],
) -> None:
    path, _ = trained
    first, second = load_matcher(path), load_matcher(path / "matcher.json")
    context = ["你好", "有什么可以帮您的吗", "我买的台灯什么时候发货"]
    np.testing.assert_array_equal(
        first.score(context, ALL_ANSWERS), second.score(context, ALL_ANSWERS)
    )
    assert first.version == second.version


def test_score_pairs_matches_score(trained: tuple[Path, MatcherInfo]) -> None:
    matcher = load_matcher(trained[0])
    a = ["在吗", "我买的背包退款多久到账"]
    b = ["你好", "我买的台灯有优惠券吗"]
    pairs = [(a, ALL_ANSWERS[0]), (b, ALL_ANSWERS[1]), (a, ALL_ANSWERS[2]), (b, ALL_ANSWERS[3])]
    batch = matcher.score_pairs(pairs)
    # float32 rows batched differently may differ in the last bits, no more
    single_a = matcher.score(a, [ALL_ANSWERS[0], ALL_ANSWERS[2]])
    single_b = matcher.score(b, [ALL_ANSWERS[1], ALL_ANSWERS[3]])
    np.testing.assert_allclose(batch[[0, 2]], single_a, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(batch[[1, 3]], single_b, rtol=1e-5, atol=1e-7)
    assert matcher.score_pairs([]).shape == (0,)


def test_odd_inputs_get_defined_scores(trained: tuple[Path, MatcherInfo]) -> None:
    matcher = load_matcher(trained[0])
    odd = ["", "😀😀😀", "好" * 100_000, "\x00\xff\ud800\x1b[31m" * 50, "   \n\t ", "[数字x]"]
    odd += ["Das ist eine deutsche Antwort.", "これは日本語の返事です", "مرحبا"]
    contexts: list[list[str]] = [[], [""], ["😀"], ["a" * 100_000], ["\x00\x01\x02"]]
    for context in contexts:
        scores = matcher.score(context, odd)
        assert scores.shape == (len(odd),)
        assert np.all(np.isfinite(scores)) and np.all((scores >= 0) & (scores <= 1))
    assert matcher.score(["你好"], []).shape == (0,)


def test_long_texts_are_cut_before_featurising(trained: tuple[Path, MatcherInfo]) -> None:
    """Only the end of a 220k-char context and the start of a 220k-char reply are read."""
    matcher = load_matcher(trained[0])
    huge = "我买的台灯什么时候发货" * 20_000
    full = matcher.score([huge], [huge, "今天下单明天就发货哦"])
    cut = matcher.score([huge[-2000:]], [huge[:2000], "今天下单明天就发货哦"])
    np.testing.assert_array_equal(full, cut)


class CountingEncoder(HashingEncoder):
    """HashingEncoder that records every text it is asked to encode."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def encode(self, texts: list[str]) -> np.ndarray:
        self.seen += texts
        return super().encode(texts)


def test_cached_encoder_is_a_bounded_lru() -> None:
    inner = CountingEncoder()
    cache = matcher_features.CachedEncoder(inner, max_items=2)
    texts = ["一", "二", "三", "四", "一"]
    rows = cache.encode(texts)  # a call larger than the cache still returns every row
    np.testing.assert_array_equal(rows, inner.encode(texts))
    assert inner.seen[:4] == ["一", "二", "三", "四"]  # each distinct text once
    inner.seen.clear()
    cache.encode(["四", "三"])  # the two most recent stayed
    assert inner.seen == []
    cache.encode(["一"])  # evicted: encoded again
    assert inner.seen == ["一"]
    assert len(cache._cache) == 2


def test_scorer_encodes_each_distinct_text_once(trained_with_sentences: Path) -> None:
    """Similarity and the in-domain matcher share one USE model and cache (load_scorer's wiring)."""
    from app.scoring.registry import load_scorer
    from app.scoring.scorers import ScoreItem, USESimilarity

    scorer = load_scorer(matching=str(trained_with_sentences))
    assert isinstance(scorer.similarity_model, USESimilarity)
    counting = CountingEncoder()
    scorer.similarity_model.cached.encoder = counting  # stands in for USE behind the shared cache
    query, cloud = "我买的台灯什么时候发货", "今天下单明天就发货哦"
    scorer.score(query, "仓库已经在打包了，马上发出", cloud)
    assert sorted(counting.seen) == sorted([query, "仓库已经在打包了，马上发出", cloud])
    counting.seen.clear()
    scorer.score(query, "我们[数字x]小时内发货的亲", cloud)  # a second draft for the same query
    assert counting.seen == ["我们[数字x]小时内发货的亲"]
    counting.seen.clear()
    items = [ScoreItem([f"{query}{i}"], f"回复{i % 3}", cloud) for i in range(6)]
    scorer.score_many(items)
    assert sorted(counting.seen) == sorted(
        {*(f"{query}{i}" for i in range(6)), "回复0", "回复1", "回复2"}
    )


@pytest.mark.parametrize(
    "text",
    ["", "😀😀😀", "好" * 100_000, "\x00\xff\ufffe binary \x07", "Das ist eine deutsche Antwort."],
    ids=["empty", "emoji", "100k", "binary", "german"],
)
def test_default_scorer_with_a_trained_matcher_scores_odd_input(
    trained_with_sentences: Path, text: str
) -> None:
    """The default once a matcher is trained: real USE similarity + the in-domain matcher."""
    from app.scoring.registry import load_scorer

    scorer = load_scorer(matching=str(trained_with_sentences))
    for result in (scorer.score(text, text, text), scorer.score("可以开发票吗", text, "可以的")):
        assert 0.0 <= result.final <= 1.0 and 0.0 <= result.matching <= 1.0
    if not text:
        assert scorer.score("可以开发票吗", text, "可以的").matching == 0.0


# --- evaluate_ecd -------------------------------------------------------------------------------------


def table_scorer(table: dict[str, list[float]]) -> indomain.ScoreFn:
    return lambda context, _candidates: table[context[0]]


def group(name: str, answer: int) -> EcdGroup:
    return EcdGroup((name,), tuple(f"{name}-{i}" for i in range(10)), answer)


def test_evaluate_ecd_exact_values_with_ties() -> None:
    groups = [group("top", 0), group("second", 3), group("all-tied", 5), group("tie-top", 1)]
    groups.append(group("tie-second", 2))
    table = {
        "top": [9.0, 1, 1, 1, 1, 1, 1, 1, 1, 1],
        "second": [1.0, 1, 1, 5, 1, 1, 1, 1, 1, 6],  # one reply beats the true one
        "all-tied": [0.5] * 10,  # a constant scorer must not look good
        "tie-top": [3.0, 3, 1, 1, 1, 1, 1, 1, 1, 1],  # tied with one other at the top
        "tie-second": [2.0, 2, 2, 2, 9, 1, 1, 1, 1, 1],  # one above, tied with three others
    }
    result = evaluate_ecd(table_scorer(table), groups)
    r1 = (1 + 0 + 0.1 + 0.5 + 0) / 5
    r2 = (1 + 1 + 0.2 + 1 + 0.25) / 5
    r5 = (1 + 1 + 0.5 + 1 + 1) / 5
    assert result == pytest.approx({"r10_at_1": r1, "r10_at_2": r2, "r10_at_5": r5, "n": 5})


def test_evaluate_ecd_last_place_and_constant_scorer() -> None:
    last = evaluate_ecd(lambda _c, cands: [-float(i) for i in range(len(cands))], [group("g", 9)])
    assert last == {"r10_at_1": 0.0, "r10_at_2": 0.0, "r10_at_5": 0.0, "n": 1}
    groups = [group(f"g{i}", i) for i in range(10)]
    constant = evaluate_ecd(lambda _c, cands: np.zeros(len(cands)), groups)
    assert constant == pytest.approx({"r10_at_1": 0.1, "r10_at_2": 0.2, "r10_at_5": 0.5, "n": 10})


def test_evaluate_ecd_rejects_bad_scores() -> None:
    with pytest.raises(ValueError, match="3 scores for 10"):
        evaluate_ecd(lambda _c, _r: [1.0, 2.0, 3.0], [group("g", 0)])
    with pytest.raises(ValueError, match="NaN"):
        evaluate_ecd(lambda _c, _r: [float("nan")] * 10, [group("g", 0)])
    with pytest.raises(ValueError, match="no groups"):
        evaluate_ecd(lambda _c, _r: [], [])


# --- the real JDDC data (slow) -------------------------------------------------------------------------


@pytest.mark.slow
def test_real_jddc_matcher_beats_lexical_baseline(tmp_path: Path) -> None:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real JDDC data not found at {SHARED_DATA} (research-only, not in the repo)")
    pairs = list(
        corpus.read_jddc2018(
            SHARED_DATA / "jddc2018" / "train.enc", SHARED_DATA / "jddc2018" / "train.dec"
        )
    )
    pairs += list(corpus.read_jddc2019(SHARED_DATA / "jddc2019" / "chat_0.1per.txt"))
    split = corpus.build_heldout_split(pairs, n_test=300, seed=13)
    subset = random.Random(0).sample(split.train, 3000)
    config = MatcherTrainConfig(epochs=4, negatives=11, char_interaction=False)  # kept short
    info = train_matcher(subset, tmp_path, config)
    trained = evaluate_ecd(load_matcher(tmp_path).score, split.test)

    def lexical(context: list[str], candidates: list[str]) -> list[float]:
        last, full = matcher_features.prepare_context(context, config)
        return [matcher_features.overlap_features(last, full, c)[1] for c in candidates]

    baseline = evaluate_ecd(lexical, split.test)
    assert trained["n"] == baseline["n"] >= 250
    assert trained["r10_at_1"] > baseline["r10_at_1"] + 0.03, (trained, baseline, info.metrics)
