"""Reply suggestions on a real SQLite store with the real USE encoder and small knowledge written
for these tests: ranking by learned weights, masks, the guard's demotion, the uncalibrated flag,
the ranker's training and versions, `xiaoer eval-suggest` and `eval-matcher --matcher ranker`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.cli import main
from app.engine.conversation import Turn
from app.knowledge import KnowledgeBase
from app.scoring.corpus import DialoguePair, EcdGroup, write_ecd
from app.store import MatcherVersion, Store, open_store
from app.suggest.candidates import Suggester
from app.suggest.masks import conversation_values, fill_masks
from app.suggest.ranker import (
    FEATURES,
    RANKER_KIND,
    Ranker,
    active_ranker,
    fit_ranker,
    ranker_is_stale,
    register_ranker,
    two_stage_scores,
)
from app.suggest.train import train_ranker_after_import


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(f"sqlite:///{tmp_path / 'db' / 'xiaoer.db'}") as opened:
        yield opened


@pytest.fixture
def kb(store: Store) -> KnowledgeBase:
    return KnowledgeBase(store)


SHIPPING = [
    "亲，付款后48小时内为您发货哦",
    "亲，一般付款后48小时内发货的呢",
    "亲亲，48小时内会给您发出的哦",
    "您好，我们会在48小时内安排发货",
]
TOPICS = {
    "什么时候发货": SHIPPING,
    "能开发票吗": ["亲，可以开电子发票的哦", "可以的亲，下单时填写发票抬头即可"],
    "怎么退货": ["亲，在订单页申请售后就可以退货了", "亲，七天无理由退货，申请售后即可"],
    "发什么快递": ["亲，默认发中通快递哦", "亲，我们默认中通，需要顺丰可以补差价"],
}


def shop_history(copies: int = 1) -> list[DialoguePair]:
    """Past dialogues, one conversation each, several agents answering alike."""
    pairs = []
    for n in range(copies):
        for question, answers in TOPICS.items():
            for i, answer in enumerate(answers):
                pairs.append(
                    DialoguePair(
                        ("您好", f"您好，有什么可以帮您{'的' * n}", f"{question}{'？' * (n % 2)}"),
                        answer,
                        f"chat-{n}-{question}-{i}",
                    )
                )
    return pairs


def chat(*texts: str) -> list[Turn]:
    n = len(texts)
    return [Turn("customer" if (n - 1 - i) % 2 == 0 else "agent", t) for i, t in enumerate(texts)]


# --- masks ---------------------------------------------------------------------------------------


def test_an_order_number_the_customer_gave_fills_the_mask_and_the_rest_stay_highlighted() -> None:
    values = conversation_values(["我的订单号是 123456789012 还没到"])
    filled = fill_masks("亲，订单[订单x]已发出，预计[日期x]送达", values)
    assert filled.text == "亲，订单123456789012已发出，预计[日期x]送达"
    assert filled.filled == 1
    assert [m.label for m in filled.masks] == ["[日期x]"]
    span = filled.masks[0]
    assert filled.text[span.start : span.end] == "[日期x]"


def test_two_different_order_numbers_fill_nothing() -> None:
    values = conversation_values(["订单 123456789012 和订单号 987654321098 都没到"])
    filled = fill_masks("订单[订单x]已发出", values)
    assert filled.text == "订单[订单x]已发出" and [m.label for m in filled.masks] == ["[订单x]"]


# --- the ranker ----------------------------------------------------------------------------------


def test_the_ranker_learns_which_feature_predicts_the_agents_reply() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, len(FEATURES)))
    informative = FEATURES.index("context_sim")
    y = 0.3 + 0.1 * x[:, informative] + rng.normal(scale=0.01, size=2000)
    ranker = fit_ranker(x, y)
    weights = ranker.weights()
    assert max(weights, key=lambda f: abs(weights[f])) == "context_sim"
    assert ranker.calibrated
    a, b = np.zeros(len(FEATURES)), np.zeros(len(FEATURES))
    a[informative], b[informative] = 1.0, -1.0
    b[FEATURES.index("consensus")] = 3.0  # the untrained default's favourite does not decide
    assert ranker.score(a)[0] > ranker.score(b)[0]
    assert Ranker.untrained().score(b)[0] > Ranker.untrained().score(a)[0]


def test_a_saved_ranker_loads_back_and_a_broken_file_says_so(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, len(FEATURES)))
    ranker = fit_ranker(x, x[:, 0], {"heldout_top1_ranker": 0.4})
    ranker.save(tmp_path)
    loaded = Ranker.load(tmp_path)
    assert loaded == ranker
    np.testing.assert_allclose(loaded.score(x), ranker.score(x))
    (tmp_path / "ranker.json").write_bytes(b"\x00\xff not json")
    with pytest.raises(ValueError, match="not a readable ranker file"):
        Ranker.load(tmp_path)
    assert not list(tmp_path.glob(".ranker.json.*")), "no temporary file left behind"


# --- suggestions ---------------------------------------------------------------------------------


def test_past_replies_come_at_once_ranked_uncalibrated_with_their_sources(
    kb: KnowledgeBase,
) -> None:
    kb.import_pairs("past", shop_history())
    kb.import_pairs("faq", [(("发货时间",), "现货48小时内发货。")], kind="faq")
    found = Suggester(kb).suggest(chat("你好", "您好", "请问什么时候发货呀"))
    assert not found.calibrated
    assert all(not s.calibrated for s in found.ranked)
    top = found.top(3)
    assert len(top) == 3 and top[0].source in {"past", "faq"}
    assert "48小时" in top[0].text, top[0].text
    assert {s.source for s in found.ranked} == {"past", "faq"}
    assert all(set(s.features) == set(FEATURES) for s in found.ranked)
    # The model's draft joins the ranking when it arrives, and is always offered.
    ranked = found.add_draft("亲，付款后48小时内给您发货的哦")
    assert any(s.source == "model" and s.entry is None for s in ranked)
    assert found.ranked is ranked


def test_a_reply_with_an_unsupported_promise_ranks_below_every_grounded_one(
    kb: KnowledgeBase,
) -> None:
    history = shop_history()
    history.append(DialoguePair(("什么时候发货",), "亲，20分钟内给您发货，明天就到", "chat-x"))
    kb.import_pairs("past", history)
    found = Suggester(kb).suggest(chat("什么时候发货"))
    flagged = [i for i, s in enumerate(found.ranked) if s.unsupported]
    grounded = [i for i, s in enumerate(found.ranked) if s.grounded]
    assert flagged, [s.text for s in found.ranked]
    assert "20分钟" in found.ranked[flagged[0]].text
    assert max(grounded) < min(flagged)


def test_masks_are_filled_from_the_conversation_in_suggestions(kb: KnowledgeBase) -> None:
    kb.import_pairs(
        "past",
        [
            (("我的订单到哪了",), "亲，您的订单[订单x]已经发出了，预计[日期x]送达"),
            (("订单到哪里了",), "亲，订单[订单x]已经在路上了哦"),
        ],
    )
    found = Suggester(kb).suggest(chat("订单号 123456789012 到哪了"))
    texts = [s.text for s in found.ranked]
    assert any("123456789012" in t for t in texts), texts
    with_date = next(s for s in found.ranked if "预计" in s.text)
    assert [m.label for m in with_date.masks] == ["[日期x]"]


def test_training_after_an_import_activates_a_two_stage_ranker_and_its_matcher(
    store: Store, kb: KnowledgeBase
) -> None:
    with store.session() as session:  # a matcher trained by hand is active before the import
        session.add(MatcherVersion(version="m1", kind="indomain", path="/x", metrics={}))
        session.flush()
        store.set_active_matcher(session, "m1")
    kb.import_pairs("past", shop_history(copies=6))
    early = Suggester(kb)  # made before the training, as the window's is
    events: list[dict[str, object]] = []
    ranker = train_ranker_after_import(store, kb, events.append)
    assert ranker is not None and ranker.calibrated
    assert events[-1]["stage"] == "done"
    assert any(e["stage"] == "matcher" and e.get("total") for e in events)
    assert ranker.metrics["train_dialogues"] > 0 and ranker.metrics["matcher_pairs"] >= 20
    assert 0.0 <= ranker.metrics["heldout_own_reply_two_stage"] <= 1.0
    second = ranker.second
    assert second is not None and Path(second.matcher_path, "matcher.json").is_file()
    with store.session() as session:
        # The matcher the ranker reads is the store's active matcher now (it scores drafts).
        assert store.active_matcher(session).version == second.matcher_version
        active = store.active_matcher(session, kind=RANKER_KIND)
        assert active is not None and active.version == ranker.version
    assert active_ranker(store) == ranker
    assert not early.ranker.calibrated and early.matcher is None
    assert early.reload_ranker() == ranker and len(early.vectors) == len(kb)
    assert early.matcher is not None and early.matcher.version == second.matcher_version
    found = Suggester(kb).suggest(chat("什么时候发货"))
    assert found.calibrated and all(s.calibrated for s in found.ranked)
    with store.session() as session, pytest.raises(ValueError, match="is a ranker"):
        store.set_active_matcher(session, ranker.version)  # the matcher's kind by default


def test_training_without_the_matcher_leaves_the_active_matcher_alone(
    store: Store, kb: KnowledgeBase
) -> None:
    with store.session() as session:
        session.add(MatcherVersion(version="m1", kind="indomain", path="/x", metrics={}))
        session.flush()
        store.set_active_matcher(session, "m1")
    kb.import_pairs("past", shop_history(copies=6))
    ranker = train_ranker_after_import(store, kb, matcher=False)
    assert ranker is not None and ranker.second is None
    with store.session() as session:
        assert store.active_matcher(session).version == "m1"


class Recording:
    """The real matcher, with a record of the replies it was asked to read."""

    def __init__(self, matcher: Any) -> None:
        self.matcher = matcher
        self.version = matcher.version
        self.read: list[str] = []

    def logits(self, context: list[str], replies: list[str]) -> np.ndarray:
        self.read += replies
        return np.asarray(self.matcher.logits(context, replies))


def test_the_second_stage_scores_the_draft_and_typed_replies_and_past_replies_keep_theirs(
    store: Store, kb: KnowledgeBase
) -> None:
    kb.import_pairs("past", shop_history(copies=6))
    ranker = train_ranker_after_import(store, kb)
    assert ranker is not None and ranker.second is not None
    suggester = Suggester(kb)
    assert suggester.matcher is not None
    suggester.matcher = matcher = Recording(suggester.matcher)
    context = ["什么时候发货"]
    found = suggester.suggest_context(context)
    alone = suggester.suggest_context(context, second_stage=False)
    assert matcher.read == [], "past replies and FAQ answers are not read"
    assert {s.text: s.score for s in found.ranked} == {s.text: s.score for s in alone.ranked}
    draft = "亲，付款后48小时内给您发货的哦，请耐心等待"
    ranked = found.add_draft(draft)
    assert matcher.read == [draft]
    first = next(s for s in alone.add_draft(draft) if s.source == "model").score
    logit = matcher.matcher.logits(context, [draft])
    expected = ranker.second.score([first], logit)[0]
    assert next(s for s in ranked if s.source == "model").score == pytest.approx(expected, abs=1e-4)
    typed = found.score_texts(["好的", "亲，可以开电子发票的哦"])
    assert matcher.read[1:] == ["好的", "亲，可以开电子发票的哦"] and len(typed) == 2
    # Without its matcher (files gone) the first stage alone scores them.
    rows = np.zeros((1, len(FEATURES)))
    no_matcher = two_stage_scores(ranker, None, context, ["好的"], rows, outside=[0])
    assert no_matcher == pytest.approx(ranker.score(rows))
    assert two_stage_scores(ranker, matcher, context, ["好的"], rows, [0]) != pytest.approx(
        no_matcher
    )


def test_a_two_stage_ranker_loads_back_and_runs_without_a_matcher_that_is_gone(
    store: Store, kb: KnowledgeBase, tmp_path: Path
) -> None:
    kb.import_pairs("past", shop_history(copies=6))
    ranker = train_ranker_after_import(store, kb)
    assert ranker is not None and ranker.second is not None
    loaded = Ranker.load(store.path.parent / "rankers" / ranker.version)
    assert loaded == ranker and loaded.second == ranker.second
    matcher_dir = Path(ranker.second.matcher_path)
    assert not ranker_is_stale(store)
    (matcher_dir / "matcher.json").rename(tmp_path / "moved.json")
    suggester = Suggester(kb)
    assert suggester.ranker == ranker and suggester.matcher is None
    found = suggester.suggest(chat("什么时候发货"))
    assert found.calibrated and "48小时" in found.ranked[0].text
    assert ranker_is_stale(store)  # the window trains both again when it opens


def test_importing_past_dialogues_on_the_command_line_trains_the_ranker(tmp_path: Path) -> None:
    from app.cli import main
    from app.store import open_store

    enc, _ = write_jddc2018(tmp_path / "jddc", shop_chats(40))
    assert main(["knowledge", "import", str(enc), "--format", "jddc2018", "--no-train"]) == 0
    with open_store() as store:
        assert not active_ranker(store).calibrated
    assert main(["knowledge", "import", str(enc), "--format", "jddc2018"]) == 0  # nothing new
    with open_store() as store:
        assert not active_ranker(store).calibrated
    enc, _ = write_jddc2018(tmp_path / "jddc", shop_chats(60))
    assert main(["knowledge", "import", str(enc), "--format", "jddc2018"]) == 0
    with open_store() as store:
        assert active_ranker(store).calibrated


def send_chats(store: Store, chats: list[list[tuple[str, str]]]) -> None:
    """Conversations handled in the app: (role, text) messages in order."""
    with store.session() as session:
        customer = store.get_or_create_customer(session, "c-1")
        for messages in chats:
            conversation = store.open_conversation(session, customer.id, "test")
            for role, text in messages:
                store.add_message(session, conversation.id, role, text)  # type: ignore[arg-type]


def test_replies_sent_in_the_app_are_read_back_with_the_turns_they_answered(store: Store) -> None:
    send_chats(
        store,
        [
            [("agent", "您好"), ("customer", "在吗"), ("agent", "在的亲"), ("agent", "请问")],
            [("customer", "什么时候发货"), ("customer", "急"), ("agent", "今天发顺丰")],
        ],
    )
    with store.session() as session:
        sent = store.sent_replies(session, limit=10)
        newest = store.sent_replies(session, limit=1)
    # An agent's follow-up and an opening greeting answer no customer message.
    assert sent == [(["什么时候发货", "急"], "今天发顺丰"), (["您好", "在吗"], "在的亲")]
    assert newest == [(["什么时候发货", "急"], "今天发顺丰")]


def test_replies_agents_sent_in_the_app_train_the_ranker(store: Store, kb: KnowledgeBase) -> None:
    kb.import_pairs("past", shop_history(copies=6))
    before = train_ranker_after_import(store, kb, matcher=False)
    assert before is not None and before.metrics["train_sent_replies"] == 0
    send_chats(store, [[("customer", "什么时候发货"), ("agent", "今天就发顺丰哦")]] * 3)
    after = train_ranker_after_import(store, kb, matcher=False)
    assert after is not None and after.metrics["train_sent_replies"] == 3
    assert after.metrics["train_dialogues"] == before.metrics["train_dialogues"] + 3
    # The second stage's matcher learns from them too.
    with_matcher = train_ranker_after_import(store, kb)
    assert with_matcher is not None and with_matcher.second is not None
    meta = json.loads(Path(with_matcher.second.matcher_path, "matcher.json").read_text("utf-8"))
    assert meta["corpus"]["pairs"] == with_matcher.metrics["matcher_pairs"]
    # The 3 sent replies and the half of the 60 past dialogues the ranker does not sample.
    assert with_matcher.metrics["matcher_pairs"] == 3 + 30


def test_a_ranker_of_another_versions_features_is_stale(store: Store, kb: KnowledgeBase) -> None:
    kb.import_pairs("past", shop_history(copies=6))
    assert not ranker_is_stale(store)  # none active: nothing to train again
    ranker = train_ranker_after_import(store, kb, matcher=False)
    assert ranker is not None and not ranker_is_stale(store)
    file = store.path.parent / "rankers" / ranker.version / "ranker.json"
    raw = json.loads(file.read_text(encoding="utf-8"))
    raw["features"].append("a_feature_of_a_later_version")
    for key in ("mean", "scale", "coef"):
        raw[key].append(1.0)
    file.write_text(json.dumps(raw), encoding="utf-8")
    assert ranker_is_stale(store) and not active_ranker(store).calibrated
    file.unlink()
    assert ranker_is_stale(store)


def test_too_little_history_keeps_the_untrained_ranker(store: Store, kb: KnowledgeBase) -> None:
    kb.import_pairs("past", shop_history()[:5])
    assert train_ranker_after_import(store, kb) is None
    assert not active_ranker(store).calibrated


# --- eval-suggest --------------------------------------------------------------------------------

OPENER = "有什么问题我可以帮您处理或解决呢"


def write_jddc2018(folder: Path, chats: list[list[tuple[str, str]]]) -> tuple[Path, Path]:
    """JDDC-2018-format files: each chat a list of (customer, agent) turns, one line per reply."""
    folder.mkdir(parents=True, exist_ok=True)
    enc, dec = [], []
    for turns in chats:
        history = [OPENER]
        for customer, agent in turns:
            history.append(customer)
            enc.append(",".join(history) + ",")
            dec.append(agent + ",")
            history.append(agent)
    (folder / "train.enc").write_text("\n".join(enc) + "\n", encoding="utf-8")
    (folder / "train.dec").write_text("\n".join(dec) + "\n", encoding="utf-8")
    return folder / "train.enc", folder / "train.dec"


def shop_chats(n: int) -> list[list[tuple[str, str]]]:
    topics = list(TOPICS.items())
    return [
        [
            (f"{topics[i % 4][0]}，我是第{i}位顾客", topics[i % 4][1][i % 2]),
            ("好的谢谢", f"不客气，祝您生活愉快{i}"),
        ]
        for i in range(n)
    ]


def shop_with_history(tmp_path: Path, chats: int, known: int) -> tuple[Path, Path, Path]:
    """JDDC-2018 files of ``chats`` chats, and a data dir whose knowledge holds the first
    ``known`` of them: (enc, dec, data dir)."""
    all_chats = shop_chats(chats)
    write_jddc2018(tmp_path / "known", all_chats[:known])
    enc, dec = write_jddc2018(tmp_path / "all", all_chats)
    home = tmp_path / "home"
    with open_store(f"sqlite:///{home / 'xiaoer.db'}") as store:
        KnowledgeBase(store).import_file(tmp_path / "known" / "train.enc", "jddc2018")
    return enc, dec, home


def test_eval_suggest_prints_every_figure_and_refuses_knowledge_holding_the_contexts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    enc, dec, home = shop_with_history(tmp_path, chats=12, known=8)
    args = ["eval-suggest", "--pairs", str(enc), str(dec), "--knowledge", str(home), "--no-model"]
    assert main([*args, "--offset", "0", "--limit", "0"]) == 0
    report = json.loads(capsys.readouterr().out)
    for key in (
        "n",
        "top1_similarity_mean",
        "top1_similarity_ci95",
        "top3_best_similarity_mean",
        "model_only_similarity_mean",
        "retrieval_top1_similarity_mean",
        "oracle_k_similarity_mean",
        "p95_first_suggestion_ms",
        "p95_all_candidates_ms",
    ):
        assert key in report
    assert report["dropped_overlapping"] == 16, "the 8 known chats' contexts are left out"
    assert report["n"] == 8
    assert 0.0 <= report["top1_similarity_mean"] <= report["top3_best_similarity_mean"] <= 1.0
    assert report["calibrated"] is False
    # Held-out contexts all from chats the knowledge holds: refused, with the reason.
    assert main([*args, "--offset", "0", "--limit", "16"]) == 2
    assert "every held-out context" in capsys.readouterr().err


@pytest.mark.slow
def test_eval_suggest_drafts_with_the_adapter_it_is_given(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    enc, dec, home = shop_with_history(tmp_path, chats=10, known=8)
    args = ["eval-suggest", "--pairs", str(enc), str(dec), "--knowledge", str(home)]
    args += ["--offset", "16", "--limit", "4"]
    assert main([*args, "--adapter", "no-such-version"]) == 2
    assert "No adapter version 'no-such-version'" in capsys.readouterr().err
    items = tmp_path / "drafts.jsonl"
    assert main([*args, "--adapter", "none", "--items", str(items)]) == 0
    report = json.loads(capsys.readouterr().out)
    drafts = [json.loads(line) for line in items.read_text(encoding="utf-8").splitlines()]
    assert report["n"] == 4 and len(drafts) == 4
    assert all(d["draft"].strip() for d in drafts)
    assert report["model_only_similarity_mean"] is not None
    assert report["p95_all_candidates_ms"] is not None


def test_eval_matcher_measures_the_active_ranker_on_a_response_selection_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`xiaoer eval-matcher --matcher ranker` picks among each group's candidates with the
    install's ranker and knowledge (the data dir of this test), and refuses without knowledge."""
    ecd = tmp_path / "groups.ecd.txt"
    typed = {  # replies not in the knowledge, as another shop's agents might write them
        "什么时候发货": "亲，48小时之内给您发出哦",
        "能开发票吗": "亲，支持开电子发票的",
        "怎么退货": "亲，订单页申请售后退货即可",
        "发什么快递": "亲，一般是中通快递哦",
    }
    small_talk = ("好的呢", "请稍等", "不客气哦", "祝您生活愉快", "亲，在的", "感谢您的耐心等待")
    groups = [  # ECD groups are ten candidates: the answer, the other topics', small talk
        EcdGroup(
            ("您好", "您好，有什么可以帮您", question),
            (reply, *(r for q, r in typed.items() if q != question), *small_talk),
            0,
        )
        for question, reply in typed.items()
    ]
    write_ecd(groups, ecd)
    args = ["eval-matcher", "--ecd", str(ecd), "--matcher", "ranker"]
    assert main(args) == 2
    assert "import them first" in capsys.readouterr().err
    with open_store() as store:
        KnowledgeBase(store).import_pairs("past", shop_history(2))
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["matcher"] == "ranker:untrained"
    assert report["r10_at_1"] == 1.0, "each question's own topic wins among the ten"


def test_replies_from_outside_the_knowledge_are_scored_like_the_draft(kb: KnowledgeBase) -> None:
    kb.import_pairs("past", shop_history())
    found = Suggester(kb).suggest(chat("什么时候发货"))
    on_topic, off_topic = found.score_texts(["亲，48小时内给您发货哦", "亲，可以开电子发票的哦"])
    assert on_topic > off_topic


def test_a_ranker_of_another_feature_set_is_not_used(store: Store, tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(50, len(FEATURES)))
    ranker = fit_ranker(x, x[:, 0])
    register_ranker(store, ranker, tmp_path / "r1")
    assert active_ranker(store) == ranker
    raw = json.loads((tmp_path / "r1" / "ranker.json").read_text(encoding="utf-8"))
    raw["features"] = [*raw["features"][:-1], "retired_feature"]
    (tmp_path / "r1" / "ranker.json").write_text(json.dumps(raw), encoding="utf-8")
    fallback = active_ranker(store)
    assert fallback.version == "untrained" and not fallback.calibrated
