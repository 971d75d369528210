"""Task pages (zh-CN first): list, task, tree, Gantt, a department's board, the task
force's overview, analysis with what-if, templates, and published inspection results.

Every form posts to one route that calls one service function; an error comes back on
the page it came from, in the user's language, and changes nothing.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile as StarletteUpload

from xietong.api.deps import current_actor, get_ctx
from xietong.api.files import download
from xietong.apps.tasks import (
    attachments,
    closure,
    insight,
    inspection,
    queries,
    rights,
    scenarios,
    service,
    supervision,
)
from xietong.apps.tasks.rules import TaskInput
from xietong.kernel import files
from xietong.kernel.access import Actor, can
from xietong.kernel.context import Context
from xietong.kernel.errors import InvalidInput, XietongError
from xietong.kernel.org import service as org
from xietong.web.rendering import check_csrf, language, render

router = APIRouter(prefix="/tasks", include_in_schema=False)
CtxDep = Annotated[Context, Depends(get_ctx)]
ActorDep = Annotated[Actor, Depends(current_actor)]
Text = Annotated[str, Form(max_length=4000)]
Optional = Annotated[str, Form(max_length=4000)]

STATUS_BADGE = {
    "not_started": "gray",
    "in_progress": "blue",
    "done": "green",
    "overdue": "red",
    "closed": "gray",
}
LEVEL_BADGE = {"red": "red", "yellow": "yellow", "blocked": "blue"}
LEVEL_ZH = {"red": "红灯", "yellow": "黄灯", "blocked": "受阻"}


def _flash(request: Request, message: str, kind: str = "success") -> None:
    request.session["tasks_flash"] = [kind, message]


def _take_flash(request: Request) -> tuple[str, str] | None:
    found = request.session.pop("tasks_flash", None)
    return (found[0], found[1]) if found else None


def _back(target: str) -> RedirectResponse:
    return RedirectResponse(target, status_code=303)


def _attempt(
    request: Request, back: str, ok: str, action: Any, then: str | None = None
) -> Response:
    """Run ``action``; on success flash ``ok`` and go to ``then`` (formatted with the
    result) or ``back``; on an error flash it and go ``back``, where the form was."""
    try:
        result = action()
    except XietongError as error:
        _flash(request, error.message(language(request)), "error")
        return _back(back)
    _flash(request, ok)
    return _back(then.format(result=result) if then else back)


def _number(value: str, zh: str, en: str) -> float | None:
    value = (value or "").strip()
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        raise InvalidInput(f"{zh}须为数字：{value}", f"{en} must be a number: {value}") from None


def _date(value: str, zh: str, en: str) -> date | None:
    value = (value or "").strip()
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{zh}格式应为 YYYY-MM-DD：{value}", f"{en}: use YYYY-MM-DD") from None


def _departments(ctx: Context, actor: Actor) -> list[Any]:
    return sorted(org.list_departments(ctx, actor), key=lambda d: d.code)


def _common(request: Request, ctx: Context, actor: Actor) -> dict[str, Any]:
    return {
        "flash": _take_flash(request),
        "status_badge": STATUS_BADGE,
        "level_badge": LEVEL_BADGE,
        "level_zh": LEVEL_ZH,
    }


@router.get("", response_class=HTMLResponse)
def list_page(
    request: Request,
    ctx: CtxDep,
    actor: ActorDep,
    status: str | None = None,
    warning: str | None = None,
    q: str | None = None,
    root_id: int | None = None,
) -> Response:
    page = queries.list_tasks(
        ctx,
        actor,
        queries.TaskQuery(
            root_id=root_id, status=status or None, warning=warning or None, q=q or None, limit=300
        ),
    )
    forces = queries.task_forces(ctx, actor)
    return render(
        request,
        "tasks/list.html",
        page=page,
        forces=forces,
        filters={"status": status or "", "warning": warning or "", "q": q or ""},
        departments=_departments(ctx, actor),
        templates=list(scenarios.TEMPLATES.values()),
        may_manage=can(actor, rights.MANAGE),
        my_departments=sorted(rights.actor_departments(actor)),
        **_common(request, ctx, actor),
    )


@router.post("/new")
def create_page(
    request: Request,
    ctx: CtxDep,
    actor: ActorDep,
    title: Annotated[str, Form(max_length=200)] = "",
    department_code: Annotated[str, Form(max_length=64)] = "",
    supervising_department_code: Annotated[str, Form(max_length=64)] = "",
    planned_start: Annotated[str, Form(max_length=10)] = "",
    planned_end: Annotated[str, Form(max_length=10)] = "",
    duration_days: Annotated[str, Form(max_length=6)] = "",
    goal_name: Annotated[str, Form(max_length=200)] = "",
    goal_unit: Annotated[str, Form(max_length=32)] = "",
    goal_baseline: Annotated[str, Form(max_length=32)] = "",
    goal_target: Annotated[str, Form(max_length=32)] = "",
    basis_title: Annotated[str, Form(max_length=300)] = "",
    basis_ref: Annotated[str, Form(max_length=300)] = "",
    content: Optional = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(request, csrf_token)

    def make() -> int:
        start = _date(planned_start, "开始日期", "Start") or service.today()
        view = service.create_task(
            ctx,
            actor,
            TaskInput(
                title=title,
                department_code=department_code,
                supervising_department_code=supervising_department_code or None,
                planned_start=start,
                planned_end=_date(planned_end, "完成日期", "End"),
                duration_days=int(duration_days) if duration_days.strip().isdigit() else None,
                goal_name=goal_name or None,
                goal_unit=goal_unit or None,
                goal_baseline=_number(goal_baseline, "基线值", "Baseline"),
                goal_target=_number(goal_target, "目标值", "Target"),
                basis=({"kind": "policy", "title": basis_title, "ref": basis_ref},)
                if basis_title.strip()
                else (),
                content=content,
            ),
        )
        return view.id

    return _attempt(request, "/tasks", "已创建专班任务", make, "/tasks/{result}")


@router.post("/templates/instantiate")
async def instantiate_page(request: Request, ctx: CtxDep, actor: ActorDep) -> Response:
    form = await request.form()
    check_csrf(request, str(form.get("csrf_token", "")))
    key = str(form.get("template", ""))

    def make() -> int:
        template = scenarios.get_template(key)
        departments = {slot: str(form.get(f"slot_{slot}", "")) for slot in template.slots}
        start = _date(str(form.get("start", "")), "开始日期", "Start")
        if start is None:
            raise InvalidInput("请填写开始日期", "Give a start date", code="missing_value")
        views = scenarios.instantiate(
            ctx,
            actor,
            key,
            start=start,
            departments=departments,
            title=str(form.get("title", "")).strip() or None,
        )
        return views[0].id

    return _attempt(request, "/tasks", "已按模板建立任务树", make, "/tasks/{result}/tree")


@router.get("/board", response_class=HTMLResponse)
def my_board(request: Request, ctx: CtxDep, actor: ActorDep) -> Response:
    mine = sorted(rights.actor_departments(actor))
    departments = {d.id: d.code for d in _departments(ctx, actor)}
    code = departments.get(mine[0]) if mine else None
    if code is None:
        code = next(iter(departments.values()), "")
    return _back(f"/tasks/board/{code}")


@router.get("/board/{department_code}", response_class=HTMLResponse)
def board_page(request: Request, department_code: str, ctx: CtxDep, actor: ActorDep) -> Response:
    columns = queries.board(ctx, actor, department_code)
    departments = _departments(ctx, actor)
    current = next((d for d in departments if d.code == department_code), None)
    return render(
        request,
        "tasks/board.html",
        columns=columns,
        department=current,
        department_code=department_code,
        departments=departments,
        **_common(request, ctx, actor),
    )


@router.get("/analysis", response_class=HTMLResponse)
def analysis_page(
    request: Request,
    ctx: CtxDep,
    actor: ActorDep,
    root_id: int | None = None,
    task_id: int | None = None,
    slip: int | None = None,
) -> Response:
    result = insight.analysis(ctx, actor, root_id)
    answer, error = None, None
    if task_id is not None and slip is not None:
        try:
            answer = insight.slip(ctx, actor, task_id, slip)
        except XietongError as failure:
            error = failure.message(language(request))
    return render(
        request,
        "tasks/analysis.html",
        result=result,
        root_id=root_id,
        forces=queries.task_forces(ctx, actor),
        answer=answer,
        what_if_error=error,
        task_id=task_id,
        slip=slip,
        **_common(request, ctx, actor),
    )


@router.get("/inspections/{draw_id}/public", response_class=HTMLResponse)
def public_page(request: Request, draw_id: int, ctx: CtxDep, actor: ActorDep) -> Response:
    results = inspection.public_results(ctx, actor, draw_id)
    return render(request, "tasks/public.html", results=results)


@router.get("/{task_id}", response_class=HTMLResponse)
def task_page(request: Request, task_id: int, ctx: CtxDep, actor: ActorDep) -> Response:
    detail = queries.get_task(ctx, actor, task_id)
    related = {
        v.id: v
        for v in queries.list_tasks(
            ctx, actor, queries.TaskQuery(root_id=detail.task.root_id, limit=queries.MAX_LIMIT)
        ).items
    }
    with ctx.db.read() as session:
        row = rights.load_visible(session, actor, task_id)
        may_manage = rights.may_manage(session, actor, row)
        may_report = rights.may_report(session, actor, row)
    return render(
        request,
        "tasks/detail.html",
        detail=detail,
        task=detail.task,
        related=related,
        history=queries.warning_history(ctx, actor, task_id),
        draws=inspection.draws_for(ctx, actor, task_id),
        may_manage=may_manage,
        may_report=may_report,
        may_supervise=can(actor, rights.SUPERVISE),
        departments=_departments(ctx, actor),
        rollup=queries.rollup_of(ctx, actor, task_id, detail.task.root_id),
        **_common(request, ctx, actor),
    )


@router.get("/{task_id}/tree", response_class=HTMLResponse)
def tree_page(request: Request, task_id: int, ctx: CtxDep, actor: ActorDep) -> Response:
    nodes = queries.tree(ctx, actor, task_id)
    return render(
        request, "tasks/tree.html", nodes=nodes, root_id=task_id, **_common(request, ctx, actor)
    )


@router.get("/{task_id}/gantt", response_class=HTMLResponse)
def gantt_page(request: Request, task_id: int, ctx: CtxDep, actor: ActorDep) -> Response:
    page = queries.list_tasks(
        ctx, actor, queries.TaskQuery(root_id=task_id, limit=queries.MAX_LIMIT)
    )
    if not page.items:
        return _back("/tasks")
    levels = {}
    for view in page.items:
        for warning in view.warnings:
            if warning.level == "red" or levels.get(view.id) is None:
                levels[view.id] = warning.level
    bars = [
        {
            "id": f"t{view.id}",
            "name": f"{view.title}（{view.department.name}）",
            "start": view.planned_start.isoformat(),
            "end": view.planned_end.isoformat(),
            "progress": view.progress,
            "dependencies": ",".join(f"t{d}" for d in view.depends_on),
            "custom_class": f"bar-{levels.get(view.id) or view.status}",
        }
        for view in page.items
    ]
    return render(
        request,
        "tasks/gantt.html",
        root=next((v for v in page.items if v.id == task_id), page.items[0]),
        bars_json=json.dumps(bars, ensure_ascii=False),
        **_common(request, ctx, actor),
    )


@router.get("/{task_id}/overview", response_class=HTMLResponse)
def overview_page(request: Request, task_id: int, ctx: CtxDep, actor: ActorDep) -> Response:
    found = queries.overview(ctx, actor, task_id)
    titles = {
        v.id: v
        for v in queries.list_tasks(
            ctx, actor, queries.TaskQuery(root_id=task_id, limit=queries.MAX_LIMIT)
        ).items
    }
    charts = {
        "levels": found.by_level,
        "status": {k: found.by_status.get(k, 0) for k in STATUS_BADGE},
        "departments": found.by_department,
        "progress": found.progress,
    }
    return render(
        request,
        "tasks/overview.html",
        overview=found,
        titles=titles,
        charts_json=json.dumps(charts, ensure_ascii=False),
        **_common(request, ctx, actor),
    )


@router.post("/{task_id}/decompose")
def decompose_page(
    request: Request,
    task_id: int,
    ctx: CtxDep,
    actor: ActorDep,
    title: Annotated[str, Form(max_length=200)] = "",
    department_code: Annotated[str, Form(max_length=64)] = "",
    cooperating: Annotated[list[str] | None, Form()] = None,
    owner: Annotated[str, Form(max_length=64)] = "",
    planned_start: Annotated[str, Form(max_length=10)] = "",
    planned_end: Annotated[str, Form(max_length=10)] = "",
    duration_days: Annotated[str, Form(max_length=6)] = "",
    depends_on: Annotated[list[str] | None, Form()] = None,
    weight: Annotated[str, Form(max_length=10)] = "1",
    content: Optional = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(request, csrf_token)

    def make() -> int:
        start = _date(planned_start, "开始日期", "Start")
        if start is None:
            raise InvalidInput("请填写开始日期", "Give a start date", code="missing_value")
        view = service.create_task(
            ctx,
            actor,
            TaskInput(
                title=title,
                department_code=department_code,
                parent_id=task_id,
                cooperating_codes=tuple(c for c in cooperating or [] if c),
                owner=owner.strip() or None,
                planned_start=start,
                planned_end=_date(planned_end, "完成日期", "End"),
                duration_days=int(duration_days) if duration_days.strip().isdigit() else None,
                depends_on=tuple(int(d) for d in depends_on or [] if d.isdigit()),
                weight=_number(weight, "权重", "Weight") or 1.0,
                content=content,
            ),
        )
        return view.id

    try:
        new_id = make()
    except XietongError as error:
        _flash(request, error.message(language(request)), "error")
        return _back(f"/tasks/{task_id}")
    _flash(request, "已分解任务")
    return _back(f"/tasks/{new_id}")


async def _incoming(form: Any, name: str) -> list[files.Incoming]:
    """The files of a multipart field, each read up to one byte over the limit (enough
    for the kernel to refuse it as too large without holding more)."""
    found = []
    for item in form.getlist(name):
        if isinstance(item, StarletteUpload) and (item.filename or item.size):
            data = await item.read(files.MAX_BYTES + 1)
            found.append(files.Incoming(item.filename or "", data))
    return found


def _field(form: Any, name: str, limit: int = 4000) -> str:
    value = form.get(name)
    return str(value)[:limit] if isinstance(value, str) else ""


def _links(form: Any, name_field: str, url_field: str) -> list[dict[str, Any]]:
    name, url = _field(form, name_field, 200).strip(), _field(form, url_field, 500).strip()
    return [{"name": name or url, "url": url}] if name or url else []


@router.get("/{task_id}/files/{file_id}")
def attachment_page(task_id: int, file_id: int, ctx: CtxDep, actor: ActorDep) -> Response:
    return download(*attachments.read(ctx, actor, task_id, file_id))


@router.post("/{task_id}/progress")
async def progress_page(request: Request, task_id: int, ctx: CtxDep, actor: ActorDep) -> Response:
    form = await request.form()
    check_csrf(request, _field(form, "csrf_token"))
    uploads = await _incoming(form, "files")

    def report() -> int:
        value = _number(_field(form, "percent", 10), "进度", "Progress")
        service.report_progress(
            ctx,
            actor,
            task_id,
            value if value is not None else -1,
            _field(form, "text"),
            attachments=_links(form, "attachment_name", "attachment_ref"),
            uploads=uploads,
            reason=_field(form, "reason") or None,
            goal_value=_number(_field(form, "goal_value", 32), "指标当前值", "Goal value"),
        )
        return task_id

    return await run_in_threadpool(_attempt, request, f"/tasks/{task_id}", "已报送进展", report)


@router.post("/{task_id}/comment")
def comment_page(
    request: Request,
    task_id: int,
    ctx: CtxDep,
    actor: ActorDep,
    text: Text = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(request, csrf_token)
    return _attempt(
        request,
        f"/tasks/{task_id}",
        "已发表意见",
        lambda: service.add_comment(ctx, actor, task_id, text),
    )


@router.post("/{task_id}/closure")
async def closure_page(request: Request, task_id: int, ctx: CtxDep, actor: ActorDep) -> Response:
    form = await request.form()
    check_csrf(request, _field(form, "csrf_token"))
    uploads = await _incoming(form, "evidence")
    links = _links(form, "evidence_name", "evidence_ref")
    return await run_in_threadpool(
        _attempt,
        request,
        f"/tasks/{task_id}",
        "已提交销号申请，等待督办部门审核",
        lambda: closure.request_closure(
            ctx, actor, task_id, links, _field(form, "note"), uploads=uploads
        ),
    )


@router.post("/{task_id}/supervise")
def supervise_page(
    request: Request,
    task_id: int,
    ctx: CtxDep,
    actor: ActorDep,
    message: Annotated[str, Form(max_length=2000)] = "",
    days: Annotated[int, Form()] = 2,
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(request, csrf_token)
    return _attempt(
        request,
        f"/tasks/{task_id}",
        "已发出督办通知",
        lambda: supervision.issue_notice(ctx, actor, task_id, message, days=days),
    )


@router.post("/{task_id}/supervisions/{supervision_id}/{step}")
def supervision_step_page(
    request: Request,
    task_id: int,
    supervision_id: int,
    step: str,
    ctx: CtxDep,
    actor: ActorDep,
    text: Text = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(request, csrf_token)
    commands = {
        "urge": (supervision.urge, "已催办"),
        "escalate": (supervision.escalate, "已升级督办"),
        "respond": (supervision.respond, "已反馈"),
    }
    if step not in commands:
        return _back(f"/tasks/{task_id}")
    command, ok = commands[step]
    return _attempt(
        request, f"/tasks/{task_id}", ok, lambda: command(ctx, actor, supervision_id, text)
    )
