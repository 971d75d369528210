"""The demo city's resource catalogue: a few realistic entries, published.

They go in the way a data office's catalogue does — as one xlsx workbook through the
importer, with ``publish`` — so the demo exercises that path. Codes are fixed, so a
second ``xietong demo`` finds every entry unchanged and writes nothing.
"""

from __future__ import annotations

import io
from typing import Any

from openpyxl import Workbook

from xietong.apps.exchange.importer import import_catalogue_xlsx
from xietong.apps.exchange.workbook import ITEMS, RESOURCES
from xietong.kernel.access import operator_actor
from xietong.kernel.context import Context

S, I, X, D, T = "字符型", "整型", "数值型", "日期型", "日期时间型"  # noqa: E741 (data types)
PUB, INT, SEN = "公开", "内部", "敏感"
POPULATION = ("1 基础信息资源", "01 人口基础信息")
LEGAL_PERSON = ("1 基础信息资源", "02 法人单位基础信息")
CREDIT = ("1 基础信息资源", "04 社会信用基础信息")
SOCIAL = ("2 主题信息资源", "03 社会保障")
DEPARTMENT = ("3 部门信息资源", "01 市直部门")

# fmt: off
# (类, 项, 目, name, code, provider, summary, format, share type, conditions or basis,
#  methods, open type, open conditions, cycle, related codes, items)
ENTRIES: list[tuple[Any, ...]] = [
    (*POPULATION, "001 户籍人口", "户籍人口基本信息", "101001/000001", "430100-ga",
     "长沙市户籍人口的身份与户籍登记信息，供各部门核验身份、办理户籍关联事项。",
     "数据库", "无条件共享", "", "接口", "不予开放", "", "实时", "",
     [("姓名", S, SEN), ("公民身份号码", S, SEN), ("性别", S, INT), ("民族", S, INT),
      ("出生日期", D, SEN), ("户籍地址", S, SEN), ("户籍地行政区划代码", S, INT),
      ("登记日期", D, INT)]),
    (*POPULATION, "002 出生登记", "出生医学证明信息", "101002/000001", "430100-wjw",
     "助产机构签发的出生医学证明信息，用于出生一件事联办（户口登记、医保参保、社保卡申领）。",
     "数据库", "有条件共享", "限于出生一件事联办事项使用，须经新生儿监护人授权。", "接口",
     "不予开放", "", "实时", "101001/000001",
     [("出生医学证明编号", S, INT), ("新生儿姓名", S, SEN), ("新生儿性别", S, INT),
      ("出生时间", T, SEN), ("出生地点", S, INT), ("母亲姓名", S, SEN),
      ("母亲公民身份号码", S, SEN), ("父亲姓名", S, SEN), ("父亲公民身份号码", S, SEN),
      ("签发机构", S, INT), ("签发日期", D, INT)]),
    (*POPULATION, "003 婚姻登记", "婚姻登记信息", "101003/000001", "430100-mz",
     "结婚、离婚登记及补领婚姻登记证信息。",
     "数据库", "有条件共享", "用于住房、公积金、户籍等需核验婚姻状况的事项，按事项申请。",
     "接口", "不予开放", "", "实时", "101001/000001",
     [("登记类型", S, INT), ("男方姓名", S, SEN), ("男方公民身份号码", S, SEN),
      ("女方姓名", S, SEN), ("女方公民身份号码", S, SEN), ("登记日期", D, INT),
      ("登记机关", S, PUB)]),
    (*LEGAL_PERSON, "001 企业登记", "企业登记信息", "102001/000001", "430100-scjg",
     "在本市登记的企业及个体工商户的设立、变更、注销登记信息。",
     "数据库", "无条件共享", "", "接口、文件", "无条件开放", "", "每日", "",
     [("统一社会信用代码", S, PUB), ("企业名称", S, PUB), ("法定代表人", S, PUB),
      ("注册资本", X, PUB), ("成立日期", D, PUB), ("登记状态", S, PUB), ("住所", S, PUB),
      ("经营范围", S, PUB)]),
    (*CREDIT, "001 纳税信用", "纳税信用等级信息", "104001/000001", "430100-sw",
     "企业纳税人年度纳税信用评价结果。",
     "电子表格/xlsx", "无条件共享", "", "接口、文件", "有条件开放", "仅向社会公开 A 级纳税人名单。",
     "每年", "102001/000001",
     [("纳税人识别号", S, PUB), ("纳税人名称", S, PUB), ("评价年度", I, PUB),
      ("信用等级", S, INT)]),
    (*SOCIAL, "001 社会保障卡", "社会保障卡信息", "203001/000001", "430100-rs",
     "社会保障卡的发卡、挂失、补换卡与状态信息。",
     "数据库", "无条件共享", "", "接口", "不予开放", "", "每日", "101001/000001",
     [("社会保障号码", S, SEN), ("姓名", S, SEN), ("社会保障卡卡号", S, SEN),
      ("发卡日期", D, INT), ("卡状态", S, INT), ("服务银行", S, INT)]),
    (*SOCIAL, "002 医疗保障", "基本医疗保险参保信息", "203002/000001", "430100-yb",
     "职工与城乡居民基本医疗保险的参保登记与缴费状态。",
     "数据库", "有条件共享", "用于医保关联事项办理与待遇核验，须说明事项与法定依据。", "接口",
     "不予开放", "", "每月", "101001/000001",
     [("个人编号", S, INT), ("姓名", S, SEN), ("公民身份号码", S, SEN), ("险种类型", S, INT),
      ("参保状态", S, INT), ("参保日期", D, INT), ("参保地行政区划代码", S, INT)]),
    (*DEPARTMENT, "008 市住建局", "商品房网签备案信息", "301008/000001", "430100-zj",
     "新建商品房买卖合同网签备案信息。",
     "电子表格/xlsx", "有条件共享", "用于不动产登记、公积金贷款与税费征收，按月申请。",
     "文件、库表", "不予开放", "", "每周", "",
     [("合同备案号", S, INT), ("项目名称", S, PUB), ("房屋坐落", S, INT),
      ("建筑面积", X, INT), ("成交价格", X, SEN), ("买受人姓名", S, SEN),
      ("买受人证件号码", S, SEN), ("备案日期", D, INT)]),
    (*DEPARTMENT, "006 市税务局", "纳税人涉税明细信息", "301006/000001", "430100-sw",
     "纳税人申报、缴纳税款的明细信息。",
     "数据库", "不予共享",
     "《中华人民共和国税收征收管理法》第八条：税务机关应当依法为纳税人、扣缴义务人的情况保密。",
     "", "不予开放", "", "每日", "104001/000001",
     [("纳税人识别号", S, INT), ("税种", S, INT), ("应纳税额", X, SEN), ("申报日期", D, INT)]),
]
# fmt: on


def demo_workbook() -> bytes:
    book = Workbook()
    resources = book.active
    resources.title = RESOURCES.zh
    resources.append([column.zh for column in RESOURCES.columns])
    items = book.create_sheet(ITEMS.zh)
    items.append([column.zh for column in ITEMS.columns])
    for entry in ENTRIES:
        cls, sub, group, name, code, provider, summary, fmt = entry[:8]
        share, condition, methods, open_type, open_conditions, cycle, related = entry[8:15]
        conditions = condition if share == "有条件共享" else ""
        basis = condition if share == "不予共享" else ""
        row = [cls, sub, group, "", name, code, provider, summary, fmt, share, conditions]
        row += [basis, methods, open_type, open_conditions, cycle, None, related]
        resources.append(row)
        for item_name, data_type, level in entry[15]:
            items.append([code, item_name, data_type, level, ""])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def load_demo_catalogue(ctx: Context) -> None:
    """Import and publish the demo catalogue (safe to run twice)."""
    report = import_catalogue_xlsx(ctx, operator_actor("demo"), demo_workbook(), publish=True)
    if report.errors:
        raise RuntimeError(f"demo catalogue rejected: {report.errors[:3]}")
