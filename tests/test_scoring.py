"""The paper's score formula, exactly, and the real offline scorers (USE, e5) behind it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from app.cloud.prompt import ExampleBank, PromptExample
from app.scoring.echo import repeats_customer
from app.scoring.formula import final_score
from app.scoring.scorers import E5Matching, ReplyScorer, ScoreItem, USESimilarity

# --- the formula -------------------------------------------------------------------------------


def test_full_formula() -> None:
    r = final_score(matching=0.5, similarity=0.9, cloud_matching=0.7, alpha=0.8, theta=0.2)
    assert r.mode == "full" and not r.fallback
    assert r.final == pytest.approx(0.8 * 0.9 + 0.2 * 0.5)


@pytest.mark.parametrize(
    ("alpha", "expected"), [(0.0, 0.5), (1.0, 0.9), (0.25, 0.25 * 0.9 + 0.75 * 0.5)]
)
def test_alpha_extremes(alpha: float, expected: float) -> None:
    r = final_score(matching=0.5, similarity=0.9, cloud_matching=0.7, alpha=alpha)
    assert r.final == pytest.approx(expected)


def test_fallback_when_cloud_match_is_below_theta() -> None:
    r = final_score(matching=0.5, similarity=0.9, cloud_matching=0.19, theta=0.2)
    assert r.fallback and r.mode == "fallback" and r.final == 0.9


def test_theta_edge_is_not_below() -> None:
    r = final_score(matching=0.5, similarity=0.9, cloud_matching=0.2, theta=0.2)
    assert not r.fallback and r.final == pytest.approx(0.82)
    assert final_score(0.5, 0.9, 0.0, theta=0.0).mode == "full"  # nothing is below 0
    assert final_score(0.5, 0.9, 0.99, theta=1.0).mode == "fallback"


def test_match_only_without_a_cloud_reply() -> None:
    r = final_score(matching=0.42)
    assert r.mode == "match_only" and r.similarity is None and r.final == 0.42


@pytest.mark.parametrize("bad", [-0.1, 1.1, math.nan])
def test_out_of_range_values_are_refused(bad: float) -> None:
    with pytest.raises(ValueError):
        final_score(matching=0.5, similarity=0.5, cloud_matching=0.5, alpha=bad)
    with pytest.raises(ValueError):
        final_score(matching=bad)


def test_cloud_similarity_needs_cloud_matching() -> None:
    with pytest.raises(ValueError):
        final_score(matching=0.5, similarity=0.5)


# --- the real scorers --------------------------------------------------------------------------

QUERY = "可以选择快递吗？"
GOOD = "亲，可以的，您下单时备注想要的快递公司就可以了。"
BAD = "这款连衣裙是纯棉面料的，洗后不会缩水。"


@pytest.fixture(scope="module")
def scorer() -> ReplyScorer:
    return ReplyScorer(USESimilarity(), E5Matching())


def test_use_similarity_separates_related_from_unrelated(scorer: ReplyScorer) -> None:
    close = "可以的亲，下单备注一下想发的快递就行。"
    sims = scorer.similarity_model.similarity([GOOD, GOOD], [close, BAD])
    assert sims[0] > sims[1] + 0.2
    assert np.all((sims >= 0) & (sims <= 1))


def test_the_past_dialogues_share_the_scorers_use_model(scorer: ReplyScorer) -> None:
    """One ~115 MB model per process, not one per user of it; their caches stay their own."""
    bank = ExampleBank(
        [PromptExample("发什么快递", "默认中通"), PromptExample("能开发票吗", "可以")]
    )
    assert isinstance(scorer.similarity_model, USESimilarity)
    assert bank.retrieve("可以开发票吗", 1)[0].reply == "可以"
    assert bank._encoder._use is scorer.similarity_model._use
    assert bank._encoder.cached is not scorer.similarity_model.cached


def test_e5_matching_is_calibrated_and_prefers_the_relevant_reply(scorer: ReplyScorer) -> None:
    m = scorer.matching_model.matching([[QUERY], [QUERY]], [GOOD, BAD])
    assert m[0] > m[1]
    assert 0 <= m[1] < m[0] <= 1
    e5 = scorer.matching_model
    assert isinstance(e5, E5Matching)
    calibrated = e5.calibrate(np.array([0.5, 0.86, 0.99]))
    assert calibrated[0] == 0.0 and calibrated[2] == 1.0 and 0.2 < calibrated[1] < 0.8


def test_scorer_good_draft_beats_bad_draft(scorer: ReplyScorer) -> None:
    cloud = "您好，可以选择快递的，请在下单时备注您想要的快递公司。"
    good = scorer.score(QUERY, GOOD, cloud)
    bad = scorer.score(QUERY, BAD, cloud)
    assert good.final > bad.final
    assert good.similarity is not None and good.cloud_matching is not None


def test_batch_scores_equal_single_scores(scorer: ReplyScorer) -> None:
    items = [ScoreItem([QUERY], GOOD, "可以的"), ScoreItem(["在吗", QUERY], BAD, None)]
    batch = scorer.score_many(items)
    single = [scorer.score(list(it.context), it.reply, it.cloud_reply) for it in items]
    for b, s in zip(batch, single, strict=True):
        assert b.final == pytest.approx(s.final, abs=1e-5)
        assert b.mode == s.mode


# Real JDDC-style cases: the customer's message, the reply, and whether it only repeats it.
ECHO_CASES = [
    ("快递员已经把我忽略了", "快递员已经把我忽略了。", True),
    ("那我只能拒收了或者等拦截成功了?", "那我只能拒收了或者等拦截成功了？", True),
    ("先确认收货然后申请售后?", "先确认收货，然后申请售后", True),
    (
        "意思就是退货上门取件不用给我任何东西直接把东西拿走?",
        "是的，退货上门取件不需要我任何东西直接把东西拿走。",
        True,
    ),
    ("好的", "好的", False),  # too short to tell
    ("要红色还是蓝色？红色的有货吗", "红色的有货哦", False),  # covers little of the message
    ("可以选择快递吗？", "可以选择快递的，下单时备注想要的快递公司就可以了", False),
    ("#E-s[数字x]", "#E-s[数字x]", False),  # JD's emoticon codes are no words
    ("订单[ORDERID_10005629]到哪了", "[ORDERID_10005629]", False),
    ("", "快递员已经把我忽略了", False),
]


@pytest.mark.parametrize(("query", "reply", "echo"), ECHO_CASES)
def test_a_reply_only_repeating_the_customer_is_recognised(
    query: str, reply: str, echo: bool
) -> None:
    assert repeats_customer(query, reply) is echo


def test_a_draft_repeating_the_customer_matches_zero_and_looks_weak(scorer: ReplyScorer) -> None:
    """e5 alone scores the echo as a near-perfect match, above a real answer."""
    query = "那我只能拒收了或者等拦截成功了?"
    echo, answer = "那我只能拒收了或者等拦截成功了？", "是的亲，拦截成功后款项会原路退回的"
    raw = scorer.matching_model.matching([[query], [query]], [echo, answer])
    assert raw[0] > raw[1]
    first = scorer.score(["你好", "您好", query], echo)  # before the teacher is asked
    assert first.mode == "match_only" and first.matching == 0.0 and first.final == 0.0
    assert scorer.score(query, answer).final == pytest.approx(raw[1], abs=1e-6)
    full = scorer.score(query, echo, answer)
    assert full.final == pytest.approx(0.8 * full.similarity, abs=1e-6)
    # A teacher that only repeats the customer gave no answer to compare with: match alone
    # decides, as before the teacher is asked. (The fallback, similarity alone, gave the draft
    # that repeats the customer too a Final near 1.)
    answered = scorer.score(query, answer, echo)
    assert answered.mode == "match_only" and answered.final == pytest.approx(raw[1], abs=1e-6)
    both_echo = scorer.score(query, echo, echo)
    assert both_echo.similarity > 0.9 and both_echo.final == 0.0


@pytest.mark.parametrize(
    "text",
    ["", "😀😀😀", "x" * 100_000, "\x00\xff\ufffe binary \x07", "Das ist eine deutsche Antwort."],
    ids=["empty", "emoji", "100k", "binary", "german"],
)
def test_odd_input_gets_defined_scores(scorer: ReplyScorer, text: str) -> None:
    r = scorer.score(QUERY, text, text)
    assert 0.0 <= r.final <= 1.0
    if not text:
        assert r.matching == 0.0 and r.similarity == 0.0


# --- scoring recorded drafts -----------------------------------------------------------------


def test_score_draft_records_the_score_with_versions(scorer: ReplyScorer, tmp_path) -> None:
    from app.scoring.record import draft_context, score_draft
    from app.store import Score, open_store

    store = open_store(f"sqlite:///{tmp_path / 'x.db'}")
    with store.session() as s:
        customer = store.get_or_create_customer(s, "USERID_1")
        conv = store.open_conversation(s, customer.id, "manual")
        store.add_message(s, conv.id, "customer", "在吗")
        store.add_message(s, conv.id, "agent", "在的亲")
        question = store.add_message(s, conv.id, "customer", QUERY)
        store.add_message(s, conv.id, "customer", "later message, not part of the context")
        draft = store.add_draft(
            s,
            question.id,
            GOOD,
            model_profile="qwen2.5-0.5b",
            latency_ms=5,
            prompt_tokens=10,
            completion_tokens=12,
        )
        draft_id = draft.id
    context, text = draft_context(store, draft_id)
    assert context == ["在吗", "在的亲", QUERY] and text == GOOD
    result = score_draft(store, scorer, draft_id, cloud_reply="可以的，下单备注快递即可。")
    with store.session() as s:
        row = s.query(Score).filter_by(draft_id=draft_id).one()
        assert row.final == pytest.approx(result.final)
        assert row.mode == result.mode and row.alpha == 0.8 and row.theta == 0.2
        assert row.similarity_scorer_version == scorer.versions["similarity"]
        assert row.matching_scorer_version == scorer.versions["matching"]
    with pytest.raises(LookupError):
        score_draft(store, scorer, 999)
    store.close()
