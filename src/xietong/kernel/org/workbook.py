"""The organisation workbook's layout: three sheets, their columns, reading and writing.

Administrators keep their organisation in a spreadsheet; this module owns how that
spreadsheet looks (sheet and column names, Chinese first, English accepted) and turns
it into plain rows of strings, so the importer only deals with values and row numbers.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import openpyxl

from xietong.kernel.access import ROLE_NAMES
from xietong.kernel.errors import InvalidInput

MAX_BYTES = 20 * 1024 * 1024
MAX_ROWS = 50_000


@dataclass(frozen=True)
class Column:
    key: str  # the English name, also accepted as a header
    zh: str
    required: bool = False


@dataclass(frozen=True)
class SheetSpec:
    key: str
    zh: str
    columns: tuple[Column, ...]

    def find(self, header: str) -> Column | None:
        for column in self.columns:
            if header in (column.zh, column.key):
                return column
        return None


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


@dataclass(frozen=True)
class Row:
    number: int  # as Excel shows it: the header is row 1
    values: dict[str, str]  # column key -> cleaned text ("" when blank)


@dataclass
class Sheet:
    spec: SheetSpec
    headers: dict[str, str]  # column key -> header text as written in the file
    rows: list[Row]
    missing: list[Column]  # required columns without a header


def cell_text(value: Any) -> str:
    """Cells typed as numbers (codes, phone numbers, passwords) read back as digits."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value).strip()


def _invalid(message_zh: str, message_en: str, code: str = "invalid_xlsx") -> InvalidInput:
    return InvalidInput(message_zh, message_en, code=code)


def read_org_workbook(data: bytes) -> dict[str, Sheet]:
    """The sheets present in the workbook, by spec key; raises ``invalid_xlsx``."""
    if len(data) > MAX_BYTES:
        raise _invalid("文件过大（最大 20 MB）", "File too large (20 MB at most)", "file_too_large")
    try:
        # Parsing is lazy in read-only mode, so every malformed-file failure surfaces
        # inside this block, whichever part of openpyxl or the XML parser raises it.
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        try:
            sheets = {spec.key: _read_sheet(book, spec) for spec in SHEETS}
        finally:
            book.close()
    except InvalidInput:
        raise
    except Exception as bad:
        raise _invalid(
            "文件不是有效的 xlsx 工作簿", "The file is not a valid xlsx workbook"
        ) from bad
    found = {key: sheet for key, sheet in sheets.items() if sheet is not None}
    if not found:
        names = "、".join(spec.zh for spec in SHEETS)
        raise _invalid(
            f"工作簿中没有可导入的工作表（{names}）",
            "The workbook has none of the sheets 部门, 用户, 成员",
            "invalid_org_workbook",
        )
    return found


def _read_sheet(book: Any, spec: SheetSpec) -> Sheet | None:
    name = next((n for n in book.sheetnames if n.strip() in (spec.zh, spec.key)), None)
    if name is None:
        return None
    sheet = book[name]
    sheet.reset_dimensions()  # some writers store wrong dimensions; read what is there
    rows = sheet.iter_rows(min_row=1, values_only=True)
    header = [cell_text(value) for value in next(rows, ())]
    positions: dict[str, int] = {}
    headers: dict[str, str] = {}
    for index, text in enumerate(header):
        column = spec.find(text)
        if column is not None and column.key not in positions:
            positions[column.key] = index
            headers[column.key] = text
    missing = [column for column in spec.columns if column.required and column.key not in positions]
    parsed: list[Row] = []
    for number, values in enumerate(rows, start=2):
        if number > MAX_ROWS + 1:
            raise _invalid(
                f"工作表“{spec.zh}”超过 {MAX_ROWS} 行",
                f"Sheet {spec.zh} has more than {MAX_ROWS} rows",
                "too_many_rows",
            )
        cells = {
            key: cell_text(values[index]) if index < len(values) else ""
            for key, index in positions.items()
        }
        if any(cells.values()):
            parsed.append(Row(number, cells))
    return Sheet(spec, headers, parsed, missing)


def write_workbook(rows: dict[str, list[list[str]]]) -> bytes:
    """A workbook with the three sheets, Chinese headers, and ``rows`` by spec key."""
    book = openpyxl.Workbook(write_only=True)
    for spec in SHEETS:
        sheet = book.create_sheet(spec.zh)
        sheet.append([column.zh for column in spec.columns])
        for row in rows.get(spec.key, []):
            sheet.append(row)
    guide = book.create_sheet("说明")
    guide.append(["角色（成员表“角色”列可填中文名或代码）", "代码"])
    for role, (zh, _en) in ROLE_NAMES.items():
        guide.append([zh, role.value])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def org_template_xlsx() -> bytes:
    """An empty organisation workbook for administrators to fill in."""
    return write_workbook({})
