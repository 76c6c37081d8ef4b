"""Write the privacy firewall's labelled set: personal values in the shapes customers type them,
and clean look-alikes that must come back untouched.

    python tools/gen_pii_set.py > tests/fixtures/pii_shapes.jsonl

Every value is made up (random digits with valid check digits, invented names and streets on real
district names). Deterministic: the same seed writes the same file. One JSON object a line:
``{"text": …, "pii": [strings as they appear in text], "shape": …, "variant": …}``; clean
messages have ``"pii": []`` and shape ``clean``.
"""

from __future__ import annotations

import json
import random
import sys

SEED = 20261204
ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
MOBILE_PREFIXES = [*range(130, 140), 150, 151, 152, 153, 155, 156, 157, 158, 159, 166, 177, 178]
MOBILE_PREFIXES += [*range(180, 190), 198, 199]
AREA_CODES = ["010", "021", "022", "023", "020", "0512", "0571", "0755", "028", "027", "025"]
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡"
COMPOUND = ["欧阳", "上官", "司马", "诸葛", "慕容", "东方", "皇甫", "令狐"]
GIVEN = "伟芳娜敏静磊强军洋勇艳杰涛明超秀霞平刚桂英华玉兰萍红娟建国丽晓文斌宇浩然子轩梓涵欣怡"
STREETS = ["人民", "星湖", "解放", "中山", "建设", "和平", "长江", "幸福", "青年", "新华", "滨河"]
KINDS = ["路", "街", "大道"]
PROVINCES = [
    ("江苏省", "苏州市", "姑苏区"),
    ("江苏省", "南京市", "鼓楼区"),
    ("浙江省", "杭州市", "西湖区"),
    ("广东省", "深圳市", "南山区"),
    ("四川省", "成都市", "武侯区"),
    ("湖北省", "武汉市", "洪山区"),
    ("", "上海市", "浦东新区"),
    ("", "北京市", "朝阳区"),
    ("山东省", "青岛市", "市南区"),
    ("河南省", "郑州市", "金水区"),
]
PLATE_PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁苏浙赣鄂桂甘晋陕吉闽贵粤川琼"
PLATE_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"
HAN_NUM = "零一二三四五六七八九"


def digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


def mobile(rng: random.Random) -> str:
    return f"{rng.choice(MOBILE_PREFIXES)}{digits(rng, 8)}"


def id_card(rng: random.Random) -> str:
    body = (
        f"{rng.choice(['320102', '110105', '440305', '510107', '330106'])}"
        f"{rng.randint(1950, 2005)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}{digits(rng, 3)}"
    )
    total = sum(int(c) * w for c, w in zip(body, ID_WEIGHTS, strict=True))
    return body + "10X98765432"[total % 11]


def luhn_card(rng: random.Random, length: int) -> str:
    body = "62" + digits(rng, length - 3)
    total = 0
    for i, ch in enumerate(reversed(body)):
        n = int(ch)
        if i % 2 == 0:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return body + str((10 - total % 10) % 10)


def name(rng: random.Random) -> str:
    surname = rng.choice(COMPOUND) if rng.random() < 0.2 else rng.choice(SURNAMES)
    return surname + "".join(rng.choice(GIVEN) for _ in range(rng.choice([1, 2])))


def address(rng: random.Random) -> str:
    prov, city, district = rng.choice(PROVINCES)
    head = prov + city + district if rng.random() < 0.7 else city + district
    street = rng.choice(STREETS) + rng.choice(KINDS) + f"{rng.randint(1, 999)}号"
    tail = rng.choice(
        [
            "",
            f"{rng.randint(1, 30)}栋{rng.randint(101, 2502)}室",
            f"{rng.randint(1, 9)}单元{rng.randint(101, 1802)}",
            f"{rng.randint(1, 20)}号楼{rng.randint(101, 999)}",
            f"{rng.choice(['幸福', '阳光', '锦绣'])}小区{rng.randint(1, 30)}栋",
        ]
    )
    return head + street + tail


