"""The guard against invented commitments (issue #18): what it flags and what it lets pass."""

from __future__ import annotations

from app.suggest.guard import Commitment, GuardResult, check_commitments

# The issue's example: the customer asks for a discount and a shipping time; the shop's FAQ says 48h.
EVIDENCE = ["你好，我昨天买的羽绒服能便宜点吗？什么时候发货", "付款后48小时内发货"]


def test_the_issues_invented_draft_is_flagged_for_time_and_price() -> None:
    result = check_commitments("羽绒服便宜，发货时间在20分钟内。", EVIDENCE)
    assert not result.ok
    assert result.unsupported_kinds() == ("price", "time")
    assert [c.text for c in result.unsupported] == ["便宜", "20分钟内"]


def test_the_shops_own_answer_passes() -> None:
    result = check_commitments("亲，价格是统一的哦，付款后48小时内发货~", EVIDENCE)
    assert result.ok
    assert [c.kind for c in result.commitments] == ["time"]


def test_spans_point_into_the_reply() -> None:
    reply = "亲，可以给您补偿20元哦"
    result = check_commitments(reply, EVIDENCE)
    (found,) = result.unsupported
    assert found == Commitment("compensation", "补偿20元", 6, 11)
    assert reply[found.start : found.end] == found.text


def test_describe_names_each_unsupported_promise_in_chinese() -> None:
    result = check_commitments("羽绒服便宜，发货时间在20分钟内。", EVIDENCE)
    assert result.describe() == ["未经支持的价格承诺：便宜", "未经支持的时间承诺：20分钟内"]
    assert GuardResult(commitments=(), unsupported=()).describe() == []
