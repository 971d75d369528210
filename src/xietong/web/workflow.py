"""Workflow pages: process definitions drawn with bpmn-js, instances with their current
nodes highlighted, the clerk's todo / done / cc lists, and the task page with the
operations this user may perform (同意, 不同意, 退回, 转办, 委派, 加签, 撤回 …).

Each form posts to one route that calls one service function; errors come back on the
same page, in the user's language, and change nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from xietong.api.deps import current_actor, get_ctx
from xietong.kernel.access import Actor
from xietong.kernel.context import Context
from xietong.kernel.errors import InvalidInput, NotFound, XietongError
from xietong.kernel.org import service as org
from xietong.kernel.workflow import definitions, instances, operations, queries, returns, signers
from xietong.web.rendering import check_csrf, language, render

router = APIRouter(prefix="/workflow", include_in_schema=False)
CtxDep = Annotated[Context, Depends(get_ctx)]
ActorDep = Annotated[Actor, Depends(current_actor)]

OPERATION_LABELS: dict[str, tuple[str, str]] = {
    "claim": ("签收", "Claim"),
    "complete": ("办理", "Complete"),
    "send_back": ("退回", "Send back"),
    "reject_to_applicant": ("驳回", "Reject to applicant"),
    "transfer": ("转办", "Transfer"),
    "delegate": ("委派", "Delegate"),
    "resolve": ("委派办结", "Return to owner"),
    "add_signer": ("加签", "Add signer"),
    "remove_signer": ("减签", "Remove signer"),
    "withdraw": ("撤回", "Withdraw"),
    "reclaim": ("拿回", "Reclaim"),
    "urge": ("催办", "Urge"),
    "cc": ("抄送", "Copy to"),
}


def _flash(request: Request, message: str) -> None:
    request.session["flash"] = message


def _take_flash(request: Request) -> str | None:
    return request.session.pop("flash", None)


def _user_id(ctx: Context, username: str) -> int:
    user = org.get_user_by_username(ctx, username.strip())
    if user is None:
        raise NotFound.of("用户", "User", username)
    return user.id


@router.get("", response_class=HTMLResponse)
def definitions_page(request: Request, ctx: CtxDep, actor: ActorDep) -> Response:
    items = definitions.list_definitions(ctx, actor)
    return render(request, "workflow/definitions.html", items=items)


@router.get("/definitions/{key}/{version}", response_class=HTMLResponse)
def definition_page(
    request: Request, key: str, version: int, ctx: CtxDep, actor: ActorDep
) -> Response:
    detail = definitions.get_definition(ctx, actor, key, version)
    return render(
        request,
        "workflow/definition.html",
        detail=detail,
        bpmn=detail.source if detail.definition.source_format == "bpmn" else None,
        active=[],
    )


@router.get("/instances/{instance_id}", response_class=HTMLResponse)
def instance_page(request: Request, instance_id: int, ctx: CtxDep, actor: ActorDep) -> Response:
    detail = instances.get_instance(ctx, actor, instance_id)
    definition = definitions.get_definition(
        ctx, actor, detail.instance.process_key, detail.instance.version
    )
    active = sorted(
        {t.node_id for t in detail.tokens if t.status in ("active", "waiting")}
        | {t.node_id for t in detail.tasks if t.status in ("open", "delegated")}
    )
    return render(
        request,
        "workflow/instance.html",
        detail=detail,
        definition=definition,
        bpmn=definition.source if definition.definition.source_format == "bpmn" else None,
        active=active,
        names=_node_names(definition.graph),
    )


def _node_names(graph: dict[str, Any]) -> dict[str, str]:
    return {node["id"]: node.get("name") or node["id"] for node in graph.get("nodes", [])}


@router.get("/tasks", response_class=HTMLResponse)
def tasks_page(
    request: Request, ctx: CtxDep, actor: ActorDep, tab: str = "todo", page: int = 1
) -> Response:
    limit = 20
    offset = max(page - 1, 0) * limit
    if tab == "done":
        result = queries.done(ctx, actor, offset=offset, limit=limit)
        items, total = result.items, result.total
    elif tab == "cc":
        copies = queries.cc_list(ctx, actor, offset=offset, limit=limit)
        items, total = copies.items, copies.total
    else:
        tab = "todo"
        result = queries.todo(ctx, actor, offset=offset, limit=limit)
        items, total = result.items, result.total
    process_names = {d.key: d.name for d in definitions.list_definitions(ctx, actor)}
    return render(
        request,
        "workflow/tasks.html",
        process_names=process_names,
        tab=tab,
        items=items,
        total=total,
        page=page,
        pages=max((total + limit - 1) // limit, 1),
        flash=_take_flash(request),
    )


@router.get("/tasks/{task_id}", response_class=HTMLResponse)
def task_page(
    request: Request, task_id: int, ctx: CtxDep, actor: ActorDep, error: str | None = None
) -> Response:
    return _render_task(request, ctx, actor, task_id, error=error)


def _render_task(
    request: Request,
    ctx: Context,
    actor: Actor,
    task_id: int,
    *,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    detail = queries.get_task(ctx, actor, task_id)
    instance = instances.get_instance(ctx, actor, detail.task.instance_id)
    definition = definitions.get_definition(
        ctx, actor, instance.instance.process_key, instance.instance.version
    )
    names = _node_names(definition.graph)
    reached: list[tuple[str, str]] = []
    for entry in instance.history:
        if (
            entry.kind == "node.entered"
            and entry.node_id
            and entry.node_id != detail.task.node_id
            and entry.node_id not in {node for node, _ in reached}
            and _is_user_task(definition.graph, entry.node_id)
        ):
            reached.append((entry.node_id, names.get(entry.node_id, entry.node_id)))
    lang = language(request)
    labels = {op: (zh if lang == "zh-CN" else en) for op, (zh, en) in OPERATION_LABELS.items()}
    return render(
        request,
        "workflow/task.html",
        status_code=status_code,
        detail=detail,
        instance=instance,
        names=names,
        reached=reached,
        labels=labels,
        error=error,
        flash=_take_flash(request),
    )


def _is_user_task(graph: dict[str, Any], node_id: str) -> bool:
    return any(n["id"] == node_id and n["kind"] == "user_task" for n in graph.get("nodes", []))


@router.post("/tasks/{task_id}", response_class=HTMLResponse)
def task_operation(
    request: Request,
    task_id: int,
    ctx: CtxDep,
    actor: ActorDep,
    op: Annotated[str, Form(max_length=40)],
    csrf_token: Annotated[str, Form()] = "",
    opinion: Annotated[str, Form(max_length=2000)] = "",
    outcome: Annotated[str, Form(max_length=20)] = "approve",
    node_id: Annotated[str, Form(max_length=200)] = "",
    username: Annotated[str, Form(max_length=100)] = "",
    position: Annotated[str, Form(max_length=20)] = "parallel",
) -> Response:
    check_csrf(request, csrf_token)
    lang = language(request)
    actions: dict[str, Callable[[], Any]] = {
        "claim": lambda: operations.claim(ctx, actor, task_id),
        "complete": lambda: operations.complete(
            ctx, actor, task_id, outcome, opinion=opinion or None
        ),
        "send_back": lambda: returns.send_back(
            ctx, actor, task_id, node_id, opinion=opinion or None
        ),
        "reject_to_applicant": lambda: returns.reject_to_applicant(
            ctx, actor, task_id, opinion=opinion or None
        ),
        "transfer": lambda: operations.transfer(
            ctx, actor, task_id, _user_id(ctx, username), opinion=opinion or None
        ),
        "delegate": lambda: operations.delegate(
            ctx, actor, task_id, _user_id(ctx, username), opinion=opinion or None
        ),
        "resolve": lambda: operations.resolve(ctx, actor, task_id, opinion=opinion or None),
        "add_signer": lambda: signers.add_signer(
            ctx,
            actor,
            task_id,
            [_user_id(ctx, username)],
            position,  # type: ignore[arg-type]
            opinion=opinion or None,
        ),
        "withdraw": lambda: returns.withdraw(ctx, actor, task_id),
        "reclaim": lambda: returns.reclaim(ctx, actor, task_id),
        "urge": lambda: operations.urge(ctx, actor, task_id, message=opinion),
        "cc": lambda: operations.cc(ctx, actor, task_id, [_user_id(ctx, username)], note=opinion),
    }
    try:
        if op not in actions:
            raise InvalidInput(
                f"未知操作：{op}", f"Unknown operation: {op}", code="unknown_operation"
            )
        actions[op]()
    except XietongError as error:
        return _render_task(
            request, ctx, actor, task_id, error=error.message(lang), status_code=error.status
        )
    zh, en = OPERATION_LABELS.get(op, (op, op))
    _flash(request, f"{zh}成功" if lang == "zh-CN" else f"{en}: done")
    target = f"/workflow/tasks/{task_id}" if op == "claim" else "/workflow/tasks"
    return RedirectResponse(target, status_code=303)
