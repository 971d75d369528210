"""Masking rules: what each keeps, what it hides, and which item names call for which."""

from __future__ import annotations

import pytest

from xietong.apps.exchange.masking import mask_rows, mask_value, rule_for


@pytest.mark.parametrize(
    ("rule", "value", "masked"),
    [
        ("id_number", "430102199003071234", "430102********1234"),
        ("id_number", "43010219900307123X", "430102********123X"),
        ("mobile", "13812345678", "138****5678"),
        ("mobile", "+8613812345678", "+86138****5678"),
        ("name", "张三", "张*"),
        ("name", "欧阳娜娜", "欧***"),
        ("name", "李", "李"),
        ("address", "湖南省长沙市芙蓉区五一大道389号", "湖南省长沙市芙蓉区********"),
        ("address", "长沙市岳麓区麓山南路2号", "长沙市岳麓区******"),
        ("bank_card", "6222021234567890123", "622202*********0123"),
        ("bank_card", "6222 0212 3456 7890 123", "622202*********0123"),
        ("id_number", "123", "1**"),
    ],
)
def test_rules(rule: str, value: str, masked: str) -> None:
    assert mask_value(rule, value) == masked
    assert len(mask_value(rule, value)) == len(masked)


def test_none_stays_none_and_numbers_are_masked_as_text() -> None:
    assert mask_value("mobile", None) is None
    assert mask_value("mobile", 13812345678) == "138****5678"


@pytest.mark.parametrize(
    ("item", "rule"),
    [
        ("公民身份号码", "id_number"),
        ("母亲公民身份号码", "id_number"),
        ("买受人证件号码", "id_number"),
        ("手机号码", "mobile"),
        ("联系电话", "mobile"),
        ("姓名", "name"),
        ("新生儿姓名", "name"),
        ("户籍地址", "address"),
        ("房屋坐落", "address"),
        ("社会保障卡卡号", "bank_card"),
        ("银行卡号", "bank_card"),
        ("出生日期", None),
        ("企业名称", None),
    ],
)
def test_rule_for_item_names(item: str, rule: str | None) -> None:
    assert rule_for(item) == rule


def test_mask_rows_leaves_the_input_alone() -> None:
    rows = [{"姓名": "王小明", "出生日期": "1990-01-01"}]
    assert mask_rows(rows, {"姓名": "name"}) == [{"姓名": "王**", "出生日期": "1990-01-01"}]
    assert rows[0]["姓名"] == "王小明"
