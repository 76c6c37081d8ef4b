"""A guard against invented commitments in a reply.

A draft that promises a time ("20分钟内发货", "明天到"), a price or discount ("便宜50元", "打八折"),
a refund ("给您退款"), compensation ("补偿您20元") or a gift ("送您一个赠品") must be backed by the
conversation or the shop's knowledge. `check_commitments` finds such promises in the reply, finds
the commitments the evidence makes with the same rules, and reports the reply's promises that no
evidence commitment of the same kind and a compatible value supports. docs/guard.md explains the
rules and their measured precision and recall.

Pure Python, no Qt: the ranker scores candidates with it and the UI shows `GuardResult.describe()`.
"""

from __future__ import annotations

import bisect
import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass

import cn2an

KINDS = ("time", "price", "refund", "compensation", "gift")
KIND_NAMES_ZH = {
    "time": "时间",
    "price": "价格",
    "refund": "退款",
    "compensation": "补偿",
    "gift": "赠品",
}


@dataclass(frozen=True)
class Commitment:
    """One promise found in a reply: its kind and where it is."""

    kind: str  # one of KINDS
    text: str  # the span in the reply, e.g. "20分钟内发货"
    start: int
    end: int


@dataclass(frozen=True)
class GuardResult:
    """The commitments a reply makes and those that nothing in the evidence supports."""

    commitments: tuple[Commitment, ...]
    unsupported: tuple[Commitment, ...]

    @property
    def ok(self) -> bool:
        """True when the reply makes no unsupported commitment."""
        return not self.unsupported

    def unsupported_kinds(self) -> tuple[str, ...]:
        """The kinds of the unsupported commitments, each once, in reply order."""
        return tuple(dict.fromkeys(c.kind for c in self.unsupported))

    def describe(self) -> list[str]:
        """One plain Chinese line per unsupported commitment, e.g. "未经支持的时间承诺：20分钟内发货".

        For a badge; a UI that translates the kinds itself reads `unsupported` instead.
        """
        return [f"未经支持的{KIND_NAMES_ZH[c.kind]}承诺：{c.text}" for c in self.unsupported]


# ---------------------------------------------------------------------------------------------
# Values. A commitment's value says what exactly is promised, so that "48小时内发货" supports
# "两天内发货" but not "24小时内发货". None = no value (e.g. "可以给您便宜一点"); MASK = a JD mask
# such as [金额x] stands where the value would be.

MASK = "mask"
_MASK_RE = r"\[(?:数字|金额|日期|时间)x\]"
_CN_DIGITS = "零〇一二两三四五六七八九十百千万"
_NUM_RE = rf"(?:\d+(?:\.\d+)?|[{_CN_DIGITS}]+(?:点[{_CN_DIGITS}]+)?|半|{_MASK_RE})"
_RANGE_SEP = r"\s*(?:-|~|～|—|到|至)\s*"


def _number(text: str) -> float | str:
    """A numeral (Arabic or Chinese, via cn2an) as a float, or MASK for a JD mask.

    A run of numeral characters that is no number ("千万", "十十") stays text: equal only to itself.
    """
    if text.startswith("["):
        return MASK
    if text == "半":
        return 0.5
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return float(cn2an.cn2an(text, "smart"))
    except (ValueError, KeyError, IndexError):  # cn2an's errors for malformed numerals
        return text


# ---------------------------------------------------------------------------------------------
# Patterns. Each finds a span of one kind of promise; the `_*_value` functions read its value.

