"""The organisation workbook's layout: three sheets, their columns, reading and writing.

Administrators keep their organisation in a spreadsheet; this module owns how that
spreadsheet looks (sheet and column names, Chinese first, English accepted) and turns
it into plain rows of strings, so the importer only deals with values and row numbers.
"""

from __future__ import annotations

from xietong.kernel import workbook as xlsx
from xietong.kernel.access import ROLE_NAMES
from xietong.kernel.errors import InvalidInput
from xietong.kernel.workbook import (
    MAX_BYTES,
    MAX_ROWS,
    Column,
    Row,
    Sheet,
    SheetSpec,
    cell_text,
    read_sheets,
)

__all__ = [
    "DEPARTMENTS",
    "MAX_BYTES",
    "MAX_ROWS",
    "MEMBERSHIPS",
    "SHEETS",
    "USERS",
    "Column",
    "Row",
    "Sheet",
    "SheetSpec",
    "cell_text",
    "org_template_xlsx",
    "read_org_workbook",
    "write_workbook",
]

DEPARTMENTS = SheetSpec(
    "departments",
    "部门",
    (
        Column("code", "部门编码", True),
        Column("name", "部门名称", True),
        Column("short_name", "简称"),
        Column("region_code", "行政区划代码", True),
        Column("parent_code", "上级部门编码"),
    ),
)
USERS = SheetSpec(
    "users",
    "用户",
    (
        Column("username", "用户名", True),
        Column("display_name", "姓名", True),
        Column("password", "初始密码"),
        Column("mobile", "手机号"),
    ),
)
MEMBERSHIPS = SheetSpec(
    "memberships",
    "成员",
    (
        Column("username", "用户名", True),
        Column("department_code", "部门编码", True),
        Column("role", "角色", True),
    ),
)
SHEETS = (DEPARTMENTS, USERS, MEMBERSHIPS)


def read_org_workbook(data: bytes) -> dict[str, Sheet]:
    """The sheets present in the workbook, by spec key; raises ``invalid_xlsx``."""
    sheets = read_sheets(data, SHEETS)
    found = {key: sheet for key, sheet in sheets.items() if sheet is not None}
    if not found:
        names = "、".join(spec.zh for spec in SHEETS)
        raise InvalidInput(
            f"工作簿中没有可导入的工作表（{names}）",
            "The workbook has none of the sheets 部门, 用户, 成员",
            code="invalid_org_workbook",
        )
    return found


def write_workbook(rows: dict[str, list[list[str]]]) -> bytes:
    """A workbook with the three sheets, Chinese headers, and ``rows`` by spec key."""
    guide: list[list[str]] = [["角色（成员表“角色”列可填中文名或代码）", "代码"]]
    guide += [[zh, role.value] for role, (zh, _en) in ROLE_NAMES.items()]
    sheets = [(spec.zh, [spec.header(), *rows.get(spec.key, [])]) for spec in SHEETS]
    return xlsx.write_workbook([*sheets, ("说明", guide)])


def org_template_xlsx() -> bytes:
    """An empty organisation workbook for administrators to fill in."""
    return write_workbook({})
