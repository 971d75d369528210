"""Realistic but fake personal records for the demo provider table, tests and the bench.

Deterministic for a seed. 身份证号 carry valid GB 11643 check digits and real 长沙
district codes (so they pass ``stdnum.cn.ric``), 手机号 real mobile prefixes, 银行卡号
valid Luhn digits — yet every person is invented.
"""

from __future__ import annotations

import random
from datetime import date, timedelta
from typing import Any

SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐"
    "许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程苏魏吕丁任沈姚卢"
)
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华建国志红文斌宇浩然欣怡子涵梓轩一诺"
DISTRICTS = {
    "430102": "芙蓉区",
    "430103": "天心区",
    "430104": "岳麓区",
    "430105": "开福区",
    "430111": "雨花区",
    "430112": "望城区",
}
STREETS = [
    "五一大道",
    "解放西路",
    "芙蓉中路",
    "韶山北路",
    "麓山南路",
    "湘江中路",
    "人民东路",
    "劳动西路",
]
MOBILE_PREFIXES = ["138", "139", "150", "151", "158", "186", "187", "173", "199"]
BANK_BINS = ["622202", "621700", "622848", "621661", "622588"]
ETHNIC = ["汉族"] * 9 + ["土家族", "苗族", "侗族", "瑶族"]
_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
_CHECK = "10X98765432"


def id_check_digit(first17: str) -> str:
    return _CHECK[sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True)) % 11]


def luhn_digit(partial: str) -> str:
    total = 0
    for position, char in enumerate(reversed(partial)):
        digit = int(char)
        if position % 2 == 0:
            digit *= 2
            digit -= 9 if digit > 9 else 0
        total += digit
    return str((10 - total % 10) % 10)


def person(rng: random.Random, number: int) -> dict[str, Any]:
    district = rng.choice(list(DISTRICTS))
    born = date(1950, 1, 1) + timedelta(days=rng.randrange(365 * 55))
    sex = rng.choice(["男", "女"])
    sequence = rng.randrange(100, 999)
    sequence += (sequence % 2 == 0) if sex == "男" else (sequence % 2 == 1)
    first17 = f"{district}{born:%Y%m%d}{sequence % 1000:03d}"
    card = rng.choice(BANK_BINS) + "".join(str(rng.randrange(10)) for _ in range(12))
    street = rng.choice(STREETS)
    name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice([1, 2])))
    return {
        "id": number,
        "姓名": name,
        "公民身份号码": first17 + id_check_digit(first17),
        "性别": sex,
        "民族": rng.choice(ETHNIC),
        "出生日期": born.isoformat(),
        "户籍地址": f"湖南省长沙市{DISTRICTS[district]}{street}{rng.randrange(1, 999)}号",
        "户籍地行政区划代码": district,
        "手机号码": rng.choice(MOBILE_PREFIXES) + f"{rng.randrange(10**8):08d}",
        "银行卡号": card + luhn_digit(card),
        "登记日期": (born + timedelta(days=rng.randrange(1, 60))).isoformat(),
    }


def people(count: int, seed: int = 430100) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [person(rng, number) for number in range(1, count + 1)]