_HOURS_PER_UNIT = {"分钟": 1 / 60, "小时": 1.0, "天": 24.0, "日": 24.0, "工作日": 24.0, "周": 168.0}
_DURATION = re.compile(
    rf"(?P<lo>{_NUM_RE}(?={_RANGE_SEP}){_RANGE_SEP})?(?P<n>{_NUM_RE})\s*个?"
    r"(?P<unit>分钟|小时|个?工作日|天|日|周|星期)(?:之内|以内|内|后|左右)?"
)
_DAY_WORDS = {
    "今天": "d0",
    "今日": "d0",
    "当天": "d0",
    "今晚": "d0",
    "明天": "d1",
    "明日": "d1",
    "后天": "d2",
    "大后天": "d3",
}
_DEADLINE = re.compile(
    r"(?P<day>大后天|今天|今日|当天|今晚|明天|明日|后天|(?:下)?(?:周|星期)[一二三四五六日天1-7]"
    rf"|\d+月\d+[日号]|\d+号|{_MASK_RE})"
)
# "周一到周五都发货" is a schedule, not a promise.
_WEEKDAY_RANGE = re.compile(
    r"(?:周|星期)[一二三四五六日天1-7]\s*(?:到|至|-|~|～)\s*(?:周|星期)?[一二三四五六日天1-7]"
)
# A duration or a day is a time promise only next to something the shop does by then.
# Not a bare 发 or 到: "发票", "充到100%" are no deliveries; "明天到" is read by _ARRIVES.
_DELIVERY_VERB = re.compile(
    r"给您发货|给您发出|发货|发出|发走|发过去|发给|给您发|就发|能发|会发|寄出|寄到|出库|揽收|到货|"
    r"到达|送达|送到|到家|到手|配送|就到|能到|会到|可以到|一定到|保证到|准时到|到账|处理|审核|安排|回复|答复|上门|补发|"
    r"换货|退回"
)
_ARRIVES = re.compile(r"(?:就|能|会|可以)?到(?![了过])")
_AMOUNT = re.compile(
    rf"(?:满(?P<threshold>{_NUM_RE})(?:元|块)?减(?P<off>{_NUM_RE})(?:元|块)?)"
    rf"|(?:打?(?P<rate>{_NUM_RE})折)|(?P<half>对折|半价)"
    rf"|(?:(?P<percent>{_NUM_RE})%|百分之(?P<percent_zh>{_NUM_RE}))"
    rf"|(?:(?P<money>{_NUM_RE})\s*(?:块钱|元|块(?![发寄装打带走])|圆|rmb|RMB)(?:的?(?:优惠券|券|红包|无门槛券))?)"
)
_PRICE_WORDS = re.compile(
    r"优惠券|优惠|便宜|打折|折扣|降价|减价|让利|少算|特价|立减|满减|返现|红包|券"
)
_REFUND = re.compile(
    r"(?:给您|为您|帮您|替您)(?:办理|安排|处理|操作|申请)?(?:全额)?(?:退款|退货|退钱|退换)"
    r"|(?:可以|能|支持|同意|包)(?:给您)?(?:全额)?(?:退款|退货|退换|退(?!差价|出))"
    r"|(?:全额|直接|马上|立即|立刻)退款"
    r"|退款(?:给您|到您)"
    r"|(?:七|7)天无理由(?:退货|退换)?"
    r"|原路(?:退回|返回)"
)
_COMPENSATION = re.compile(r"补偿|赔偿|赔付|补差价|退差价|补您|补给您|补上|报销|价保|保价")
_BUY_GET = re.compile(rf"买(?P<buy>{_NUM_RE})送(?P<get>{_NUM_RE})")
_GIFT = re.compile(
    r"赠品|赠送|小礼品|礼品|小礼物|包邮|免运费|运费险|免费"
    r"|送(?:您|你)?(?:一|1|两|2)?(?:个|份|张|瓶|支|盒|袋|双|包)|送(?:您|你)"
)
_PERCENT_OF_MONEY = re.compile(r"金额|价|优惠|折|返|减|赔|补偿|退")
# An amount belongs to the kind its clause talks about.
_COMPENSATION_CONTEXT = re.compile(r"补偿|赔偿|赔付|差价|价保|保价|补您|补给您|补上|报销")
_REFUND_CONTEXT = re.compile(r"退")

# ---------------------------------------------------------------------------------------------
# What makes a statement no promise: a negation, a question, a hedge, a condition, news.

