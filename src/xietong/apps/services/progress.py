"""How an application moves: sub-cases start when their prerequisites deliver, conclude
with outputs that fill downstream forms, and the results go out together.

Everything here runs inside the caller's unit of work (``Run``), so a clerk's decision,
the conclusion of the sub-case, the start of the next matters' process instances and —
when it was the last one — the signed notice commit together or not at all.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session, aliased

from xietong.apps.services import results
from xietong.apps.services.events import MODULE, ApplicationDelivered, SubCaseChanged
from xietong.apps.services.models import Application, Bundle, BundleMatter, Matter, SubCase
from xietong.apps.services.vocab import (
    OPEN_SUB_CASE,
    REFUSAL_ZH,
    ApplicationStatus,
    RefusalKind,
    SubCaseStatus,
)
from xietong.kernel import clock
from xietong.kernel.calendar import to_local_date
from xietong.kernel.canonical import rfc3339
from xietong.kernel.errors import InvalidInput, NotFound
from xietong.kernel.notify import notify
from xietong.kernel.org.models import Department
from xietong.kernel.workflow import runtime
from xietong.kernel.workflow._run import Run
from xietong.kernel.workflow.definitions import graph_by_id
from xietong.kernel.workflow.store import WfDefinition

BUSINESS_PREFIX = "svc-sub:"


def calendar_ready(ctx: Any) -> None:
    """Have the working calendar loaded before a write transaction begins.

    Deadlines are counted in working days inside the step, and the calendar reloads its
    rows (every minute) with a read of its own — a second pooled connection. Taken while
    the step holds SQLite's write lock, with the pool's other connections held by threads
    queued for that lock, it waited out the pool's 30-second timeout (503s under load).
    Asking here loads the rows, when they are due, before any lock is held."""
    if ctx.calendar is not None:
        ctx.calendar.is_workday(to_local_date(clock.now()))


def business_key(sub_case_id: int) -> str:
    return f"{BUSINESS_PREFIX}{sub_case_id}"


def load_sub_cases(
    session: Session, app: Application
) -> list[tuple[SubCase, Matter, BundleMatter | None, Department]]:
    """An application's sub-cases with their matters, bundle links and departments, in
    one query."""
    keys = {"bundle": app.bundle_id, "app": app.id}
    return [tuple(row) for row in session.execute(_SUB_CASES, keys)]  # type: ignore[misc]


def _sub_cases(bundle_id: Any, application_id: Any, *, with_application: bool = False) -> Any:
    stmt = select(SubCase, Matter, BundleMatter, Department)
    if with_application:  # last in the row, but joined first: the link's ON clause needs it
        stmt = stmt.add_columns(Application).join(
            Application, Application.id == SubCase.application_id
        )
    return (
        stmt.join(Matter, Matter.id == SubCase.matter_id)
        .join(Department, Department.id == SubCase.department_id)
        .outerjoin(
            BundleMatter,
            (BundleMatter.matter_id == SubCase.matter_id) & (BundleMatter.bundle_id == bundle_id),
        )
        .where(SubCase.application_id == application_id)
        .order_by(SubCase.position)
    )


# The newest version of each matter's process, read with the sub-cases (a start needs
# it; a query per start was one more statement and one more autoflush per step).
_VERSIONS = aliased(WfDefinition)
_LATEST_VERSION = (
    select(func.max(_VERSIONS.version))
    .where(_VERSIONS.key == Matter.process_key)
    .correlate(Matter)
    .scalar_subquery()
)


def _case_rows(bundle_id: Any, application_id: Any, *, with_application: bool = False) -> Any:
    return (
        _sub_cases(bundle_id, application_id, with_application=with_application)
        .add_columns(
            WfDefinition.id,
            WfDefinition.version,
            # the notice names the bundle: its name, not the whole row
            select(Bundle.name).where(Bundle.id == bundle_id).scalar_subquery(),
        )
        .outerjoin(
            WfDefinition,
            (WfDefinition.key == Matter.process_key) & (WfDefinition.version == _LATEST_VERSION),
        )
    )


# built once: constructing a statement costs more CPU than SQLite spends running it
_SUB_CASES = _sub_cases(bindparam("bundle"), bindparam("app"))
_CASE = _case_rows(bindparam("bundle"), bindparam("app"))
_APP_OF_SUB = select(SubCase.application_id).where(SubCase.id == bindparam("sub")).scalar_subquery()
_CASE_OF_SUB = _case_rows(Application.bundle_id, _APP_OF_SUB, with_application=True)
_LOCK_APP_OF_SUB = select(Application).where(Application.id == _APP_OF_SUB).with_for_update()


def load_case(run: Run, sub_case_id: int) -> Case:
    """The application of ``sub_case_id`` with everything a step needs, for one step.

    SQLite (``BEGIN IMMEDIATE`` already serialises writers): one query. PostgreSQL: the
    application row is locked first, and the sub-cases read by a second statement, so
    they are read after the lock is granted (a joined ``FOR UPDATE`` would return the
    other rows as they were before a concurrent step committed). ``NotFound`` when
    there is no such sub-case.
    """
    session = run.session
    if run.ctx.db.is_sqlite:
        rows = [tuple(row) for row in session.execute(_CASE_OF_SUB, {"sub": sub_case_id})]
        if not rows:
            raise NotFound.of("子件", "Sub-case", sub_case_id)
        # a row: sub-case, matter, link, department, application, definition id and
        # version, bundle name
        return Case(run, rows[0][4], [(*row[:4], *row[5:]) for row in rows])
    app = session.scalar(_LOCK_APP_OF_SUB, {"sub": sub_case_id})
    if app is None:
        raise NotFound.of("子件", "Sub-case", sub_case_id)
    return Case(run, app)


class Case:
    """An application with its sub-cases, matters, bundle links and departments, loaded
    for one step."""

    def __init__(self, run: Run, application: Application, rows: list[Any] | None = None) -> None:
        self.run = run
        self.session = run.session
        self.app = application
        if rows is None:
            keys = {"bundle": application.bundle_id, "app": application.id}
            rows = [tuple(r) for r in self.session.execute(_CASE, keys)]
        self.subs: list[SubCase] = [row[0] for row in rows]
        self.matters: dict[int, Matter] = {row[1].id: row[1] for row in rows}
        self.links = {row[2].matter_id: row[2] for row in rows if row[2] is not None}
        self._departments: dict[int, Department] = {row[3].id: row[3] for row in rows}
        # process key -> (id, version) of its newest definition (None: none deployed)
        self._latest = {row[1].process_key: row[4:6] for row in rows}
        self.bundle_name: str = rows[0][6] if rows else self.bundle.name
        self.by_code = {self.matters[s.matter_id].code: s for s in self.subs}
        self._definitions: dict[str, Any] = {}
        # result documents issued in this step, in order (the submit's view lists them)
        self.documents: list[Any] = []

    @property
    def bundle(self) -> Bundle:
        # only the notice needs it: most steps never read the bundle row
        return self.session.get_one(Bundle, self.app.bundle_id)

    def department(self, department_id: int) -> Department:
        """The departments of the sub-cases, read with them."""
        found = self._departments.get(department_id)
        return found if found is not None else self.session.get_one(Department, department_id)

    def definition(self, process_key: str) -> tuple[WfDefinition, Any]:
        """The newest definition of ``process_key`` and its graph (from the cache)."""
        found = self._definitions.get(process_key)
        if found is None:
            definition_id, version = self._latest.get(process_key) or (None, None)
            if definition_id is None:
                raise NotFound.of("流程定义", "Process definition", process_key)
            # the start reads only id, key and version; the graph comes from the
            # per-process cache (graph_by_id loads the row only on a miss)
            definition = WfDefinition(id=definition_id, key=process_key, version=version)
            graph = graph_by_id(self.run.ctx.db, self.session, definition_id)
            found = self._definitions[process_key] = (definition, graph)
        return found

    def matter(self, sub: SubCase) -> Matter:
        return self.matters[sub.matter_id]

    def depends_on(self, sub: SubCase) -> list[SubCase]:
        link = self.links.get(sub.matter_id)
        return [self.by_code[c] for c in (link.depends_on if link else []) if c in self.by_code]

    def changed(self, sub: SubCase) -> None:
        self.run.uow.emit(
            SubCaseChanged(self.app.number, self.matter(sub).code, sub.department_id, sub.status),
            MODULE,
        )


def advance(case: Case) -> None:
    """Start every waiting sub-case whose prerequisites concluded; cancel those that
    cannot run any more; deliver when nothing is open. Repeats until nothing moves
    (a process that ends at once concludes its sub-case, which may unblock another)."""
    moved = True
    while moved:
        moved = False
        for sub in case.subs:
            if sub.status != SubCaseStatus.WAITING:
                continue
            before = case.depends_on(sub)
            blocked = [
                b for b in before if b.status in (SubCaseStatus.REFUSED, SubCaseStatus.CANCELLED)
            ]
            if blocked:
                names = "、".join(case.matter(b).name for b in blocked)
                sub.status = SubCaseStatus.CANCELLED.value
                sub.reason = f"前置事项“{names}”未能办结，本事项无法办理"
                sub.ended_at = clock.now()
                case.changed(sub)
                moved = True
            elif all(b.status == SubCaseStatus.CONCLUDED for b in before):
                start(case, sub)
                moved = True
    deliver_if_done(case)


def _fill(case: Case, sub: SubCase) -> dict[str, Any]:
    """This matter's form: the applicant's fields it uses, plus mapped upstream outputs."""
    form = dict(sub.form)
    link = case.links.get(sub.matter_id)
    for mapping in link.mappings if link else []:
        source = case.by_code.get(mapping["from"])
        if source is not None and mapping["output"] in source.outputs:
            form[mapping["to"]] = source.outputs[mapping["output"]]
    return form


def start(case: Case, sub: SubCase) -> None:
    from xietong.apps.services import forms

    matter = case.matter(sub)
    form = _fill(case, sub)
    forms.validate(matter.form_schema, form, what_zh=f"“{matter.name}”申请表", what_en=matter.code)
    run = case.run
    definition, graph = case.definition(matter.process_key)
    dept = case.department(sub.department_id)
    now = clock.now()
    calendar = run.ctx.calendar
    # no autoflush until the instance exists: the sub-case's changes go out in one UPDATE
    with case.session.no_autoflush:
        sub.form = form
        sub.status = SubCaseStatus.PROCESSING.value
        sub.started_at = now
        if calendar is not None:
            sub.due_date = calendar.add_working_days(
                to_local_date(now), matter.promised_days, dept.region_code
            ).day
        state = runtime.start_instance(
            run,
            definition,
            graph,
            variables={
                "application_number": case.app.number,
                "sub_case_id": sub.id,
                "matter_code": matter.code,
                # only this matter's fields: what a service task may send to another system
                "form": form,
            },
            business_key=business_key(sub.id),
            department_id=sub.department_id,
        )
        sub.instance_id = state.row.id
    case.changed(sub)
    if state.row.status == "completed":  # a process with no human step
        conclude(case, sub, dict(run.variables(state)).get("outputs") or {}, None, "system")


def check_outputs(matter: Matter, outputs: object) -> dict[str, Any]:
    """The outputs a clerk gives on approval: every declared one, with its type."""
    if not isinstance(outputs, dict):
        raise InvalidInput("办理结果须为对象", "Outputs must be an object", code="invalid_outputs")
    cleaned: dict[str, Any] = {}
    problems: list[dict[str, str]] = []
    checks = {
        "string": lambda v: isinstance(v, str) and 0 < len(v.strip()) <= 500,
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
    }
    for spec in matter.outputs:
        value = outputs.get(spec["name"])
        if value is None or not checks[spec["type"]](value):
            problems.append(
                {
                    "field": spec["name"],
                    "message_zh": f"请填写{spec['title']}",
                    "message_en": f"{spec['name']}: a {spec['type']} is required",
                }
            )
            continue
        cleaned[spec["name"]] = value.strip() if isinstance(value, str) else value
    unknown = sorted(set(outputs) - {s["name"] for s in matter.outputs})
    if unknown:
        problems.append(
            {
                "field": unknown[0],
                "message_zh": f"未知的办理结果：{unknown[0]}",
                "message_en": f"Unknown output: {unknown[0]}",
            }
        )
    if problems:
        raise InvalidInput(
            problems[0]["message_zh"],
            problems[0]["message_en"],
            code="invalid_outputs",
            details={"errors": problems},
        )
    return cleaned


def conclude(
    case: Case, sub: SubCase, outputs: dict[str, Any], opinion: str | None, by: str
) -> None:
    """办结: keep the outputs, issue the signed result, and move the application on."""
    matter = case.matter(sub)
    now = clock.now()
    sub.status = SubCaseStatus.CONCLUDED.value
    sub.outputs = dict(outputs)
    sub.opinion = opinion
    sub.ended_at = now
    sub.handled_by = by
    dept = case.department(sub.department_id)
    issued = results.issue(
        case.run.ctx,
        case.session,
        case.app.id,
        sub.id,
        f"{matter.name}办理结果",
        {
            "kind": "result",
            "application_number": case.app.number,
            "matter_code": matter.code,
            "matter_name": matter.name,
            "department": dept.name,
            "applicant": case.app.applicant_name,
            "outputs": {o["title"]: outputs.get(o["name"]) for o in matter.outputs},
            "concluded_at": rfc3339(now),
        },
    )
    case.documents.append(issued)
    case.changed(sub)
    advance(case)


def refuse(case: Case, sub: SubCase, kind: RefusalKind, reason: str, by: str) -> None:
    sub.status = SubCaseStatus.REFUSED.value
    sub.refusal_kind = kind.value
    sub.reason = reason
    sub.ended_at = clock.now()
    sub.handled_by = by
    case.changed(sub)
    advance(case)
    name = case.matter(sub).name
    tell_applicant(
        case,
        "services.sub_case.refused",
        f"“{name}”{REFUSAL_ZH[kind]}",
        f"“{name}” was refused",
        "\n".join(consequences(case)),
    )


def consequences(case: Case) -> list[str]:
    """What a refusal means for the rest, in the applicant's words."""
    lines: list[str] = []
    for sub in case.subs:
        name = case.matter(sub).name
        if sub.status == SubCaseStatus.REFUSED:
            what = REFUSAL_ZH[RefusalKind(sub.refusal_kind or RefusalKind.PERMISSION)]
            lines.append(f"“{name}”{what}：{sub.reason}")
        elif sub.status == SubCaseStatus.CANCELLED:
            lines.append(f"“{name}”：{sub.reason}")
    open_ones = [case.matter(s).name for s in case.subs if s.status in OPEN_SUB_CASE]
    done = [case.matter(s).name for s in case.subs if s.status == SubCaseStatus.CONCLUDED]
    if lines and open_ones:
        lines.append(f"其余事项（{'、'.join(open_ones)}）照常办理。")
    if lines and done:
        lines.append(f"已办结的事项（{'、'.join(done)}）结果有效。")
    return lines


