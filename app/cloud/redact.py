"""The privacy firewall: personal data is replaced by typed placeholders before any text leaves
the device, and restored in the teacher's reply where it echoes a placeholder.

It reads text the way customers type it: the detectors run on a normalised copy (full-width
characters folded, zero-width characters dropped, 一三八… read as digits; app/cloud/redact_text.py)
and every span maps back to the characters as typed. Phone numbers are found by Google's
``phonenumbers``; names and addresses with jieba's tagged dictionary and the national list of
administrative divisions (app/cloud/redact_zh.py); structured ids by regular expressions with
their check digits (ID card, Luhn). Brackets hide nothing: only the platform's own masks
(``[数字x]``, ``[ORDERID_…]`` …) and Xiaoer's placeholders are kept as they are. What still looks
personal is masked anyway (fail closed): any run of seven or more digits that is not a price, a
date, a size or a product code.

Every pattern is bounded, so the time grows linearly with the text (docs/firewall.md).
"""

from __future__ import annotations

import bisect
import functools
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

from app.cloud import redact_zh
from app.cloud.redact_text import Normalised, normalise

# Placeholders look like [PHONE_1]; the teacher is asked to keep them verbatim.
PLACEHOLDER = re.compile(
    r"\[(PHONE|ID_CARD|BANK_CARD|ORDER|TRACKING|EMAIL|ADDRESS|NAME|URL|QQ|WECHAT|PLATE|IP|NUMBER)"
    r"_(\d+)\]"
)
# The platform's own masks (JDDC: ../shared/data/README.md): kept verbatim, never scanned.
PLATFORM_MASK = re.compile(
    r"\[(?:数字|订单|地址|姓名|金额|日期|时间|电话|站点|链接|邮箱|身份证号|组织机构)x\]"
    r"|\[ORDERID_\d{1,20}\]|(?<![A-Za-z0-9])(?:ORDERID|USERID)_\d{1,20}(?![0-9])"
)

_CJK = "\u4e00-\u9fff"
_ND = r"(?<!\d)"  # no digit just before: letters glued to a number do not hide it (VX138…)
_NE = r"(?!\d)"