_SENTENCE_END = re.compile(r"[。！？!?\n；;~～]+")
_CLAUSE_END = re.compile(r"[，,、：:。！？!?\n；;~～ ]+")
_QUESTION = re.compile(
    r"[？?]|[吗么嘛][~～。！!…]*$|是否|能不能|可不可以|有没有|要不要|行不行|会不会|可以吗|"
    r"什么时候|多久|几时|几天|多长时间|多少|怎么|为什么|哪天|哪里"
)
_NEGATION_BEFORE = re.compile(
    r"(?:不能|不可以|不可|不会|不支持|不提供|不参与|不享受|不是|无法|没有|没法|没办法|暂不|暂时不|"
    r"不予|不给|未|并非|不)$"
)
_NEGATION_AFTER = re.compile(r"^(?:不了|不到|不起)")
# A strong negation anywhere in the clause: "赠品是不单独发货的", "这款没法再优惠了".
_NEGATION_IN_CLAUSE = re.compile(
    r"不能|不可以|不可|不支持|不提供|无法|没有|没法|没办法|暂不|不予|不参与|不享受|不单独|不会|是不"
)
_HEDGE_IN_CLAUSE = re.compile(
    r"一般|通常|正常情况|正常来说|正常是|大概|大约|预计|估计|可能|也许|左右|应该|尽量|争取|有机会"
)
_HEDGE_IN_SENTENCE = re.compile(r"为准|请您咨询|请咨询|咨询一下|以实际|仅供参考|参考")
# Not "只要": "只要89元" is a price, not a condition.
_CONDITION = re.compile(r"如果|若是|假如|要是|如有|一旦|的话|若")
# Something already done is news, not a promise ("已经为您办理退款了").
_DONE = re.compile(r"已")


@dataclass(frozen=True)
class _Claim:
    commitment: Commitment
    value: tuple[object, ...] | None  # None: no value stated
    status: str  # "asserted", "hedged", "done" or "question" (negated spans are left out)


def _spans(pattern: re.Pattern[str], text: str) -> list[re.Match[str]]:
    return list(pattern.finditer(text))


@functools.lru_cache(maxsize=256)
def _separators(splitter: re.Pattern[str], text: str) -> tuple[list[int], list[int]]:
    """Where the separators between sentences or clauses start and end (cached: asked per span)."""
    spans = [m.span() for m in splitter.finditer(text)]
    return [a for a, _ in spans], [b for _, b in spans]


def _bounds(splitter: re.Pattern[str], text: str, pos: int) -> tuple[int, int]:
    """The start and end of the sentence or clause around `pos`."""
    starts, ends = _separators(splitter, text)
    before = bisect.bisect_right(ends, pos)
    after = bisect.bisect_left(starts, pos)
    return (ends[before - 1] if before else 0), (
        starts[after] if after < len(starts) else len(text)
    )


def _status(text: str, start: int, end: int) -> str:
    """'negated', 'done', 'question', 'hedged' or 'asserted' for the statement at text[start:end].

    A question is judged by the clause, not the sentence: in "给您补偿十元，您看可以吗" the offer
    stands, only the customer's consent is asked. A question mark closing the sentence makes its
    last clause a question ("您说的是明天到货对吧？").
    """
    c_start, c_end = _bounds(_CLAUSE_END, text, start)
    s_start, s_end = _bounds(_SENTENCE_END, text, start)
    clause = text[c_start : max(c_end, end)]
    before = text[c_start:start]
    if (
        _NEGATION_BEFORE.search(before[-4:])
        or _NEGATION_AFTER.match(text[end:c_end])
        or _NEGATION_IN_CLAUSE.search(clause)
    ):
        return "negated"
    if _DONE.search(clause):
        return "done"
    closes_question = text[s_end : s_end + 1] in {"？", "?"} and c_end >= s_end
    if _QUESTION.search(clause) or closes_question:
        return "question"
    sentence = text[s_start : max(s_end, end)]
    if (
        _HEDGE_IN_CLAUSE.search(clause)
        or _HEDGE_IN_SENTENCE.search(sentence)
        or _CONDITION.search(text[s_start:start])
    ):
        return "hedged"
    return "asserted"


def _clause(text: str, pos: int) -> str:
    start, end = _bounds(_CLAUSE_END, text, pos)
    return text[start:end]


