"""The privacy firewall: personal data is replaced by typed placeholders before any text leaves
the device, and restored in the teacher's reply where it echoes a placeholder.

Rule-based on purpose: fast (thousands of messages per second on one core), predictable, and
explainable to a shop owner. Ordinary numbers — prices, sizes, quantities, dates, model numbers
such as A2337 — are left alone; JD's own masks such as ``[数字x]`` pass through untouched.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

# Placeholders look like [PHONE_1]; the teacher is asked to keep them verbatim.
PLACEHOLDER = re.compile(
    r"\[(PHONE|ID_CARD|BANK_CARD|ORDER|TRACKING|EMAIL|ADDRESS|NAME|URL)_(\d+)\]"
)

_D = r"(?<![0-9A-Za-z])"  # no digit or letter just before
_E = r"(?![0-9A-Za-z])"  # no digit or letter just after
_CJK = r"\u4e00-\u9fff"

_MOBILE = re.compile(_D + r"(?:(?:\+|00)86[\s-]?)?1[3-9]\d(?:[\s-]?\d{4}){2}" + _E)
_LANDLINE = re.compile(_D + r"(?:\(0\d{2,3}\)|0\d{2,3})[\s-]?\d{7,8}(?:-\d{1,5})?" + _E)
_ID_CARD = re.compile(
    _D + r"[1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx]" + _E
)
_BANK_CARD = re.compile(_D + r"(?:\d{4}[\s-]?){3}\d{4}(?:[\s-]?\d{1,3})?" + _E)
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_URL = re.compile(r"https?://[^\s<>\"'，。！？、]+")
_URL_SECRET = re.compile(
    r"[?&#](?:token|access_token|auth|key|apikey|api_key|sig|signature|session|sid|ticket|code|"
    r"password|passwd|pwd|secret)=",
    re.IGNORECASE,
)
# Courier waybills: letter prefixes of the big carriers, or a keyword before the number.
_TRACKING = re.compile(
    _D + r"(?:SF\d{12,13}|JD[A-Z0-9]{11,15}|YT\d{13}|ZTO\d{12}|EMS\d{11}|JT\d{13}|DPK\d{12})" + _E
)
_TRACKING_KW = re.compile(
    r"(?:快递单号|运单号|物流单号|快递号|waybill|tracking)\s*(?:是|为|:|：)?\s*([A-Za-z0-9]{8,20})"
    + _E,
    re.IGNORECASE,
)
_ORDER_KW = re.compile(
    r"(?:订单号|订单编号|订单|单号|order)\s*(?:号|是|为|:|：|#|no\.?)?\s*(\d{6,20})" + _E,
    re.IGNORECASE,
)
_LONG_NUMBER = re.compile(_D + r"\d{10,20}" + _E)
# After "地址" everything up to the next punctuation is the address; after "寄到"/"住在" only
# when it looks like one ("能寄到新疆吗" and "送到楼下" are not addresses).
_ADDRESS_KW = re.compile(
    r"(?:收货地址|送货地址|地址)\s*(?:是|为|:|：|在)\s*([" + _CJK + r"0-9A-Za-z\-#]{4,60})"
)
_ADDRESS_MOVE = re.compile(r"(?:住在|寄到|送到|寄去|发到)\s*([" + _CJK + r"0-9A-Za-z\-#]{4,60})")
_ADDRESS_MARKER = re.compile(r"省|市|区|县|路|街|道|号|村|小区|苑|室|栋|幢|镇|弄")
_ADDRESS = re.compile(
    r"(?:[" + _CJK + r"]{2,7}(?:省|自治区))?[" + _CJK + r"]{2,7}(?:市|州|盟)"
    r"(?:["
    + _CJK
    + r"]{1,7}(?:区|县|旗))?(?:["
    + _CJK
    + r"0-9]{1,12}(?:路|街|道|巷|镇|乡|村|大道))"
    r"(?:[0-9]{1,5}(?:号|弄))?(?:[" + _CJK + r"0-9]{0,12}(?:号楼|栋|幢|单元|室|楼|小区|苑|座))*"
)
_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
    "姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
_NAME_KW = re.compile(
    r"(?:(?:收件人|收货人|联系人|姓名|名字|寄件人)\s*(?:是|为|叫|:|：)|我叫|我的名字是)\s*"
    r"(?![我你您他她它])([" + _CJK + r"]{2,3})"
    r"(?=$|[^" + _CJK + r"]|先生|女士|小姐|收|的|电话|手机|联系|地址|身份)"
)
_NAME_TITLE = re.compile(r"([" + _SURNAMES + r"][" + _CJK + r"]{0,2}?)(?=先生|女士|小姐)")


@dataclass(frozen=True)
class Entity:
    type: str
    start: int
    end: int
    text: str


@dataclass
class Redaction:
    """The text that may leave the device, what was replaced, and how to put it back."""

    original: str
    redacted: str
    entities: list[Entity]
    mapping: dict[str, str] = field(default_factory=dict)
    """placeholder → real value; it stays on the device."""

    def restore(self, text: str) -> str:
        """Put the real values back where the teacher echoed a placeholder."""
        return PLACEHOLDER.sub(lambda m: self.mapping.get(m.group(0), m.group(0)), text)


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch)
        if i % 2 == 1:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


Finder = Callable[[str], list[tuple[int, int]]]


def _spans(
    pattern: re.Pattern[str], group: int = 0, check: Callable[[str], bool] | None = None
) -> Finder:
    def find(text: str) -> list[tuple[int, int]]:
        out = []
        for m in pattern.finditer(text):
            if check is None or check(m.group(group)):
                out.append((m.start(group), m.end(group)))
        return out

    return find


def _is_bank_card(value: str) -> bool:
    digits = re.sub(r"\D", "", value)
    return 16 <= len(digits) <= 19 and _luhn_ok(digits)


def _looks_like_address(value: str) -> bool:
    return bool(_ADDRESS_MARKER.search(value))


def _is_url_with_secret(value: str) -> bool:
    return bool(_URL_SECRET.search(value))


# Order matters: earlier finders win overlapping spans (a bank card is not also an order number).
FINDERS: list[tuple[str, Finder]] = [
    ("URL", _spans(_URL, check=_is_url_with_secret)),
    ("EMAIL", _spans(_EMAIL)),
    ("ID_CARD", _spans(_ID_CARD)),
    ("BANK_CARD", _spans(_BANK_CARD, check=_is_bank_card)),
    ("TRACKING", _spans(_TRACKING)),
    ("TRACKING", _spans(_TRACKING_KW, group=1)),
    ("PHONE", _spans(_MOBILE)),
    ("PHONE", _spans(_LANDLINE)),
    ("ORDER", _spans(_ORDER_KW, group=1)),
    ("ORDER", _spans(_LONG_NUMBER)),
    ("ADDRESS", _spans(_ADDRESS_KW, group=1, check=_looks_like_address)),
    ("ADDRESS", _spans(_ADDRESS_MOVE, group=1, check=_looks_like_address)),
    ("ADDRESS", _spans(_ADDRESS)),
    ("NAME", _spans(_NAME_KW, group=1)),
    ("NAME", _spans(_NAME_TITLE)),
]


def find_entities(text: str) -> list[Entity]:
    taken: list[tuple[int, int]] = []
    found: list[Entity] = []
    protected = [(m.start(), m.end()) for m in re.finditer(r"\[[^\[\]]{1,40}\]", text)]
    for kind, finder in FINDERS:
        for start, end in finder(text):
            if start == end:
                continue
            if any(start < e and s < end for s, e in taken + protected):
                continue
            taken.append((start, end))
            found.append(Entity(kind, start, end, text[start:end]))
    return sorted(found, key=lambda e: e.start)


class Redactor:
    """Redacts several texts (the turns of one conversation) with one shared set of placeholders,
    so a phone number mentioned twice is ``[PHONE_1]`` both times."""

    def __init__(self) -> None:
        self.mapping: dict[str, str] = {}
        self._by_value: dict[tuple[str, str], str] = {}
        self._counters: dict[str, int] = {}

    def redact(self, text: str) -> Redaction:
        return _redact(text, self.mapping, self._by_value, self._counters)

    def restore(self, text: str) -> str:
        return PLACEHOLDER.sub(lambda m: self.mapping.get(m.group(0), m.group(0)), text)


def redact_for_cloud(text: str) -> Redaction:
    """Replace personal data with numbered, typed placeholders (the same value → the same one)."""
    return Redactor().redact(text)


def _redact(
    text: str,
    mapping: dict[str, str],
    by_value: dict[tuple[str, str], str],
    counters: dict[str, int],
) -> Redaction:
    entities = find_entities(text)
    pieces = []
    cursor = 0
    for ent in entities:
        key = (ent.type, ent.text)
        if key not in by_value:
            counters[ent.type] = counters.get(ent.type, 0) + 1
            placeholder = f"[{ent.type}_{counters[ent.type]}]"
            by_value[key] = placeholder
            mapping[placeholder] = ent.text
        pieces += [text[cursor : ent.start], by_value[key]]
        cursor = ent.end
    pieces.append(text[cursor:])
    return Redaction(text, "".join(pieces), entities, dict(mapping))
