"""The demo city's resource catalogue: 18 realistic entries across its departments, published.

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
EDUCATION = ("2 主题信息资源", "05 教育科技")
ENVIRONMENT = ("2 主题信息资源", "06 生态环境")
TRANSPORT = ("2 主题信息资源", "07 交通运输")

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
    (*POPULATION, "004 死亡登记", "死亡医学证明信息", "101004/000001", "430100-wjw",
     "医疗卫生机构签发的死亡医学证明（推断）书信息，用于身后一件事联办。",
     "数据库", "有条件共享", "用于身后一件事联办（户籍注销、社保停发、医保注销），按事项申请。",
     "接口", "不予开放", "", "实时", "101001/000001",
     [("死亡医学证明编号", S, INT), ("死者姓名", S, SEN), ("死者公民身份号码", S, SEN),
      ("死亡时间", T, SEN), ("死亡原因", S, SEN), ("签发机构", S, INT), ("签发日期", D, INT)]),
    (*LEGAL_PERSON, "002 个体工商户", "个体工商户登记信息", "102002/000001", "430100-scjg",
     "在本市登记的个体工商户设立、变更、注销信息。",
     "数据库", "无条件共享", "", "接口、文件", "无条件开放", "", "每日", "102001/000001",
     [("统一社会信用代码", S, PUB), ("个体工商户名称", S, PUB), ("经营者", S, PUB),
      ("经营场所", S, PUB), ("经营范围", S, PUB), ("登记日期", D, PUB)]),
    (*SOCIAL, "003 社会保险", "社会保险参保缴费信息", "203003/000001", "430100-rs",
     "企业职工基本养老、失业、工伤保险的参保与缴费信息。",
     "数据库", "有条件共享", "用于人才引进、积分入学、住房保障等需核验社保缴费的事项。", "接口",
     "不予开放", "", "每月", "101001/000001",
     [("姓名", S, SEN), ("公民身份号码", S, SEN), ("险种", S, INT), ("参保单位", S, INT),
      ("缴费起始年月", S, INT), ("累计缴费月数", I, INT), ("参保状态", S, INT)]),
    (*SOCIAL, "004 社会救助", "最低生活保障对象信息", "203004/000001", "430100-mz",
     "城乡最低生活保障对象及其家庭人口、保障金额信息。",
     "数据库", "有条件共享", "用于教育资助、医疗救助、住房保障等救助政策的对象核验。", "接口",
     "不予开放", "", "每月", "101001/000001",
     [("户主姓名", S, SEN), ("户主公民身份号码", S, SEN), ("家庭人口数", I, INT),
      ("保障类别", S, INT), ("月保障金额", X, SEN), ("居住地址", S, SEN), ("批准日期", D, INT)]),
    (*EDUCATION, "001 学籍", "中小学学生学籍信息", "205001/000001", "430100-jy",
     "本市中小学在校学生的学籍登记与变动信息。",
     "数据库", "有条件共享", "用于教育资助、控辍保学与入学资格核验，须说明事项。", "接口",
     "不予开放", "", "每半年", "101001/000001",
     [("学籍号", S, INT), ("学生姓名", S, SEN), ("公民身份号码", S, SEN), ("学校名称", S, PUB),
      ("年级", S, INT), ("入学日期", D, INT), ("监护人联系电话", S, SEN)]),
    (*ENVIRONMENT, "001 排污许可", "排污许可证信息", "206001/000001", "430100-sthj",
     "排污单位的排污许可证核发、变更与注销信息。",
     "数据库", "无条件共享", "", "接口、文件", "无条件开放", "", "每周", "102001/000001",
     [("许可证编号", S, PUB), ("单位名称", S, PUB), ("统一社会信用代码", S, PUB),
      ("行业类别", S, PUB), ("有效期限", S, PUB), ("发证日期", D, PUB)]),
    (*TRANSPORT, "001 道路运输", "道路运输经营许可信息", "207001/000001", "430100-jt",
     "道路旅客运输、货物运输经营许可信息。",
     "数据库", "无条件共享", "", "接口", "有条件开放", "仅公开许可证号、经营者名称与经营范围。",
     "每日", "102001/000001",
     [("许可证号", S, PUB), ("经营者名称", S, PUB), ("统一社会信用代码", S, PUB),
      ("经营范围", S, PUB), ("营运车辆数", I, INT), ("有效期至", D, PUB)]),
    (*DEPARTMENT, "012 市商务局", "外商投资企业信息报告", "301012/000001", "430100-swj",
     "外商投资企业初始、变更与年度投资信息报告。",
     "电子表格/xlsx", "有条件共享", "用于外资统计与招商引资政策兑现，须说明用途。", "文件",
     "不予开放", "", "每季度", "102001/000001",
     [("企业名称", S, PUB), ("统一社会信用代码", S, PUB), ("投资者国别", S, INT),
      ("投资总额", X, INT), ("实缴资本", X, INT), ("报告年度", I, INT)]),
    (*DEPARTMENT, "013 12345热线", "12345热线工单信息", "301013/000001", "430100-12345",
     "市民通过 12345 热线反映的诉求工单及其办理结果。",
     "数据库", "有条件共享", "用于承办部门诉求办理与考核，按承办部门授权。", "接口",
     "不予开放", "", "实时", "",
     [("工单编号", S, INT), ("诉求人姓名", S, SEN), ("联系电话", S, SEN), ("诉求内容", S, SEN),
      ("诉求地址", S, SEN), ("承办部门", S, INT), ("办结日期", D, INT)]),
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