def _duration_value(m: re.Match[str]) -> tuple[object, ...]:
    unit = m["unit"].lstrip("个")
    unit = "周" if unit == "星期" else unit
    hi = _number(m["n"])
    lo = _number(m["lo"].rstrip(" -~～—到至")) if m["lo"] else None
    scale = _HOURS_PER_UNIT[unit]
    if not isinstance(hi, float):
        return ("duration", hi, unit)
    lo_hours = lo * scale if isinstance(lo, float) else None
    return ("duration", round(hi * scale, 3), lo_hours)


def _day_value(day: str) -> tuple[object, ...]:
    if day.startswith("["):
        return ("day", MASK)
    if day in _DAY_WORDS:
        return ("day", _DAY_WORDS[day])
    weekday = day.replace("星期", "周")
    return ("day", weekday.replace("天", "日").replace("7", "日"))


def _amount_value(m: re.Match[str]) -> tuple[object, ...]:
    if m["threshold"]:
        return ("threshold", _number(m["threshold"]), _number(m["off"]))
    if m["half"]:
        return ("rate", 5.0)
    if m["rate"]:
        rate = _number(m["rate"])
        # "85折" and "八五折" are 8.5折.
        return ("rate", rate / 10 if isinstance(rate, float) and rate >= 10 else rate)
    if m["percent"] or m["percent_zh"]:
        return ("percent", _number(m["percent"] or m["percent_zh"]))
    return ("money", _number(m["money"]))


@functools.lru_cache(maxsize=2048)  # the same evidence is checked against every candidate
def _find(text: str) -> tuple[_Claim, ...]:
    """Every commitment-shaped span in `text`, negated ones left out."""
    found: list[tuple[str, int, int, tuple[object, ...] | None]] = []
    taken = bytearray(len(text))  # 1 where a span was already found

    def free(start: int, end: int) -> bool:
        return not any(taken[start:end])

    def add(kind: str, start: int, end: int, value: tuple[object, ...] | None) -> None:
        found.append((kind, start, end, value))
        taken[start:end] = b"\x01" * (end - start)

    # Times: a duration or a day with something the shop does in the same clause.
    for m in _spans(_DURATION, text):
        if text.startswith("前", m.end()):  # "3天前" is the past
            continue
        if text.endswith("月", 0, m.start()):  # "12月5日" is a date (below), not five days
            continue
        verb = _DELIVERY_VERB.match(text, m.end()) or _ARRIVES.match(text, m.end())
        if not verb and not _DELIVERY_VERB.search(_clause(text, m.start())):
            continue
        # "48小时内发货": the span includes the verb that follows
        add("time", m.start(), verb.end() if verb else m.end(), _duration_value(m))
    for m in _spans(_WEEKDAY_RANGE, text):
        taken[m.start() : m.end()] = b"\x01" * (m.end() - m.start())
    for m in _spans(_DEADLINE, text):
        if not free(m.start(), m.end()):
            continue
        arrives = _ARRIVES.match(text, m.end())
        if not arrives and not _DELIVERY_VERB.search(_clause(text, m.start())):
            continue
        verb = arrives or _DELIVERY_VERB.search(text, m.end(), m.end() + 8)
        add("time", m.start(), verb.end() if verb else m.end(), _day_value(m["day"]))
    # Amounts: their kind is what the clause talks about.
    for m in _spans(_AMOUNT, text):
        if not free(m.start(), m.end()):
            continue
        clause = _clause(text, m.start())
        if (m["percent"] or m["percent_zh"]) and not _PERCENT_OF_MONEY.search(clause):
            continue  # "100%纯棉", "充到100%"
        kind = (
            "compensation"
            if _COMPENSATION_CONTEXT.search(clause)
            else "refund"
            if _REFUND_CONTEXT.search(clause)
            else "price"
        )
        add(kind, m.start(), m.end(), _amount_value(m))
    for m in _spans(_BUY_GET, text):  # "买二送一" is not "买一送一"
        add("gift", m.start(), m.end(), ("buy_get", _number(m["buy"]), _number(m["get"])))
    for kind, pattern in (("refund", _REFUND), ("compensation", _COMPENSATION), ("gift", _GIFT)):
        for m in _spans(pattern, text):
            if free(m.start(), m.end()):
                add(kind, m.start(), m.end(), None)
    for m in _spans(_PRICE_WORDS, text):
        if free(m.start(), m.end()):
            add("price", m.start(), m.end(), None)

    claims = []
    for kind, start, end, value in _merge_within_clauses(text, found):
        status = _status(text, start, end)
        if status == "negated":
            continue
        commitment = Commitment(kind=kind, text=text[start:end], start=start, end=end)
        claims.append(_Claim(commitment, value, status))
    return tuple(claims)


