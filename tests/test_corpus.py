"""Corpus readers, the ECD format and the held-out split, on tiny fixtures written for the project."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.scoring import corpus
from app.scoring.corpus import DialoguePair, EcdGroup

FIXTURES = Path(__file__).parent / "fixtures" / "corpus"


# --- JDDC 2018 ---------------------------------------------------------------------------------------


def read_2018(**kwargs: int) -> list[DialoguePair]:
    return list(
        corpus.read_jddc2018(
            FIXTURES / "jddc2018_sample.enc", FIXTURES / "jddc2018_sample.dec", **kwargs
        )
    )


def test_jddc2018_pairs_turns_and_reply() -> None:
    pairs = read_2018()
    # Six lines; the one whose context is a bare comma has no turns and is skipped.
    assert len(pairs) == 5
    first = pairs[0]
    assert first.context == ("你好", "有什么问题我可以帮您处理或解决呢?", "我的快递什么时候到")
    assert first.reply == "请您稍等一下，正在为您核实处理中哦~"  # trailing comma stripped
    assert pairs[2].context[0] == "咨询订单号:[ORDERID_10000001] 订单金额:[金额x]"
    assert pairs[2].reply == "收到商品后[数字x]天内可以申请退货哦"  # placeholders stay as they are


def test_jddc2018_conversations_follow_session_openers() -> None:
    convs = [p.conversation for p in read_2018()]
    # Line 2 continues line 1's chat; lines 3 and 4 open new ones; line 6 continues line 4's.
    assert convs[0] == convs[1]
    assert len({convs[0], convs[2], convs[3]}) == 3
    assert convs[4] == convs[3]


def test_jddc2018_invalid_utf8_is_replaced_not_fatal() -> None:
    pairs = read_2018()
    assert pairs[3].context[0] == "尺码\ufffd\ufffd偏大吗"
    assert pairs[3].reply == "建议您选小一码"


def test_jddc2018_whitespace_is_normalised_and_long_turns_cut() -> None:
    pairs = read_2018(max_turn_chars=4)
    assert pairs[-1].context == (
        "那我换货",
        "还要等吗",
    )  # ideographic and repeated spaces collapsed
    assert all(len(t) <= 4 for p in pairs for t in p.context)
    assert all(len(p.reply) <= 4 for p in pairs)


def test_jddc2018_line_count_mismatch_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "a.enc").write_text("你好,\n在吗,\n", encoding="utf-8")
    (tmp_path / "a.dec").write_text("您好,\n", encoding="utf-8")
    with pytest.raises(ValueError, match="lines"):
        list(corpus.read_jddc2018(tmp_path / "a.enc", tmp_path / "a.dec"))


# --- JDDC 2019 ---------------------------------------------------------------------------------------


def test_jddc2019_one_pair_per_agent_turn_with_history() -> None:
    pairs = list(corpus.read_jddc2019(FIXTURES / "jddc2019_chat.txt"))
    # s1 has three agent turns, s2 two, but s2's first agent turn has no history.
    assert [p.reply for p in pairs] == [
        "有什么问题我可以帮您处理或解决呢?",
        "今天下单明天发货哦",
        "不客气，祝您生活愉快",
        "订单完成后可以在订单详情下载电子发票",
    ]
    assert pairs[1].context == (
        "你好 我想问下发货时间",
        "有什么问题我可以帮您处理或解决呢?",
        "这个[数字x]号能发货吗",
    )
    assert pairs[2].context[-1] == "好的谢谢"  # the NULL row is skipped
    assert {p.conversation for p in pairs} == {"jddc2019:s1", "jddc2019:s2"}


def test_jddc2019_context_is_cut_to_the_last_turns() -> None:
    pairs = list(corpus.read_jddc2019(FIXTURES / "jddc2019_chat.txt", max_context_turns=2))
    assert pairs[2].context == ("今天下单明天发货哦", "好的谢谢")


def test_jddc2019_wrong_column_count_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "chat.txt"
    good = "s1\tU1\t0\t0\t0\tnan\t你好\n"
    path.write_text(good + "s1\tU1\t1\t0\tnan\t少一列\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"chat\.txt:2: expected 7"):
        list(corpus.read_jddc2019(path))


# --- ECD -----------------------------------------------------------------------------------------


def test_read_ecd_fixture() -> None:
    groups = corpus.read_ecd(FIXTURES / "ecd_valid.txt")
    assert len(groups) == 2
    assert groups[0].context == ("你好", "这件衣服有L码吗")
    assert groups[0].true_reply == "有的亲，L码有货"
    assert groups[1].context[0] == "我的订单[ORDERID_10005629]到哪了"
    assert groups[1].answer == 2
    assert groups[1].true_reply == "已经到您所在城市的站点了today"
    assert groups[1].candidates[-1] == "满[数字x]减[数字x]"


def test_ecd_round_trip(tmp_path: Path) -> None:
    groups = [
        EcdGroup(
            ("你好", "order [ORDERID_10005629] shipped?"),
            tuple(f"回复{i} hello world #E-s[数字x]" for i in range(10)),
            7,
        ),
        EcdGroup(("尺码偏大吗",), tuple(f"建议拍小{i}码" for i in range(10)), 0),
    ]
    path = tmp_path / "ecd.txt"
    assert corpus.write_ecd(groups, path) == 2
    back = corpus.read_ecd(path)
    expected = [
        EcdGroup(
            tuple(corpus.canonical_text(t) for t in g.context),
            tuple(corpus.canonical_text(c) for c in g.candidates),
            g.answer,
        )
        for g in groups
    ]
    assert back == expected
    assert back[0].context[1] == "order[ORDERID_10005629]shipped?"
    assert back[0].candidates[0] == "回复0 hello world#E-s[数字x]"
    # A second trip changes nothing: canonical text is a fixed point.
    corpus.write_ecd(back, tmp_path / "again.txt")
    assert (tmp_path / "again.txt").read_bytes() == path.read_bytes()
    assert path.read_text(encoding="utf-8").splitlines()[0].split("\t") == [
        "0",
        "你 好",
        "order [ORDERID_10005629] shipped ?",
        "回 复 0 hello world # E - s [数字x]",
    ]


def test_write_ecd_refuses_empty_fields(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="empty"):
        corpus.write_ecd([EcdGroup(("你好",), ("", "好的"), 1)], tmp_path / "x.txt")
    with pytest.raises(ValueError, match="no context"):
        corpus.write_ecd([EcdGroup((), ("好的", "在的"), 1)], tmp_path / "x.txt")


def test_read_ecd_two_positives_names_the_group() -> None:
    with pytest.raises(
        ValueError, match=r"ecd_two_positives\.txt:1-10: .*exactly one label 1, found 2"
    ):
        corpus.read_ecd(FIXTURES / "ecd_two_positives.txt")


def ecd_lines(n: int = 10, positive: int = 0) -> list[str]:
    return [f"{int(i == positive)}\t你 好\t在 吗\t回 复 {i}" for i in range(n)]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty file"),
        (("\n".join(ecd_lines(positive=99)) + "\n").encode(), "found 0"),
        (("\n".join(ecd_lines(9)) + "\n").encode(), r":1: incomplete group of 9"),
        (
            ("\n".join([*ecd_lines()[:4], "0\t只有回复", *ecd_lines()[5:]]) + "\n").encode(),
            ":5: expected",
        ),
        (("\n".join([*ecd_lines()[:3], "2\t你 好\t在 吗\t回 复"]) + "\n").encode(), ":4: label"),
        (
            ("\n".join([*ecd_lines()[:2], "0\t你 好\t在 吗 ?\t回 复"]) + "\n").encode(),
            ":3: context differs",
        ),
        (("\n".join([*ecd_lines()[:6], "0\t你 好\t\t回 复"]) + "\n").encode(), ":7: empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", ":1: not UTF-8|:1: control"),
        (("\n".join(ecd_lines()) + "\n").encode()[:40] + b"\xff\xfe\x00junk\n", ":2: not UTF-8"),
    ],
    ids=[
        "empty",
        "no-positive",
        "short-group",
        "two-columns",
        "bad-label",
        "context-changes",
        "empty-turn",
        "png",
        "junk-bytes",
    ],
)
def test_read_ecd_rejects_malformed_files(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        corpus.read_ecd(path)


def test_read_ecd_accepts_crlf(tmp_path: Path) -> None:
    path = tmp_path / "crlf.txt"
    path.write_bytes(("\r\n".join(ecd_lines(positive=3)) + "\r\n").encode())
    groups = corpus.read_ecd(path)
    assert groups[0].answer == 3
    assert groups[0].true_reply == "回复3"


# --- held-out split ----------------------------------------------------------------------------------


def synthetic_pairs(conversations: int = 80, per_conversation: int = 4) -> list[DialoguePair]:
    pairs = []
    for c in range(conversations):
        for t in range(per_conversation):
            pairs.append(
                DialoguePair(
                    (f"顾客{c}问题{t}", f"客服{c}确认{t}", f"顾客{c}追问{t}"),
                    f"会话{c}的回复{t}",
                    f"conv{c}",
                )
            )
    # Generic replies shared by many chats, and an exact duplicate pair.
    pairs += [DialoguePair((f"顾客{c}说谢谢",), "不客气", f"conv{c}") for c in range(40)]
    pairs.append(pairs[0])
    return pairs


def test_split_has_no_conversation_leakage() -> None:
    pairs = synthetic_pairs()
    split = corpus.build_heldout_split(pairs, n_test=40, seed=5, block_size=5)
    assert 30 <= len(split.test) <= 40
    train_convs = {p.conversation for p in split.train}
    assert train_convs.isdisjoint(split.test_conversations)
    assert {origin for origin in split.test_origins} <= split.test_conversations
    train_contexts = {p.context for p in split.train}
    assert all(g.context not in train_contexts for g in split.test)
    # Guard conversations next to test blocks are used by neither side.
    all_convs = {p.conversation for p in pairs}
    assert train_convs | split.test_conversations < all_convs


def test_split_groups_have_one_true_reply_and_nine_other_conversation_negatives() -> None:
    pairs = synthetic_pairs()
    reply_conv: dict[str, set[str]] = {}
    for p in pairs:
        reply_conv.setdefault(p.reply, set()).add(p.conversation)
    split = corpus.build_heldout_split(pairs, n_test=40, seed=5, block_size=5)
    for group, origin in zip(split.test, split.test_origins, strict=True):
        assert len(group.candidates) == 10
        assert len(set(group.candidates)) == 10  # no duplicate of the true reply among negatives
        assert group.candidates.count(group.true_reply) == 1
        for i, candidate in enumerate(group.candidates):
            if i != group.answer:
                assert reply_conv[candidate] - {origin}, "a negative must come from another chat"


def test_split_is_deterministic_and_seeded() -> None:
    pairs = synthetic_pairs()
    a = corpus.build_heldout_split(pairs, n_test=30, seed=1, block_size=5)
    b = corpus.build_heldout_split(pairs, n_test=30, seed=1, block_size=5)
    c = corpus.build_heldout_split(pairs, n_test=30, seed=2, block_size=5)
    assert a == b
    assert a.test != c.test


def test_split_drops_duplicate_pairs_and_round_trips_as_ecd(tmp_path: Path) -> None:
    pairs = synthetic_pairs()
    split = corpus.build_heldout_split(pairs, n_test=30, seed=3, block_size=5)
    keys = [(p.context, p.reply) for p in split.train]
    assert len(keys) == len(set(keys))
    path = tmp_path / "heldout.txt"
    corpus.write_ecd(split.test, path)
    assert corpus.read_ecd(path) == split.test


def test_split_needs_enough_conversations() -> None:
    pairs = [DialoguePair(("问",), f"答{i}", "only") for i in range(30)]
    with pytest.raises(ValueError, match="too few conversations"):
        corpus.build_heldout_split(pairs, n_test=5)


def test_normalize_turn_keeps_placeholders_and_drops_control_chars() -> None:
    assert corpus.normalize_turn(" 订单\t[ORDERID_10005629]\x00 金额[金额x]\n ") == (
        "订单 [ORDERID_10005629] 金额[金额x]"
    )
    assert corpus.normalize_turn("好" * 300, 10) == "好" * 10