_ID_CARD = re.compile(
    _ND
    + r"[1-9]\d{5}[ -]?(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])[ -]?\d{3}[\dXx]"
    r"(?![0-9])"
)
_BANK_CARD = re.compile(_ND + r"\d{4}(?:[ -]?\d{4}){3}(?:[ -]?\d{1,3})?" + _NE)
_EMAIL = re.compile(
    r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,8}\.[A-Za-z]{2,24}"
)
_URL = re.compile(r"(?:https?://|www\.)[^\s<>\"'，。！？、；）】]{1,2000}", re.IGNORECASE)
# Query keys that carry who the customer is or a credential.
_URL_PERSONAL_KEYS = frozenset(
    [
        "id",
        "uid",
        "userid",
        "user_id",
        "user",
        "username",
        "nick",
        "nickname",
        "name",
        "token",
        "access_token",
        "auth",
        "key",
        "apikey",
        "api_key",
        "sig",
        "signature",
        "session",
        "sessionid",
        "sid",
        "ticket",
        "code",
        "password",
        "passwd",
        "pwd",
        "secret",
        "phone",
        "mobile",
        "tel",
        "email",
        "mail",
        "openid",
        "unionid",
        "memberid",
        "member_id",
        "buyer",
        "buyerid",
        "buyer_id",
        "buyer_nick",
        "address",
        "addr",
        "idcard",
        "receiver",
    ]
)
# Courier waybills: letter prefixes of the big carriers, or a keyword before the number.
_TRACKING = re.compile(
    r"(?<![A-Za-z0-9])(?:SF\d{12,13}|JD[A-Z0-9]{11,15}|YT\d{13}|ZTO\d{12}|EMS\d{11}|JT\d{13}|"
    r"DPK\d{12})(?![0-9A-Za-z])"
)
_TRACKING_KW = re.compile(
    r"(?:快递单号|运单号|物流单号|快递号|waybill|tracking)\s{0,3}(?:是|为|:|：)?\s{0,3}"
    r"([A-Za-z0-9]{8,20})(?![0-9A-Za-z])",
    re.IGNORECASE,
)
_ORDER_KW = re.compile(
    r"(?:订单号|订单编号|订单|单号|order)\s{0,3}(?:号|是|为|:|：|#|no\.?)?\s{0,3}(\d{6,20})" + _NE,
    re.IGNORECASE,
)
_QQ = re.compile(
    r"(?<![A-Za-z])(?:QQ|扣扣|企鹅号|Q号)\s{0,3}(?:号码|号|是|为|:|：|\s){0,3}\s{0,3}(\d{5,12})"
    + _NE,
    re.IGNORECASE,
)
_WECHAT = re.compile(
    r"(?:微 ?信号?|威信|薇信|V信|(?<![A-Za-z])(?:VX|WX|weixin|wechat|wxid)|加V|\+V)"
    r"\s{0,3}(?:号|是|为|:|：|\s){0,3}\s{0,3}([A-Za-z][A-Za-z0-9_-]{5,19})(?![A-Za-z0-9_-])",
    re.IGNORECASE,
)
_PLATE = re.compile(
    r"(?<![A-Za-z0-9])[京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼]"
    r"[A-HJ-NP-Za-hj-np-z][·• ]?[A-HJ-NP-Za-hj-np-z0-9]{5,6}(?![A-Za-z0-9])"
)
_IPV4 = re.compile(
    r"(?<![\d.vV])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
    r"(?![\d.])"
)
_IPV6 = re.compile(
    r"(?<![0-9A-Fa-f])(?:[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{0,4}){2,7}"
    r"|::[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4}){0,6})(?![0-9A-Fa-f:])"
)
# Digit strings, groups joined by one space or hyphen (138 1234 5678): the fail-closed net.
_DIGIT_RUN = re.compile(r"(?<!\d)(?<!\d\.)\d{3,}(?:[ -]\d{2,}){0,6}(?![\d]|\.\d)")
_PRICE_BEFORE = re.compile(r"(?:[¥￥$]|RMB|价格?|售价|原价|现价|金额)\s?$", re.IGNORECASE)
_SIZE_AFTER = re.compile(
    r"\s?(?:元|块|rmb|万|亿|mAh|ml|mm|cm|km|kg|mg|g|GB|TB|MB|KB|Hz|W|V|L|m|克|千克|斤|毫升|毫安|"
    r"像素|寸|码|件|个|台|瓶|盒|箱|包|袋|次|天|%|‰)(?![A-Za-z])",
    re.IGNORECASE,
)
# Product codes are not personal: SKU 100012345678, ISBN 9787111547426, 商品编号 …
_PRODUCT_CUE = re.compile(
    r"(?:SKU|ISBN|EAN|UPC|型号|货号|商品编号|商品编码|条码|条形码|书号|款号)[\s:：#]{0,3}[0-9A-Za-z-]{0,12}$",
    re.IGNORECASE,
)
# A few letters right before a number that mark it as a model, not as a contact.
_CONTACT_LETTERS = re.compile(r"(?:QQ|VX|WX|V|Q|tel|TEL|Tel|sfz|SFZ|phone|mobile|id|ID)$")


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


_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def id_card_ok(value: str) -> bool:
    """GB 11643: the 18th character is the check digit of the first seventeen."""
    chars = re.sub(r"[ -]", "", value).upper()
    if len(chars) != 18 or not chars[:17].isdigit():
        return False
    total = sum(int(c) * w for c, w in zip(chars[:17], _ID_WEIGHTS, strict=True))
    return "10X98765432"[total % 11] == chars[17]


def _is_bank_card(value: str) -> bool:
    digits = re.sub(r"\D", "", value)
    return 16 <= len(digits) <= 19 and _luhn_ok(digits)


def _is_personal_url(value: str) -> bool:
    try:
        parts = urlsplit(value if "://" in value else "http://" + value)
        pairs = parse_qsl(parts.query, keep_blank_values=True) + parse_qsl(parts.fragment)
    except ValueError:
        return True  # a URL that does not parse is not trusted
    for key, _ in pairs:
        k = key.lower()
        if k in _URL_PERSONAL_KEYS or k.endswith(("token", "_id", "userid", "nick", "phone")):
            return True
    return False


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


