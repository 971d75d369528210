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
import io
import json
from dataclasses import dataclass, field
from typing import Any

import openpyxl
from openpyxl import Workbook
from sqlalchemy import select

from xietong.apps.services import catalogue
from xietong.apps.services.catalogue import MatterInput
from xietong.apps.services.models import Matter
from xietong.kernel.access import Actor, authorize
from xietong.kernel.context import Context
from xietong.kernel.errors import InvalidInput, XietongError
from xietong.kernel.uow import UnitOfWork

MAX_XLSX_BYTES = 20 * 1024 * 1024
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
]
HEADER = {zh: key for key, zh in COLUMNS}
ZH = dict(COLUMNS)


@dataclass(frozen=True)
class RowError:
    sheet: str
    row: int  # 1-based as Excel shows it; the header is row 1
    column: str
    message_zh: str
    message_en: str


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    codes: list[str] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    sha256: str = ""
    dry_run: bool = False


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


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
    )


def _read(data: bytes) -> list[tuple[int, dict[str, str]]]:
    if len(data) > MAX_XLSX_BYTES:
        raise InvalidInput(
            "文件过大（最大 20 MB）", "File too large (20 MB at most)", code="file_too_large"
        )
    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        try:
            if SHEET not in book.sheetnames:
                raise InvalidInput(
                    "工作簿中没有“事项”工作表",
                    "The workbook has no sheet 事项",
                    code="invalid_workbook",
                )
            sheet = book[SHEET]
            sheet.reset_dimensions()
            rows = sheet.iter_rows(values_only=True)
            header = [_text(v) for v in next(rows, ())]
            positions = {HEADER[h]: i for i, h in enumerate(header) if h in HEADER}
            missing = [zh for key, zh in COLUMNS if key not in positions]
            if missing:
                raise InvalidInput(
                    f"缺少列：{'、'.join(missing)}",
                    f"Missing columns: {', '.join(missing)}",
                    code="invalid_workbook",
                )
            parsed = []
            for number, values in enumerate(rows, start=2):
                if number > MAX_ROWS + 1:
                    raise InvalidInput(
                        f"最多 {MAX_ROWS} 行", f"At most {MAX_ROWS} rows", code="too_many_rows"
                    )
                cells = {
                    k: _text(values[i]) if i < len(values) else "" for k, i in positions.items()
                }
                if any(cells.values()):
                    parsed.append((number, cells))
            return parsed
        finally:
            book.close()
    except XietongError:
        raise
    except Exception as bad:
        raise InvalidInput(
            "文件不是有效的 xlsx 工作簿", "Not a valid xlsx workbook", code="invalid_xlsx"
        ) from bad


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
    book = Workbook()
    sheet = book.active
    sheet.title = SHEET
    sheet.append([zh for _key, zh in COLUMNS])
    with ctx.db.read() as session:
        codes = list(session.scalars(select(Matter.code).order_by(Matter.code)))
    for view in (catalogue.get_matter(ctx, actor, code) for code in codes):
        sheet.append(
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
            ]
        )
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()