def group_mobile(rng: random.Random, m: str) -> str:
    return rng.choice(
        [
            m,
            f"{m[:3]} {m[3:7]} {m[7:]}",
            f"{m[:3]}-{m[3:7]}-{m[7:]}",
            f"{m[:4]} {m[4:7]} {m[7:]}",
            f"+86 {m[:3]} {m[3:7]} {m[7:]}",
            f"0086 {m}",
            f"+86{m}",
            f"+86-{m}",
        ]
    )


def value_for(shape: str, rng: random.Random) -> tuple[str, list[str]]:
    """A sentence with one personal value of ``shape``, and the value(s) as they appear."""
    if shape == "phone":
        v = group_mobile(rng, mobile(rng))
        t = rng.choice(
            [
                "我的手机号是{v}，麻烦尽快发货",
                "电话{v}",
                "打我电话 {v} 谢谢",
                "有事联系{v}就行",
                "收到请回电{v}",
                "换个号码{v}吧",
            ]
        )
    elif shape == "landline":
        v = f"{rng.choice(AREA_CODES)}-{rng.randint(2, 8)}{digits(rng, 7)}"
        t = rng.choice(["座机{v}转分机", "公司电话{v}，白天有人", "打{v}找前台"])
    elif shape == "id_card":
        v = id_card(rng)
        if rng.random() < 0.3:
            v = f"{v[:6]} {v[6:14]} {v[14:]}"
        t = rng.choice(["身份证号{v}，清关要用", "我的身份证 {v}", "实名认证填的是{v}"])
    elif shape == "bank_card":
        v = luhn_card(rng, rng.choice([16, 19]))
        if rng.random() < 0.5:
            v = " ".join(v[i : i + 4] for i in range(0, len(v), 4))
        t = rng.choice(["退款打到卡号{v}", "银行卡 {v} 收款", "用这张卡{v}退吧"])
    elif shape == "email":
        user = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(4, 9)))
        v = f"{user}{rng.choice(['', '.', '_'])}{digits(rng, rng.randint(0, 4))}@"
        v += rng.choice(["qq.com", "163.com", "example.com", "foxmail.com", "126.com"])
        t = rng.choice(["发票寄到邮箱{v}", "邮箱：{v}", "把电子发票发{v}谢谢"])
    elif shape == "qq":
        v = str(rng.randint(10_000, 99_999_999_999))
        cue = rng.choice(["QQ", "qq", "QQ号", "qq号：", "扣扣", "QQ "])
        return rng.choice(["加我{c}{v}详聊", "{c}{v}，上面发图", "我的{c}{v}"]).format(
            c=cue, v=v
        ), [v]
    elif shape == "wechat":
        v = rng.choice("abcdefghijklmnopqrstuvwxyz") + "".join(
            rng.choice("abcdefghijklmnopqrstuvwxyz0123456789_-") for _ in range(rng.randint(5, 12))
        )
        cue = rng.choice(["微信", "微信号", "VX", "vx", "wx", "微信号：", "VX: "])
        return rng.choice(["加我{c}{v}详聊", "{c}{v}，发个图给我", "我{c}是{v}"]).format(
            c=cue, v=v
        ), [v]
    elif shape == "plate":
        tail = digits(rng, 5) if rng.random() < 0.6 else rng.choice("DF") + digits(rng, 5)
        v = rng.choice(PLATE_PROVINCES) + rng.choice(PLATE_LETTERS) + tail
        t = rng.choice(["车牌{v}，送到停车场", "我的车是{v}", "放在{v}的后备箱"])
    elif shape == "ip":
        if rng.random() < 0.8:
            v = ".".join(str(rng.randint(1, 254)) for _ in range(4))
        else:
            v = f"2001:db8:{rng.randint(1, 9999):x}::{rng.randint(1, 999):x}"
        t = rng.choice(["我登录的IP是{v}", "IP {v} 被封了", "后台显示{v}登录"])
    elif shape == "name":
        v = name(rng)
        t = rng.choice(
            [
                "我是{v}，昨天下的单",
                "我叫{v}",
                "收货人{v}不在家",
                "收件人：{v}",
                "联系人{v}",
                "寄件人是{v}",
                "name: {v}",
                "{v}先生的包裹",
                "{v}女士，您好",
            ]
        )
    elif shape == "address":
        v = address(rng)
        t = rng.choice(["地址改成{v}", "收货地址：{v}", "寄到{v}，谢谢", "我住在{v}", "{v}"])
    elif shape == "tracking":
        v = rng.choice([f"SF{digits(rng, 13)}", f"YT{digits(rng, 13)}", f"JD{digits(rng, 13)}"])
        t = rng.choice(["快递单号是{v}，查不到物流", "运单号{v}", "{v}这个单号一直没动"])
    elif shape == "order":
        v = digits(rng, 12)
        t = rng.choice(["订单号：{v}，什么时候发货", "单号{v}退款", "我的订单{v}还没到"])
    elif shape == "url":
        v = f"https://shop.example.com/u?uid={digits(rng, 8)}&nick=buyer{digits(rng, 3)}"
        t = rng.choice(["我的主页{v}", "看这个链接{v}", "{v} 这是我的账号"])
    elif shape == "long_number":  # fail closed: no cue, no known format
        v = digits(rng, rng.randint(7, 14))
        t = rng.choice(["会员号{v}", "编号{v}是我的", "这个号{v}你查一下"])
    elif shape == "combo":  # name + phone + address, no cue (the example)
        n, p, a = name(rng), mobile(rng), address(rng)
        return rng.choice(["{n} {p} {a}", "{n}，{p}，{a}", "{a} {n} {p}"]).format(n=n, p=p, a=a), [
            n,
            p,
            a,
        ]
    else:
        raise ValueError(shape)
    return t.format(v=v), [v]


