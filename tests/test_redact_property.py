"""Property: personal data in any shape a customer types it, embedded in Chinese text with
separators, glued letters, brackets, full-width and zero-width characters, is gone after
redaction, and restore() gives the text back exactly."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.cloud.redact import redact_for_cloud
from app.cloud.redact_eval import leaked_part
from app.cloud.redact_text import normalise

DIGITS = "0123456789"
HAN_NUM = "零一二三四五六七八九"
ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
MOBILE_PREFIXES = ["130", "131", "135", "136", "137", "138", "139", "150", "151", "158", "159"]
MOBILE_PREFIXES += ["166", "177", "180", "181", "186", "187", "188", "189", "198", "199"]
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡"
COMPOUND = ["欧阳", "上官", "司马", "诸葛", "慕容", "令狐"]
GIVEN = "伟芳娜敏静磊强军洋勇艳杰涛明超秀霞平刚英华玉兰萍红娟丽晓文斌宇浩然轩涵欣怡"
DIVISIONS = ["江苏省苏州市姑苏区", "浙江省杭州市西湖区", "广东省深圳市南山区", "北京市朝阳区"]
DIVISIONS += ["上海市浦东新区", "四川省成都市武侯区", "湖北省武汉市洪山区"]
FILLER = ["你好", "麻烦看一下", "谢谢", "好的", "发货了吗", "急", "在吗", "亲", "收到", ""]
SEPARATORS = ["", " ", "，", "：", "、", "\n", " - "]


def digits(n: int) -> st.SearchStrategy[str]:
    return st.text(alphabet=DIGITS, min_size=n, max_size=n)


@st.composite
def mobile(draw: st.DrawFn) -> str:
    number = draw(st.sampled_from(MOBILE_PREFIXES)) + draw(digits(8))
    grouping = draw(st.integers(0, 5))
    return [
        number,
        f"{number[:3]} {number[3:7]} {number[7:]}",
        f"{number[:3]}-{number[3:7]}-{number[7:]}",
        f"{number[:4]} {number[4:7]} {number[7:]}",
        f"+86 {number}",
        f"0086{number}",
    ][grouping]


@st.composite
def id_card(draw: st.DrawFn) -> str:
    year = draw(st.integers(1950, 2010))
    body = (
        draw(st.sampled_from(["320102", "110105", "440305", "510107"]))
        + f"{year}{draw(st.integers(1, 12)):02d}{draw(st.integers(1, 28)):02d}"
        + draw(digits(3))
    )
    check = "10X98765432"[sum(int(c) * w for c, w in zip(body, ID_WEIGHTS, strict=True)) % 11]
    return body + check


@st.composite
def bank_card(draw: st.DrawFn) -> str:
    length = draw(st.sampled_from([16, 19]))
    body = "62" + draw(digits(length - 3))
    total = 0
    for i, ch in enumerate(reversed(body)):
        n = int(ch)
        if i % 2 == 0:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    card = body + str((10 - total % 10) % 10)
    return (
        " ".join(card[i : i + 4] for i in range(0, len(card), 4)) if draw(st.booleans()) else card
    )


@st.composite
def email(draw: st.DrawFn) -> str:
    user = draw(st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=3, max_size=10))
    user += draw(st.text(alphabet="0123456789._", max_size=3)).strip("._")
    return user + "@" + draw(st.sampled_from(["qq.com", "163.com", "example.com", "126.com"]))


@st.composite
def with_cue(draw: st.DrawFn) -> tuple[str, str]:
    """(cue + value, value) for the shapes only a cue makes personal."""
    kind = draw(st.sampled_from(["qq", "wechat", "name", "plate", "ip"]))
    if kind == "qq":
        value = str(draw(st.integers(10_000, 99_999_999_999)))
        cue = draw(st.sampled_from(["QQ", "qq", "QQ号", "扣扣", "QQ:"]))
    elif kind == "wechat":
        value = draw(st.sampled_from("abcdefghijklmnopqrstuvwxyz")) + draw(
            st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=5, max_size=12)
        )
        cue = draw(st.sampled_from(["微信", "微信号", "VX", "vx", "wx", "微信号："]))
    elif kind == "name":
        surname = (
            draw(st.sampled_from(COMPOUND))
            if draw(st.booleans())
            else draw(st.sampled_from(SURNAMES))
        )
        value = surname + draw(st.text(alphabet=GIVEN, min_size=1, max_size=2))
        cue = draw(st.sampled_from(["我叫", "收货人", "收件人：", "联系人", "姓名:", "name: "]))
    elif kind == "plate":
        value = (
            draw(st.sampled_from("京沪苏浙粤川鄂湘"))
            + draw(st.sampled_from("ABCDEFGHJK"))
            + draw(digits(5))
        )
        cue = draw(st.sampled_from(["车牌", "车牌号", "我的车"]))
    else:
        value = ".".join(str(draw(st.integers(1, 254))) for _ in range(4))
        cue = draw(st.sampled_from(["IP是", "ip ", "登录IP："]))
    return cue + value, value


@st.composite
def address(draw: st.DrawFn) -> str:
    street = draw(st.sampled_from(["人民", "星湖", "解放", "中山", "建设", "长江", "幸福"]))
    tail = draw(st.sampled_from(["", "2单元301", "3栋1202室", "5号楼602", "A座1801"]))
    return (
        draw(st.sampled_from(DIVISIONS))
        + street
        + draw(st.sampled_from(["路", "街", "大道"]))
        + f"{draw(st.integers(1, 999))}号"
        + tail
    )


FULL_WIDTH = {chr(c): chr(c + 0xFEE0) for c in range(0x21, 0x7F)}
HAN_DIGIT_OF = {str(i): HAN_NUM[i] for i in range(10)}


@st.composite
def disguised(draw: st.DrawFn, value: str) -> str:
    """The value as a customer might type it: full-width, zero-width spaces, Chinese numerals."""
    how = draw(st.sampled_from(["plain", "fullwidth", "zerowidth", "hannum"]))
    if how == "fullwidth":
        return "".join(FULL_WIDTH.get(ch, ch) for ch in value)
    if how == "zerowidth":
        cut = draw(st.integers(1, max(1, len(value) - 1)))
        return (
            value[:cut]
            + draw(st.sampled_from(["\u200b", "\u200c", "\u2060", "\ufeff"]))
            + value[cut:]
        )
    # Numbers read out digit by digit (phones, ids, cards, QQ); nobody reads out an IP address.
    if (
        how == "hannum"
        and sum(ch.isdigit() for ch in value) >= 7
        and set(value) <= set(DIGITS + " -")
    ):
        return "".join(HAN_DIGIT_OF.get(ch, ch) for ch in value)
    return value


@st.composite
def message(draw: st.DrawFn) -> tuple[str, str]:
    """(message, the personal value as it appears in it)."""
    kind = draw(st.sampled_from(["phone", "id", "card", "email", "cue", "address"]))
    if kind == "cue":
        piece, value = draw(with_cue())
    else:
        value = draw(
            {"phone": mobile(), "id": id_card(), "card": bank_card(), "email": email()}.get(
                kind, address()
            )
        )
        glue = draw(st.sampled_from(["", "VX", "vx", "QQ", "tel", "sfz", "手机", "电话"]))
        piece = glue + value if kind in ("phone", "id", "card") else value
    shown = draw(disguised(value))
    piece = piece.replace(value, shown, 1)
    if kind in ("phone", "id", "card"):
        piece += draw(st.sampled_from(["", "abc", "ok", "哈"]))
    if draw(st.booleans()):
        piece = draw(st.sampled_from(["[{}]", "【{}】", "({})", "「{}」"])).format(piece)
    before = draw(st.sampled_from(FILLER)) + draw(st.sampled_from(SEPARATORS))
    after = draw(st.sampled_from(SEPARATORS)) + draw(st.sampled_from(FILLER))
    return before + piece + after, shown


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(message())
def test_personal_values_are_gone_and_come_back(case: tuple[str, str]) -> None:
    text, value = case
    result = redact_for_cloud(text)
    assert leaked_part(text, value, result) == "", result.redacted
    plain_value = normalise(value).text
    assert plain_value not in normalise(result.redacted).text
    assert result.restore(result.redacted) == text