def _phones(text: str, taken: list[tuple[int, int, str]]) -> list[tuple[int, int]]:
    """Google's phone-number grammar for China: any grouping, +86 / 0086, landlines with area
    codes. It reads a copy of the same length that keeps only the stretches with seven digits
    or more not taken yet (a phone number has at least seven; the matcher costs ~0.1 ms for every
    number it tries), with letters blanked: a letter glued to a number makes it refuse a match
    (VX13812345678)."""
    # A stretch longer than any phone number (with its separators) is a list of numbers or
    # noise; the fail-closed rule masks its long digit groups.
    windows = [m.span() for m in _SEVEN_DIGITS.finditer(text) if m.end() - m.start() <= 64]
    if not windows:
        return []
    import phonenumbers

    # The common shape, eleven digits in a row with no country code before, is checked against
    # the library's own pattern for Chinese mobiles: a regular expression instead of a parse.
    found = []
    mobile = _mobile_pattern()
    for m in _BARE_MOBILE.finditer(text):
        if mobile.fullmatch(m.group(0)) and not _COUNTRY_CODE_BEFORE.search(
            text, max(0, m.start() - 6), m.start()
        ):
            found.append(m.span())
    kept = [" "] * len(text)
    for s, e in windows:
        s = max(0, s - 1)  # a "+" or "(" before the digits
        kept[s:e] = text[s:e]
    for s, e in found:
        kept[s:e] = " " * (e - s)
    for s, e, _ in taken:
        kept[s:e] = " " * (e - s)
    blanked = _LETTERS.sub(lambda m: " " * len(m.group(0)), "".join(kept))
    found += [(m.start, m.end) for m in phonenumbers.PhoneNumberMatcher(blanked, "CN")]
    return found


_BARE_MOBILE = re.compile(r"(?<!\d)1\d{10}(?!\d)")
_COUNTRY_CODE_BEFORE = re.compile(r"(?:\+|00)?86[\s-]{0,2}$|[\d\-(]\s?$")


@functools.cache
def _mobile_pattern() -> re.Pattern[str]:
    import phonenumbers

    metadata = phonenumbers.PhoneMetadata.metadata_for_region("CN")
    assert metadata is not None and metadata.mobile is not None
    return re.compile(metadata.mobile.national_number_pattern or r"1[3-9]\d{9}")


_SEVEN_DIGITS = re.compile(r"\d(?:[ \-()+]{0,3}\d){6,}")
_LETTERS = re.compile(r"[A-Za-z]+")


def _ips(text: str) -> list[tuple[int, int]]:
    spans = [(m.start(), m.end()) for m in _IPV4.finditer(text)]
    if "::" in text or text.count(":") >= 4:
        for m in _IPV6.finditer(text):
            try:
                ipaddress.IPv6Address(m.group(0))
            except ValueError:
                continue
            # "a::b" is valid but is code, not an address a customer pastes: a digit is needed.
            if m.group(0).count(":") >= 2 and any(ch.isdigit() for ch in m.group(0)):
                spans.append((m.start(), m.end()))
    return spans


def _plates(text: str) -> list[tuple[int, int]]:
    out = []
    for m in _PLATE.finditer(text):
        if sum(ch.isdigit() for ch in m.group(0)) >= 3:
            out.append((m.start(), m.end()))
    return out


def _long_numbers(text: str) -> list[tuple[int, int]]:
    """Fail closed: seven digits or more are personal unless they read as a price, a size, a date
    or a product code, or sit inside a link to a product page."""
    out = []
    for m in _DIGIT_RUN.finditer(text):
        value = m.group(0)
        digits = value.replace(" ", "").replace("-", "")
        if len(digits) < 7:
            continue
        before = text[max(0, m.start() - 20) : m.start()]
        after = text[m.end() : m.end() + 4]
        if _PRICE_BEFORE.search(before) or _PRODUCT_CUE.search(before):
            continue
        if _SIZE_AFTER.match(after) and not _CONTACT_LETTERS.search(before):
            continue
        if _is_date(value):
            continue
        out.append(m.span())
    return out


