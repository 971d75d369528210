"""The matter catalogue as an xlsx workbook (sheet 事项), for import and export.

All or nothing: every row is checked (the same checks as the API) and every problem is
reported with its row and column; only a workbook without errors is written, in one
unit of work, with one audit leaf per matter plus one for the file's SHA-256. Rows are
matched by 事项编码, so re-importing an export changes nothing.

Lists are written one entry per line: 申请材料 ``编码|名称|必须/可选``, 办理结果
``name|标题|类型``; the form is its JSON Schema as JSON text.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from xietong.apps.services import catalogue
from xietong.apps.services.catalogue import MatterInput
from xietong.apps.services.models import Matter
from xietong.kernel.access import Actor, authorize
from xietong.kernel.context import Context
from xietong.kernel.errors import InvalidInput, XietongError
from xietong.kernel.uow import UnitOfWork
from xietong.kernel.workbook import (
    MAX_BYTES,
    Column,
    RowError,
    SheetSpec,
    open_workbook,
    read_sheet,
    write_workbook,
)

MAX_XLSX_BYTES = MAX_BYTES
MAX_ROWS = 5000
SHEET = "事项"
# (key, header) in the order written; every column is required in the header row
COLUMNS = [
    ("code", "事项编码"),
    ("name", "事项名称"),
    ("department_code", "实施部门编码"),
    ("matter_type", "事项类型"),
    ("legal_basis", "设定依据"),
    ("materials", "申请材料"),
    ("form_schema", "申请表单(JSON Schema)"),
    ("promised_days", "承诺时限(工作日)"),
    ("statutory_days", "法定时限(工作日)"),
    ("fee", "收费(元)"),
    ("process_key", "办理流程"),
    ("outputs", "办理结果"),
    ("active", "状态"),
    ("external_system_code", "外部系统编码"),
]
ZH = dict(COLUMNS)
MATTERS = SheetSpec("matters", SHEET, tuple(Column(key, zh, True) for key, zh in COLUMNS))


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    codes: list[str] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    sha256: str = ""
    dry_run: bool = False


def _lines(text: str) -> list[list[str]]:
    return [[p.strip() for p in line.split("|")] for line in text.splitlines() if line.strip()]


def _row_input(values: dict[str, str], bad: Any) -> MatterInput | None:
    materials = []
    for parts in _lines(values["materials"]):
        if len(parts) < 2:
            bad("materials", "每行一项：编码|名称|必须或可选", "One per line: code|name|required")
            return None
        materials.append(
            {"code": parts[0], "name": parts[1], "required": (parts[2:] or ["必须"])[0] != "可选"}
        )
    outputs = []
    for parts in _lines(values["outputs"]):
        if len(parts) < 2:
            bad("outputs", "每行一项：name|标题|类型", "One per line: name|title|type")
            return None
        outputs.append({"name": parts[0], "title": parts[1], "type": (parts[2:] or ["string"])[0]})
    try:
        schema = json.loads(values["form_schema"] or "{}")
    except ValueError:
        bad("form_schema", "表单须为 JSON", "The form must be JSON")
        return None
    days = {}
    for key in ("promised_days", "statutory_days"):
        try:
            days[key] = int(values[key])
        except ValueError:
            bad(key, "时限须为整数个工作日", "A whole number of working days")
            return None
    return MatterInput(
        code=values["code"],
        name=values["name"],
        department_code=values["department_code"],
        matter_type=values["matter_type"],
        legal_basis=values["legal_basis"],
        materials=materials,
        form_schema=schema,
        promised_days=days["promised_days"],
        statutory_days=days["statutory_days"],
        fee=values["fee"] or "0",
        process_key=values["process_key"],
        outputs=outputs,
        active=values["active"] not in ("停用", "inactive", "0", "否"),
        external_system_code=values["external_system_code"],
    )


def _read(data: bytes) -> list[tuple[int, dict[str, str]]]:
    sheet = open_workbook(data, lambda book: read_sheet(book, MATTERS, max_rows=MAX_ROWS))
    if sheet is None:
        raise InvalidInput(
            "工作簿中没有“事项”工作表", "The workbook has no sheet 事项", code="invalid_workbook"
        )
    if sheet.missing:
        missing = [column.zh for column in sheet.missing]
        raise InvalidInput(
            f"缺少列：{'、'.join(missing)}",
            f"Missing columns: {', '.join(missing)}",
            code="invalid_workbook",
        )
    return [(row.number, row.values) for row in sheet.rows]


def import_matters_xlsx(
    ctx: Context, actor: Actor, data: bytes, *, dry_run: bool = False
) -> ImportReport:
    authorize(actor, catalogue.MANAGE)
    report = ImportReport(sha256=hashlib.sha256(data).hexdigest(), dry_run=dry_run)
    rows = _read(data)
    cleaned: list[tuple[int, MatterInput]] = []
    seen: dict[str, int] = {}
    for number, values in rows:

        def bad(column: str, zh: str, en: str, number: int = number) -> None:
            report.errors.append(RowError(SHEET, number, ZH.get(column, column), zh, en))

        matter = _row_input(values, bad)
        if matter is None:
            continue
        matter, problems = catalogue.check_matter(matter)
        for problem in problems:
            bad(problem.field, problem.message_zh, problem.message_en)
        if matter.code in seen:
            bad(
                "code",
                f"与第 {seen[matter.code]} 行编码重复",
                f"Same code as row {seen[matter.code]}",
            )
        seen.setdefault(matter.code, number)
        if not problems:
            cleaned.append((number, matter))
    if report.errors:
        return report
    with UnitOfWork(ctx, actor) as uow:
        for number, matter in cleaned:
            try:
                _view, outcome = catalogue.save_matter(uow, matter)
            except XietongError as error:
                report.errors.append(
                    RowError(SHEET, number, ZH["code"], error.message_zh, error.message_en)
                )
                continue
            setattr(report, outcome, getattr(report, outcome) + 1)
            report.codes.append(matter.code)
        if report.errors or dry_run or not (report.created or report.updated):
            return report  # the unit of work rolls back: all or nothing
        uow.record(
            "services.matter.import",
            f"services.import:{report.sha256[:16]}",
            {"sha256": report.sha256, "created": report.created, "updated": report.updated},
        )
        uow.commit()
    return report


def export_matters_xlsx(ctx: Context, actor: Actor) -> bytes:
    authorize(actor, catalogue.READ)
    with ctx.db.read() as session:
        codes = list(session.scalars(select(Matter.code).order_by(Matter.code)))
    rows: list[list[Any]] = [MATTERS.header()]
    for view in (catalogue.get_matter(ctx, actor, code) for code in codes):
        rows.append(
            [
                view.code,
                view.name,
                view.department_code,
                view.matter_type_zh,
                view.legal_basis,
                "\n".join(
                    f"{m['code']}|{m['name']}|{'必须' if m['required'] else '可选'}"
                    for m in view.materials
                ),
                json.dumps(view.form_schema, ensure_ascii=False, sort_keys=True),
                view.promised_days,
                view.statutory_days,
                view.fee,
                view.process_key,
                "\n".join(f"{o['name']}|{o['title']}|{o['type']}" for o in view.outputs),
                "在用" if view.active else "停用",
                view.external_system_code or "",
            ]
        )
    return write_workbook([(SHEET, rows)])
