"""The demo city: 长沙市 (430100) with its districts, departments, people and parties.

The departments, users and memberships go in the way an administrator onboards a real
government — as one xlsx workbook through the org importer — so the demo exercises the
same path. Every demo password is ``demo``.
"""

from __future__ import annotations

import io
import json
from contextlib import suppress
from dataclasses import dataclass

from openpyxl import Workbook
from stdnum.cn import ric, uscc

from xietong.kernel.access import ROLE_NAMES, Actor, Role
from xietong.kernel.context import Context
from xietong.kernel.errors import Conflict
from xietong.kernel.org import service
from xietong.kernel.org.importer import import_org_xlsx
from xietong.kernel.org.parties import register_organization, register_person

DEMO_PASSWORD = "demo"

REGIONS: list[tuple[str, str, str, str | None]] = [
    ("430000", "湖南省", "province", None),
    ("430100", "长沙市", "city", "430000"),
    ("430102", "芙蓉区", "county", "430100"),
    ("430103", "天心区", "county", "430100"),
    ("430104", "岳麓区", "county", "430100"),
    ("430105", "开福区", "county", "430100"),
    ("430111", "雨花区", "county", "430100"),
    ("430112", "望城区", "county", "430100"),
    ("430121", "长沙县", "county", "430100"),
    ("430181", "浏阳市", "county", "430100"),
    ("430182", "宁乡市", "county", "430100"),
]


@dataclass(frozen=True)
class DemoDepartment:
    key: str  # username prefix
    code: str
    name: str
    short_name: str


DEPARTMENTS = [
    DemoDepartment("wjw", "430100-wjw", "长沙市卫生健康委员会", "市卫健委"),
    DemoDepartment("ga", "430100-ga", "长沙市公安局", "市公安局"),
    DemoDepartment("rs", "430100-rs", "长沙市人力资源和社会保障局", "市人社局"),
    DemoDepartment("yb", "430100-yb", "长沙市医疗保障局", "市医保局"),
    DemoDepartment("scjg", "430100-scjg", "长沙市市场监督管理局", "市市场监管局"),
    DemoDepartment("sw", "430100-sw", "国家税务总局长沙市税务局", "市税务局"),
    DemoDepartment("mz", "430100-mz", "长沙市民政局", "市民政局"),
    DemoDepartment("zj", "430100-zj", "长沙市住房和城乡建设局", "市住建局"),
    DemoDepartment("sthj", "430100-sthj", "长沙市生态环境局", "市生态环境局"),
    DemoDepartment("jt", "430100-jt", "长沙市交通运输局", "市交通运输局"),
    DemoDepartment("jy", "430100-jy", "长沙市教育局", "市教育局"),
    DemoDepartment("shw", "430100-swj", "长沙市商务局", "市商务局"),
    DemoDepartment("sj", "430100-sjzy", "长沙市数据资源局", "市数据资源局"),
    DemoDepartment("rx", "430100-12345", "长沙市12345政务服务便民热线中心", "12345热线中心"),
    DemoDepartment("dc", "430100-dcs", "长沙市人民政府督查室", "市政府督查室"),
]

# (username suffix, display name suffix, roles) for the staff of every service department.
STAFF = [
    ("clerk", "窗口受理员", [Role.WINDOW_CLERK, Role.REVIEWER]),
    ("approver", "审批负责人", [Role.APPROVER, Role.HEAD]),
    ("data", "数据管理员", [Role.DATA_STEWARD]),
]

# Accounts with a single special duty, in the department where that duty sits.
SPECIAL = [
    ("admin", "系统管理员", "sj", list(Role)),
    ("auditor", "审计员", "sj", [Role.AUDITOR]),
    ("dispatcher", "12345派单员", "rx", [Role.DISPATCHER]),
    ("supervisor", "督办员", "dc", [Role.SUPERVISOR, Role.HEAD]),
]

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = ["伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛"]


def _person_id(region: str, birth: str, sequence: int) -> str:
    body = f"{region}{birth}{sequence:03d}"
    return body + ric.calc_check_digit(body + "0")  # stdnum wants a placeholder digit