def _is_date(value: str) -> bool:
    digits = value.replace(" ", "").replace("-", "")
    if len(digits) != 8:
        return False
    year, month, day = int(digits[:4]), int(digits[4:6]), int(digits[6:])
    return 1900 <= year <= 2100 and 1 <= month <= 12 and 1 <= day <= 31


# Order matters: earlier finders win overlapping spans (a bank card is not also an order number).
FINDERS: list[tuple[str, Finder]] = [
    ("URL", _spans(_URL, check=_is_personal_url)),
    ("EMAIL", _spans(_EMAIL)),
    ("ID_CARD", _spans(_ID_CARD, check=id_card_ok)),
    ("BANK_CARD", _spans(_BANK_CARD, check=_is_bank_card)),
    ("TRACKING", _spans(_TRACKING)),
    ("TRACKING", _spans(_TRACKING_KW, group=1)),
    ("QQ", _spans(_QQ, group=1)),
    ("WECHAT", _spans(_WECHAT, group=1)),
    ("PHONE", lambda text: []),  # _phones, called with the spans taken so far
    ("ORDER", _spans(_ORDER_KW, group=1)),
    ("IP", _ips),
    ("PLATE", _plates),
    ("ADDRESS", redact_zh.find_addresses),
    ("NAME", redact_zh.find_names),
    ("NUMBER", _long_numbers),
]
# A bare name is looked for next to these (赵强 13912345678 江苏省…).
_NAME_NEIGHBOURS = frozenset({"PHONE", "ID_CARD", "BANK_CARD", "ADDRESS", "QQ", "WECHAT", "EMAIL"})


def _kept_spans(text: str) -> list[tuple[int, int]]:
    """Platform masks, Xiaoer's own placeholders and links to plain product pages."""
    kept = [m.span() for m in PLATFORM_MASK.finditer(text)]
    kept += [m.span() for m in PLACEHOLDER.finditer(text)]
    if "://" in text or "www." in text.lower():
        kept += [m.span() for m in _URL.finditer(text) if not _is_personal_url(m.group(0))]
    return kept


def find_entities(text: str) -> list[Entity]:
    """Personal values in ``text``, as spans of the text as typed."""
    norm = normalise(text)
    scan = norm.text
    kept = _kept_spans(scan)
    if kept:  # blank them out (same length) so no detector reads into them
        chars = list(scan)
        for s, e in kept:
            chars[s:e] = "\x00" * (e - s)
        scan = "".join(chars)
    # The kept spans count as taken, so no span found around them can swallow them.
    taken: list[tuple[int, int, str]] = []
    for s, e in sorted(kept):
        if taken and s < taken[-1][1]:
            taken[-1] = (taken[-1][0], max(e, taken[-1][1]), "")
        else:
            taken.append((s, e, ""))
    for kind, finder in FINDERS:
        for start, end in _phones(scan, taken) if kind == "PHONE" else finder(scan):
            _take(taken, kind, start, end)
    for _s, _e, kind in list(taken):
        if kind in _NAME_NEIGHBOURS:  # (kept spans have kind "")
            for start, end in redact_zh.name_beside(scan, _s, _e):
                _take(taken, "NAME", start, end)
    return _to_original(norm, [t for t in taken if t[2]])


def _take(taken: list[tuple[int, int, str]], kind: str, start: int, end: int) -> None:
    """Add the span unless it overlaps one already taken (``taken`` stays sorted and disjoint,
    so only the neighbours need a look)."""
    if start >= end:
        return
    i = bisect.bisect_left(taken, (start, end, kind))
    if i > 0 and taken[i - 1][1] > start:
        return
    if i < len(taken) and taken[i][0] < end:
        return
    taken.insert(i, (start, end, kind))


def _to_original(norm: Normalised, taken: list[tuple[int, int, str]]) -> list[Entity]:
    found = []
    for start, end, kind in sorted(taken):
        s, e = norm.to_original(start, end)
        found.append(Entity(kind, s, e, norm.original[s:e]))
    return found


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


def warm_up() -> None:
    """Load the dictionaries the detectors use (about half a second, once per process), so the
    first message that needs them is not the slow one."""
    redact_zh.dictionary()
    redact_for_cloud("收件人：王小明 13812345678 江苏省苏州市姑苏区人民路100号")


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