def _merge_within_clauses(
    text: str, found: list[tuple[str, int, int, tuple[object, ...] | None]]
) -> list[tuple[str, int, int, tuple[object, ...] | None]]:
    """One span per kind and clause: "补偿" and "20元" in "补偿您20元" are one promise of 20元."""
    merged: dict[tuple[str, int], tuple[str, int, int, tuple[object, ...] | None]] = {}
    for kind, start, end, value in sorted(found, key=lambda f: f[1]):
        key = (kind, _bounds(_CLAUSE_END, text, start)[0])
        if key not in merged:
            merged[key] = (kind, start, end, value)
            continue
        _, m_start, m_end, m_value = merged[key]
        if m_value is not None and value is not None:  # two values: two promises
            merged[(kind, start)] = (kind, start, end, value)
            continue
        merged[key] = (kind, min(start, m_start), max(end, m_end), m_value or value)
    return sorted(merged.values(), key=lambda f: f[1])


def _supports(evidence: _Claim, claim: _Claim) -> bool:
    """Whether an evidence commitment backs a reply commitment of the same kind.

    A promise without a value ("给您补偿") is backed by any promise of its kind. A value must be
    the same value (durations compared in hours, so 48小时 = 两天). A JD mask in the reply
    ("补偿您[金额x]元") is a value the agent still has to fill in (the UI highlights it), so the
    reply promises the kind only and is backed like a promise without a value. A mask in the
    evidence hides its value, so it backs no concrete value ("补偿[金额x]元" does not back "补偿20元").
    """
    if evidence.commitment.kind != claim.commitment.kind:
        return False
    if claim.value is None or MASK in claim.value:
        return True
    if evidence.value is None or MASK in evidence.value or evidence.value[0] != claim.value[0]:
        return False
    if claim.value[0] == "duration":
        same_upper = evidence.value[1] == claim.value[1]
        lows = (evidence.value[2], claim.value[2])
        return same_upper and (None in lows or lows[0] == lows[1])
    return evidence.value == claim.value


def check_commitments(reply: str, evidence: Sequence[str]) -> GuardResult:
    """The commitments in `reply` and those that nothing in `evidence` supports.

    `evidence`: the conversation's turns (customer and agent) and the texts of the shop's knowledge
    entries retrieved for this turn (FAQ answers, past agent replies). Leave out the past reply a
    candidate was copied from: a promise made to another customer does not back itself (the same
    promise in another past reply or in the FAQ does).

    Only the reply's asserted promises count; a question, a negation, a hedge ("一般", "以…为准"),
    a condition ("如果…") or news of something already done is none. In the evidence a hedged,
    conditional or done statement still backs a promise (it is what the shop says or did); a
    question or a negation does not, so a customer asking "能便宜点吗" backs no discount.
    """
    if not isinstance(reply, str):
        raise TypeError(f"reply must be a string, not {type(reply).__name__}")
    if isinstance(evidence, str) or not all(isinstance(text, str) for text in evidence):
        raise TypeError("evidence must be a sequence of strings (one per turn or knowledge entry)")
    claims = [c for c in _find(reply) if c.status == "asserted"]
    backing = [c for text in evidence for c in _find(text) if c.status != "question"]
    unsupported = tuple(c.commitment for c in claims if not any(_supports(e, c) for e in backing))
    return GuardResult(commitments=tuple(c.commitment for c in claims), unsupported=unsupported)