def _uscc(body_without_check: str) -> str:
    return body_without_check + uscc.calc_check_digit(body_without_check)


CITIZENS = [
    ("张晓明", _person_id("430102", "19900315", 123), "13800000001"),
    ("李红", _person_id("430103", "19920708", 246), "13800000002"),
    ("王建国", _person_id("430104", "19881201", 371), "13800000003"),
    ("刘芳", _person_id("430105", "19950520", 482), "13800000004"),
    ("陈思远", _person_id("430111", "20010909", 515), "13800000005"),
]

ENTERPRISES = [
    ("长沙湘味餐饮管理有限公司", _uscc("91430102MA4L1XY80"), "周湘", "430102"),
    ("湖南麓山科技有限公司", _uscc("91430104MA4P2ABC1"), "林麓", "430104"),
    ("长沙星城物流有限公司", _uscc("91430121MA4Q3DEF2"), "何星", "430121"),
]


def _accounts() -> list[tuple[str, str, str, list[Role]]]:
    """(username, display name, department key, roles) for every demo account."""
    accounts = [(u, n, d, r) for u, n, d, r in SPECIAL]
    for index, dept in enumerate(DEPARTMENTS):
        if dept.key in {"dc"}:
            continue
        for offset, (suffix, title, roles) in enumerate(STAFF):
            person = (
                SURNAMES[(index * 3 + offset) % len(SURNAMES)]
                + GIVEN[(index + offset * 5) % len(GIVEN)]
            )
            accounts.append((f"{dept.key}.{suffix}", f"{person}（{title}）", dept.key, roles))
    return accounts


def org_workbook() -> bytes:
    by_key = {d.key: d for d in DEPARTMENTS}
    book = Workbook()
    departments = book.active
    departments.title = "部门"
    departments.append(["部门编码", "部门名称", "简称", "行政区划代码", "上级部门编码"])
    for dept in DEPARTMENTS:
        departments.append([dept.code, dept.name, dept.short_name, "430100", None])
    users = book.create_sheet("用户")
    users.append(["用户名", "姓名", "初始密码", "手机号"])
    members = book.create_sheet("成员")
    members.append(["用户名", "部门编码", "角色"])
    for username, display, dept_key, roles in _accounts():
        users.append([username, display, DEMO_PASSWORD, None])
        for role in roles:
            members.append([username, by_key[dept_key].code, ROLE_NAMES[role][0]])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def load_city(ctx: Context, actor: Actor) -> dict[str, int]:
    """Create the demo city unless it is there already (safe to run twice)."""
    existing = {region.code for region in service.list_regions(ctx, actor)}
    created_regions = 0
    for code, name, level, parent in REGIONS:
        if code not in existing:
            service.create_region(ctx, actor, code, name, level, parent)
            created_regions += 1
    report = import_org_xlsx(ctx, actor, org_workbook())
    if report.errors:
        raise RuntimeError(f"demo workbook rejected: {report.errors[:3]}")
    for name, id_number, mobile in CITIZENS:
        register_person(ctx, actor, name=name, id_number=id_number, mobile=mobile)
    for name, code, representative, region in ENTERPRISES:
        with suppress(Conflict):  # loaded by an earlier run
            register_organization(
                ctx,
                actor,
                name=name,
                uscc=code,
                legal_representative=representative,
                region_code=region,
            )
    _write_accounts(ctx)
    return {"regions": created_regions, **report.created}


def _write_accounts(ctx: Context) -> None:
    """The login page lists these, grouped by department (only a demo data dir has it)."""
    by_key = {d.key: d for d in DEPARTMENTS}
    groups: dict[str, list[dict[str, str]]] = {}
    for username, _display, dept_key, roles in _accounts():
        names = "、".join(ROLE_NAMES[role][0] for role in roles)
        label = "全部角色" if len(roles) == len(Role) else names
        groups.setdefault(by_key[dept_key].short_name, []).append(
            {"username": username, "roles": f"（{label}）"}
        )
    rows = [{"department": name, "accounts": accounts} for name, accounts in groups.items()]
    path = ctx.settings.data_dir / "demo-accounts.json"
    path.write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")