def deliver_if_done(case: Case) -> None:
    """一次办成: when no sub-case is open, gather every result into one signed notice."""
    if case.app.status != ApplicationStatus.PROCESSING:
        return
    if any(s.status in OPEN_SUB_CASE for s in case.subs):
        return
    now: datetime = clock.now()
    bundle_name = case.bundle_name
    concluded = [s for s in case.subs if s.status == SubCaseStatus.CONCLUDED]
    refused = [s for s in case.subs if s.status != SubCaseStatus.CONCLUDED]
    content = {
        "kind": "notice",
        "application_number": case.app.number,
        "bundle": bundle_name,
        "applicant": case.app.applicant_name,
        "results": [
            {
                "matter": case.matter(s).name,
                "department": case.department(s.department_id).name,
                "outputs": {o["title"]: s.outputs.get(o["name"]) for o in case.matter(s).outputs},
            }
            for s in concluded
        ],
        "not_concluded": consequences(case),
        "delivered_at": rfc3339(now),
    }
    doc = results.issue(
        case.run.ctx, case.session, case.app.id, None, f"{bundle_name}办结通知书", content
    )
    case.documents.append(doc)
    case.session.flush()
    case.app.status = (
        ApplicationStatus.DELIVERED.value if concluded else ApplicationStatus.REFUSED.value
    )
    case.app.delivered_at = now
    case.app.notice = {**content, "document_id": doc.id, "sha256": doc.sha256}
    case.run.uow.record(
        "services.application.deliver",
        f"services.application:{case.app.number}",
        {"concluded": len(concluded), "not_concluded": len(refused), "sha256": doc.sha256},
    )
    case.run.uow.emit(ApplicationDelivered(case.app.number, len(concluded), len(refused)), MODULE)
    tell_applicant(
        case,
        "services.application.delivered",
        f"办件已办结，结果一次送达：{bundle_name}",
        f"Your application is complete, all results together: {bundle_name}",
    )


def tell_applicant(case: Case, kind: str, zh: str, en: str, body: str = "") -> None:
    """The applicant's inbox: what happened to the application, linked to its page."""
    notify(
        case.session,
        [case.app.applicant_user_id],
        kind,
        title_zh=zh,
        title_en=en,
        body_zh=body,
        body_en=body,
        link=f"/services/applications/{case.app.number}",
    )
