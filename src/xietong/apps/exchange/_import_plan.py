"""Validation and write plan for a catalogue workbook (used by ``importer``).

``make_plan`` parses every row, runs the same ``rules.check_resource`` the API runs, and
checks what needs the database (the provider exists and the actor may manage its
resources, codes are not repeated), collecting every error with its sheet, row and
column instead of stopping at the first. Items in 信息项 name their resource by code —
or, for a new resource whose code is left blank (to be numbered), by its name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from xietong.apps.exchange import _store
from xietong.apps.exchange.messages import message
from xietong.apps.exchange.models import Resource
from xietong.apps.exchange.rules import (
    WIDTHS,
    CategoryLevel,
    ItemInput,
    Problem,
    ResourceInput,
    category_code,
    check_resource,
    publish_problems,
)
from xietong.apps.exchange.service import MANAGE, guarded
from xietong.apps.exchange.vocab import (
    Classification,
    DataType,
    OpenType,
    ResourceFormat,
    ShareMethod,
    ShareType,
    Status,
    UpdateCycle,
    parse,
)
from xietong.apps.exchange.workbook import ITEMS, RESOURCES, Row, Sheet, SheetSpec
from xietong.kernel.access import Actor, can
from xietong.kernel.org.models import Department
from xietong.kernel.workbook import RowError


@dataclass
class _Pending:
    row: Row
    data: ResourceInput
    items: list[ItemInput] = field(default_factory=list)
    item_rows: list[int] = field(default_factory=list)
    failed: bool = False


@dataclass
class Op:
    row: int
    data: ResourceInput  # checked, with its code
    provider: Department
    existing: Resource | None


@dataclass
class Plan:
    ops: list[Op] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)

    def error(self, spec: SheetSpec, row: int, key: str, zh: str, en: str) -> None:
        self.errors.append(RowError(spec.zh, row, spec.column(key).zh, zh, en))


_LEVEL = re.compile(r"(\d+)\s*[.、:：\-]?\s*(.*)", re.S)
_LIST = re.compile(r"[、,，;；\s]+")
_LEVEL_KEYS = ("class", "subclass", "group", "detail")


def _level(key: str, text: str) -> CategoryLevel:
    match = _LEVEL.fullmatch(text)
    if match is None:  # no leading code: the rules report it against this cell
        return CategoryLevel(text, "")
    # Excel turns a typed 01 into the number 1: give fixed-width codes their zeros back.
    code = match[1].zfill(WIDTHS[key]) if key in WIDTHS else match[1]
    return CategoryLevel(code, match[2].strip())


def _code(enum: type[StrEnum], text: str) -> str:
    """The code name for a label; unknown text passes through for the rules to report."""
    member = parse(enum, text)
    return member.value if member is not None else text


def _date(text: str) -> date:
    cleaned = text.strip().replace("/", "-").replace("年", "-").replace("月", "-")
    cleaned = cleaned.removesuffix("日")
    try:
        return datetime.fromisoformat(cleaned).date()
    except ValueError:
        parts = cleaned.split("-")
        if len(parts) == 3 and all(part.isdigit() for part in parts):
            return date(*(int(part) for part in parts))
        raise


def _parse_resource(plan: Plan, row: Row) -> _Pending:
    cell = row.values
    fmt, _, detail = cell.get("format", "").replace("／", "/").partition("/")
    publish_date = None
    failed = False
    if cell.get("publish_date"):
        try:
            publish_date = _date(cell["publish_date"])
        except ValueError:
            zh, en = message("invalid_date", value=cell["publish_date"])
            plan.error(RESOURCES, row.number, "publish_date", zh, en)
            failed = True
    data = ResourceInput(
        name=cell.get("name", ""),
        category=tuple(_level(key, cell.get(key, "")) for key in _LEVEL_KEYS),
        provider_code=cell.get("provider_code", ""),
        summary=cell.get("summary", ""),
        format=_code(ResourceFormat, fmt),
        format_detail=detail.strip() or None,
        share_type=_code(ShareType, cell.get("share_type", "")),
        share_conditions=cell.get("share_conditions"),
        not_shared_basis=cell.get("not_shared_basis"),
        share_methods=tuple(
            _code(ShareMethod, part) for part in _LIST.split(cell.get("share_methods", "")) if part
        ),
        open_type=_code(OpenType, cell.get("open_type", "")) or OpenType.NOT_OPEN.value,
        open_conditions=cell.get("open_conditions"),
        update_cycle=_code(UpdateCycle, cell.get("update_cycle", "")),
        publish_date=publish_date,
        related_codes=tuple(part for part in _LIST.split(cell.get("related_codes", "")) if part),
        code=cell.get("code") or None,
    )
    return _Pending(row, data, failed=failed)


def _report(plan: Plan, pending: _Pending, problems: list[Problem]) -> None:
    for problem in problems:
        pending.failed = True
        head = problem.field.split(".", 1)[0]
        if head.startswith("items["):
            index = int(head[len("items[") : -1])
            key = problem.field.rsplit(".", 1)[-1]
            plan.error(ITEMS, pending.item_rows[index], key, problem.message_zh, problem.message_en)
            continue
        if problem.field.startswith("category"):
            key = problem.field.partition(".")[2] or "class"
        else:
            key = "name" if problem.field == "items" else problem.field
        plan.error(RESOURCES, pending.row.number, key, problem.message_zh, problem.message_en)


def _attach_items(plan: Plan, sheet: Sheet, pendings: list[_Pending]) -> None:
    by_code = {p.data.code: p for p in pendings if p.data.code}
    by_name: dict[str, list[_Pending]] = {}
    for pending in pendings:
        if not pending.data.code:
            by_name.setdefault(pending.data.name.strip(), []).append(pending)
    for row in sheet.rows:
        ref = row.values.get("resource_code", "").strip()
        target = by_code.get(ref)
        if target is None and len(by_name.get(ref, ())) == 1:
            target = by_name[ref][0]
        if target is None:
            zh = f"资源代码 {ref or '（空）'} 不在“资源”工作表中"
            en = f"Resource code {ref!r} is not in the sheet 资源"
            plan.error(ITEMS, row.number, "resource_code", zh, en)
            continue
        target.items.append(
            ItemInput(
                name=row.values.get("name", ""),
                data_type=_code(DataType, row.values.get("data_type", "")),
                classification=_code(Classification, row.values.get("classification", "")),
                description=row.values.get("description", ""),
            )
        )
        target.item_rows.append(row.number)


def _missing_columns(plan: Plan, sheets: dict[str, Sheet]) -> bool:
    for sheet in sheets.values():
        for column in sheet.missing:
            zh, en = f"缺少必填列“{column.zh}”", f"Missing required column {column.zh}"
            plan.errors.append(RowError(sheet.spec.zh, 1, column.zh, zh, en))
    return bool(plan.errors)


def make_plan(session: Session, actor: Actor, sheets: dict[str, Sheet], *, publish: bool) -> Plan:
    """Every error in the workbook, or (when there are none) the writes it asks for."""
    plan = Plan()
    if _missing_columns(plan, sheets):
        return plan
    pendings = [_parse_resource(plan, row) for row in sheets[RESOURCES.key].rows]
    seen: set[str] = set()
    for pending in pendings:
        code = pending.data.code
        if code and code in seen:
            zh, en = message("code_taken", value=code)
            plan.error(RESOURCES, pending.row.number, "code", zh, en)
            pending.failed = True
        seen.add(code or "")
    items_given = ITEMS.key in sheets
    if items_given:
        _attach_items(plan, sheets[ITEMS.key], pendings)
    codes = [p.data.code for p in pendings if p.data.code]
    existing: dict[str, Resource] = {}
    for start in range(0, len(codes), 500):  # bounded IN lists: SQLite limits parameters
        stmt = select(Resource).where(Resource.code.in_(codes[start : start + 500]))
        for row in session.scalars(stmt.options(selectinload(Resource.items))):
            existing[row.code] = row
    departments = {dept.code: dept for dept in session.scalars(select(Department))}
    for pending in pendings:
        _check_row(plan, actor, pending, existing, departments, items_given, publish)
    if plan.errors:
        plan.ops.clear()
        return plan
    reserved = set(seen - {""})
    for op in plan.ops:
        if op.data.code is None:
            code = _store.next_code(session, category_code(op.data.category), reserved)
            reserved.add(code)
            op.data = replace(op.data, code=code)
    return plan


def _check_row(
    plan: Plan,
    actor: Actor,
    pending: _Pending,
    existing: dict[str, Resource],
    departments: dict[str, Department],
    items_given: bool,
    publish: bool,
) -> None:
    current = existing.get(pending.data.code or "")
    if items_given:
        items = tuple(pending.items)
    else:  # no 信息项 sheet: an existing entry keeps its items
        items = tuple(
            ItemInput(i.name, i.data_type, i.classification, i.description)
            for i in (current.items if current else ())
        )
    cleaned, problems = check_resource(replace(pending.data, items=items))
    will_be_published = (current is not None and current.status == Status.PUBLISHED) or publish
    if will_be_published:
        problems += publish_problems(len(cleaned.items))
    _report(plan, pending, problems)
    number = pending.row.number
    dept = departments.get(cleaned.provider_code)
    if cleaned.provider_code and dept is None:
        zh, en = message("unknown_provider", value=cleaned.provider_code)
        plan.error(RESOURCES, number, "provider_code", zh, en)
        return
    if dept is None:
        return
    allowed = can(actor, MANAGE, guarded(dept.id)) and (
        current is None or can(actor, MANAGE, guarded(current.provider_id))
    )
    if not allowed:
        zh, en = message("provider_forbidden", value=dept.code)
        plan.error(RESOURCES, number, "provider_code", zh, en)
    elif not pending.failed:
        plan.ops.append(Op(number, cleaned, dept, current))