FULL_WIDTH = {chr(c): chr(c + 0xFEE0) for c in range(0x21, 0x7F)}


def variant(kind: str, text: str, pii: list[str], rng: random.Random) -> tuple[str, list[str]]:
    """The same message as customers disguise it without meaning to."""
    if kind == "plain":
        return text, pii
    new_pii = []
    for v in pii:
        if kind == "fullwidth":
            w = "".join(FULL_WIDTH.get(ch, ch) for ch in v)
        elif kind == "zerowidth":
            w = "".join(
                ch + ("\u200b" if i % 3 == 2 and i < len(v) - 1 else "") for i, ch in enumerate(v)
            )
        elif kind == "hannum" and any(ch.isdigit() for ch in v):
            w = "".join(HAN_NUM[int(ch)] if ch.isdigit() else ch for ch in v)
        else:
            w = v
        text = text.replace(v, w, 1)
        new_pii.append(w)
    if kind == "bracket":
        text = rng.choice(["[{t}]", "【{t}】", "({t})", "「{t}」"]).format(t=text)
    elif kind == "glued":
        v = new_pii[0]
        text = text.replace(
            v,
            rng.choice(["VX", "vx", "QQ", "tel", "sfz", "手机", "电话", "No."])
            + v
            + rng.choice(["abc", "ok", "", "哈"]),
            1,
        )
    return text, new_pii


SHAPES = [
    "phone",
    "landline",
    "id_card",
    "bank_card",
    "email",
    "qq",
    "wechat",
    "plate",
    "ip",
    "name",
    "address",
    "tracking",
    "order",
    "url",
    "long_number",
    "combo",
]
VARIANTS = {
    "phone": ["glued", "bracket", "fullwidth", "zerowidth", "hannum"],
    "landline": ["bracket", "fullwidth", "zerowidth"],
    "id_card": ["glued", "bracket", "fullwidth", "zerowidth"],
    "bank_card": ["glued", "bracket", "fullwidth", "zerowidth"],
    "email": ["bracket", "fullwidth", "zerowidth"],
    "qq": ["bracket", "fullwidth", "zerowidth", "hannum"],
    "wechat": ["bracket", "fullwidth", "zerowidth"],
    "plate": ["bracket", "fullwidth", "zerowidth"],
    "ip": ["bracket", "fullwidth", "zerowidth"],
    "name": ["bracket", "zerowidth"],
    "address": ["bracket", "fullwidth", "zerowidth"],
    "tracking": ["bracket", "fullwidth", "zerowidth"],
    "order": ["glued", "bracket", "fullwidth", "zerowidth", "hannum"],
    "url": ["bracket"],
    "long_number": ["glued", "bracket", "fullwidth", "zerowidth", "hannum"],
    "combo": ["bracket", "zerowidth"],
}

CLEAN = [
    "这件衣服199元，能便宜到159吗？",
    "到手价¥1299.00，比昨天贵了100",
    "满300减40，两件一共526元",
    "RTX 4090和RTX 4080差多少钱",
    "型号A2894的手机壳有吗",
    "20000mAh的充电宝能带上飞机吗",
    "500ml*12瓶一箱，要两箱",
    "尺码38 39 40 41都有吗",
    "身高175体重70kg穿什么码",
    "屏幕是6.7英寸，分辨率2796x1290",
    "2024-01-15下的单，今天2024年1月20日了",
    "20240115发货的",
    "SKU100012345678还有货吗",
    "商品编号100038004353",
    "ISBN 9787111547426这本书有吗",
    "ISBN：978-7-111-54742-6",
    "版本v1.2.3更新后闪退",
    "iOS 17.4.1能用吗",
    "折扣85%是几折",
    "好评率99.5%",
    "[数字x]个小时了还没发货",
    "[订单x]怎么还没到",
    "[姓名x]您好，[地址x]可以送",
    "[金额x]元退到哪里了",
    "[ORDERID_10005629] 这个单",
    "USERID_10054831 是我的账号",
    "[日期x]之前能到吗",
    "[电话x]打不通",
    "[时间x]来取件",
    "[站点x]自提点在哪",
    "https://item.jd.com/100012345678.html 这个链接的商品",
    "i7-13700K配什么主板",
    "内存16GB硬盘1TB",
    "功率2200W的电水壶",
    "1080P的摄像头",
    "iPhone 15 Pro Max 256G",
    "小米14 Ultra现在多少钱",
    "空调1.5匹的适合15平米吗",
    "重量2.5kg，尺寸30x20x10cm",
    "一共3件，每件49.9",
    "买二送一",
    "第三方发货吗",
    "快递能发顺丰吗",
    "什么时候发货",
    "可以开发票吗",
    "昨天下的单",
    "今天能到吗",
    "颜色选黑色还是白色",
    "电池容量5000mAh",
    "保修期一年，3年延保多少钱",
    "M2芯片8核CPU",
    "1/2/3号都可以",
    "买了12345件",
    "编号A123-B456",
    "电压220V功率1500W",
    "5G手机",
    "第2代AirPods",
    "Type-C接口",
    "型号：SM-G9980",
    "货号：2023A1234567",
    "价格12999元的那款",
    "100元优惠券",
    "双11的价格",
    "还有3天到货",
    "运费10元",
    "我是买家，问一下尺码",
    "我是说这个颜色不行",
    "我是江苏的，几天能到",
    "能寄到新疆吗",
    "送到楼下就行",
    "这个路由器怎么样",
    "谢谢客服",
    "好的，明白了",
]


def main() -> None:
    rng = random.Random(SEED)
    out = []
    for shape in SHAPES:
        n = 24 if shape in ("phone", "name", "address", "combo") else 18
        for i in range(n):
            text, pii = value_for(shape, rng)
            kind = "plain" if i % 2 == 0 else VARIANTS[shape][(i // 2) % len(VARIANTS[shape])]
            text, pii = variant(kind, text, pii, rng)
            out.append({"text": text, "pii": pii, "shape": shape, "variant": kind})
    for text in CLEAN:
        out.append({"text": text, "pii": [], "shape": "clean", "variant": "plain"})
    for row in out:
        sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
