"""Pages: the portal (services by life event and department, search, the bundle page
with its merged form and materials, apply, my applications with a timeline per
department, results, 补正, rating) and the workbench (todo / done, the sub-case page,
补正 request, approve or refuse with opinion, rectifications).

Each form posts to one route that calls one service function; an error comes back on
the same page as a message, in the user's language, and changes nothing.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from xietong.api.deps import current_actor, get_ctx
from xietong.apps.services import (
    applications,
    bundles,
    catalogue,
    files,
    ratings,
    results,
    workbench,
)
from xietong.apps.services.vocab import (
    MATTER_TYPE_ZH,
    RATING_LEVELS,
    SUB_CASE_STATUS_EN,
)
from xietong.kernel.access import Actor
from xietong.kernel.context import Context
from xietong.kernel.errors import InvalidInput, Unauthenticated, XietongError
from xietong.web.rendering import check_csrf, language, render

router = APIRouter(prefix="/services", include_in_schema=False)
CtxDep = Annotated[Context, Depends(get_ctx)]
ActorDep = Annotated[Actor, Depends(current_actor)]


def _flash(request: Request, message: str, kind: str = "success") -> None:
    request.session["services_flash"] = [kind, message]


def _take_flash(request: Request) -> tuple[str, str] | None:
    found = request.session.pop("services_flash", None)
    return (found[0], found[1]) if found else None


def _error_text(request: Request, error: XietongError) -> str:
    lang = language(request)
    text = error.message(lang)
    details = error.details if isinstance(error.details, dict) else {}
    extra = [
        e.get("message_zh" if lang == "zh-CN" else "message_en", "")
        for e in details.get("errors", [])[1:]
    ]
    return "；".join([text, *[e for e in extra if e]])


def _require_user(actor: Actor) -> None:
    if not actor.is_authenticated:
        raise Unauthenticated()


def _coerce(schema: dict[str, Any], raw: dict[str, str]) -> dict[str, Any]:
    """Form text to JSON values by the schema's types; empty means not given."""
    out: dict[str, Any] = {}
    for name, spec in schema.get("properties", {}).items():
        value = (raw.get(name) or "").strip()
        if not value:
            continue
        kind = spec.get("type")
        try:
            if kind == "integer":
                out[name] = int(value)
            elif kind == "number":
                out[name] = float(value)
            elif kind == "boolean":
                out[name] = value in ("true", "on", "1", "是")
            else:
                out[name] = value
        except ValueError:
            out[name] = value  # the schema check names the field
    return out


async def _uploads(ctx: Context, actor: Actor, form: Any, codes: list[str]) -> dict[str, str]:
    """Store each file posted for a material code; returns code → sha256."""
    found: dict[str, str] = {}
    for code in codes:
        item = form.get(f"material_{code}")
        if isinstance(item, UploadFile) and item.filename:
            data = await item.read(files.MAX_BYTES + 1)
            stored = await run_in_threadpool(files.upload, ctx, actor, item.filename, data)
            found[code] = stored.sha256
        elif isinstance(form.get(f"material_{code}_sha256"), str) and form.get(
            f"material_{code}_sha256"
        ):
            found[code] = str(form.get(f"material_{code}_sha256"))
    return found


# -- portal --


@router.get("", response_class=HTMLResponse)
def portal(
    request: Request, ctx: CtxDep, actor: ActorDep, q: str = "", department: str = ""
) -> Response:
    all_bundles = bundles.list_bundles(ctx, actor)
    events: dict[str, list[Any]] = {}
    for bundle in all_bundles:
        events.setdefault(bundle.life_event or "其他", []).append(bundle)
    found_bundles = bundles.list_bundles(ctx, actor, q) if q else []
    matters = catalogue.search_matters(
        ctx, actor, q or None, department_code=department or None, limit=200
    )
    departments: dict[str, str] = {}
    for matter in catalogue.search_matters(ctx, actor, None, limit=500):
        departments[matter.department_code] = matter.department_name
    return render(
        request,
        "services/portal.html",
        q=q,
        department=department,
        events=events,
        found_bundles=found_bundles,
        matters=matters if (q or department) else [],
        departments=sorted(departments.items()),
        type_zh={k.value: v for k, v in MATTER_TYPE_ZH.items()},
    )


@router.get("/bundles/{code}", response_class=HTMLResponse)
def bundle_page(request: Request, code: str, ctx: CtxDep, actor: ActorDep) -> Response:
    bundle = bundles.get_bundle(ctx, actor, code)
    return render(
        request,
        "services/bundle.html",
        bundle=bundle,
        idempotency_key=uuid.uuid4().hex,
        values={},
        error=None,
    )


@router.post("/bundles/{code}/apply", response_class=HTMLResponse)
async def apply(request: Request, code: str, ctx: CtxDep, actor: ActorDep) -> Response:
    form = await request.form()
    check_csrf(request, str(form.get("csrf_token") or ""))
    _require_user(actor)
    bundle = bundles.get_bundle(ctx, actor, code)
    raw = {k: str(v) for k, v in form.items() if isinstance(v, str)}
    data = _coerce(bundle.merged_form, raw)
    try:
        materials = await _uploads(ctx, actor, form, [m["code"] for m in bundle.merged_materials])
        view = applications.submit(
            ctx, actor, code, data, materials, raw.get("idempotency_key", "")
        )
    except XietongError as error:
        return render(
            request,
            "services/bundle.html",
            status_code=error.status,
            bundle=bundle,
            idempotency_key=raw.get("idempotency_key") or uuid.uuid4().hex,
            values=raw,
            error=_error_text(request, error),
            field_errors={e.get("field"): e for e in (error.details or {}).get("errors", [])}
            if isinstance(error.details, dict)
            else {},
        )
    _flash(
        request,
        f"申请已提交，办件编号 {view.number}"
        if language(request) == "zh-CN"
        else f"Submitted: {view.number}",
    )
    return RedirectResponse(f"/services/applications/{view.number}", status_code=303)


@router.get("/mine", response_class=HTMLResponse)
def mine(request: Request, ctx: CtxDep, actor: ActorDep) -> Response:
    _require_user(actor)
    return render(request, "services/mine.html", items=applications.my_applications(ctx, actor))


@router.get("/applications/{number}", response_class=HTMLResponse)
def application_page(request: Request, number: str, ctx: CtxDep, actor: ActorDep) -> Response:
    _require_user(actor)
    view = applications.get_application(ctx, actor, number)
    bundle = bundles.get_bundle(ctx, actor, view.bundle_code)
    return render(
        request,
        "services/application.html",
        app=view,
        bundle=bundle,
        flash=_take_flash(request),
        levels=RATING_LEVELS,
        status_en={k.value: v for k, v in SUB_CASE_STATUS_EN.items()},
        is_applicant=actor.kind == "user" and actor.id == view.applicant_user_id,
        departments={s.department_id: s.department_name for s in view.sub_cases},
        schemas={m.matter_code: m for m in bundle.matters},
        field_titles=bundle.merged_form.get("properties", {}),
        material_names={m["code"]: m["name"] for m in bundle.merged_materials},
    )


@router.post("/applications/{number}/supplement/{sub_case_id}")
async def supplement(
    request: Request, number: str, sub_case_id: int, ctx: CtxDep, actor: ActorDep
) -> Response:
    form = await request.form()
    check_csrf(request, str(form.get("csrf_token") or ""))
    _require_user(actor)
    try:
        view = applications.get_application(ctx, actor, number)
        sub = next(s for s in view.sub_cases if s.id == sub_case_id)
        request_ = sub.supplement or {}
        matter = catalogue.get_matter(ctx, actor, sub.matter_code)
        raw = {k: str(v) for k, v in form.items() if isinstance(v, str)}
        fields = {
            k: v
            for k, v in _coerce(matter.form_schema, raw).items()
            if k in request_.get("fields", [])
        }
        materials = await _uploads(ctx, actor, form, list(request_.get("materials", [])))
        applications.supplement(ctx, actor, number, sub_case_id, fields, materials)
        _flash(
            request,
            "补正材料已提交，该事项恢复办理" if language(request) == "zh-CN" else "Supplement sent",
        )
    except (XietongError, StopIteration) as error:
        text = _error_text(request, error) if isinstance(error, XietongError) else "Not found"
        _flash(request, text, "error")
    return RedirectResponse(f"/services/applications/{number}", status_code=303)


@router.post("/applications/{number}/rate")
async def rate(request: Request, number: str, ctx: CtxDep, actor: ActorDep) -> Response:
    form = await request.form()
    check_csrf(request, str(form.get("csrf_token") or ""))
    _require_user(actor)
    departments: dict[int, dict[str, Any]] = {}
    for key, value in form.items():
        if key.startswith("level_dept_") and isinstance(value, str):
            dept = int(key.removeprefix("level_dept_"))
            departments[dept] = {
                "level": int(value) if value.isdigit() else value,
                "comment": str(form.get(f"comment_dept_{dept}") or ""),
            }
    bundle_level = str(form.get("level_bundle") or "")
    try:
        ratings.rate(
            ctx,
            actor,
            number,
            bundle={
                "level": int(bundle_level) if bundle_level.isdigit() else bundle_level,
                "comment": str(form.get("comment_bundle") or ""),
            },
            departments=departments,
        )
        _flash(request, "感谢您的评价" if language(request) == "zh-CN" else "Thank you for rating")
    except XietongError as error:
        _flash(request, _error_text(request, error), "error")
    return RedirectResponse(f"/services/applications/{number}#rating", status_code=303)


@router.get("/verify", response_class=HTMLResponse)
def verify_page(request: Request, ctx: CtxDep) -> Response:
    return render(
        request,
        "services/verify.html",
        key=results.public_key(ctx),
        result=None,
        content="",
        signature="",
    )


@router.post("/verify", response_class=HTMLResponse)
async def verify_submit(request: Request, ctx: CtxDep) -> Response:
    form = await request.form()
    check_csrf(request, str(form.get("csrf_token") or ""))
    content, signature = str(form.get("content") or ""), str(form.get("signature") or "").strip()
    try:
        result: Any = results.verify(ctx, content, signature)
    except XietongError as error:
        result = {"error": error.message(language(request))}
    return render(
        request,
        "services/verify.html",
        key=results.public_key(ctx),
        result=result,
        content=content,
        signature=signature,
    )


# -- workbench --


@router.get("/workbench", response_class=HTMLResponse)
def workbench_page(request: Request, ctx: CtxDep, actor: ActorDep, tab: str = "todo") -> Response:
    _require_user(actor)
    items = workbench.work_list(ctx, actor, done=tab == "done")
    return render(
        request, "services/workbench.html", tab=tab, items=items, flash=_take_flash(request)
    )


@router.get("/workbench/{sub_case_id}", response_class=HTMLResponse)
def sub_case_page(request: Request, sub_case_id: int, ctx: CtxDep, actor: ActorDep) -> Response:
    _require_user(actor)
    detail = workbench.get_sub_case(ctx, actor, sub_case_id)
    return render(request, "services/sub_case.html", d=detail, flash=_take_flash(request))


@router.get("/workbench/{sub_case_id}/materials/{code}")
def sub_case_material(sub_case_id: int, code: str, ctx: CtxDep, actor: ActorDep) -> Response:
    _require_user(actor)
    data, media_type, _name = workbench.material_bytes(ctx, actor, sub_case_id, code)
    return Response(data, media_type=media_type, headers={"X-Content-Type-Options": "nosniff"})


@router.post("/workbench/{sub_case_id}")
async def sub_case_act(
    request: Request, sub_case_id: int, ctx: CtxDep, actor: ActorDep
) -> Response:
    form = await request.form()
    check_csrf(request, str(form.get("csrf_token") or ""))
    _require_user(actor)
    op = str(form.get("op") or "")
    zh = language(request) == "zh-CN"
    try:
        if op == "approve":
            detail = workbench.get_sub_case(ctx, actor, sub_case_id)
            raw = {k.removeprefix("out_"): str(v) for k, v in form.items() if k.startswith("out_")}
            spec = {"properties": {o["name"]: {"type": o["type"]} for o in detail.outputs_spec}}
            workbench.approve(
                ctx,
                actor,
                sub_case_id,
                outputs=_coerce(spec, raw),
                opinion=str(form.get("opinion") or ""),
            )
            _flash(request, "已办结" if zh else "Approved")
        elif op == "refuse":
            workbench.refuse(
                ctx,
                actor,
                sub_case_id,
                kind=str(form.get("kind") or ""),
                reason=str(form.get("reason") or ""),
            )
            _flash(request, "已作出不予办理决定" if zh else "Refused")
        elif op == "supplement":
            workbench.request_supplement(
                ctx,
                actor,
                sub_case_id,
                reason=str(form.get("reason") or ""),
                fields=[str(v) for v in form.getlist("fields")],
                materials=[str(v) for v in form.getlist("materials")],
            )
            _flash(request, "已发出补正告知" if zh else "Supplement requested")
        else:
            raise InvalidInput("未知操作", "Unknown operation", code="unknown_operation")
    except XietongError as error:
        _flash(request, _error_text(request, error), "error")
    return RedirectResponse(f"/services/workbench/{sub_case_id}", status_code=303)


@router.get("/rectifications", response_class=HTMLResponse)
def rectifications_page(request: Request, ctx: CtxDep, actor: ActorDep) -> Response:
    _require_user(actor)
    items = ratings.list_rectifications(ctx, actor)
    stats = (
        ratings.department_statistics(ctx, actor) if _may(actor, "services.statistics.read") else []
    )
    return render(
        request,
        "services/rectifications.html",
        items=items,
        stats=stats,
        flash=_take_flash(request),
    )


def _may(actor: Actor, action: str) -> bool:
    from xietong.kernel.access import can

    return can(actor, action)


@router.post("/rectifications/{rectification_id}")
async def rectification_complete(
    request: Request, rectification_id: int, ctx: CtxDep, actor: ActorDep
) -> Response:
    form = await request.form()
    check_csrf(request, str(form.get("csrf_token") or ""))
    _require_user(actor)
    try:
        ratings.complete_rectification(ctx, actor, rectification_id, str(form.get("outcome") or ""))
        _flash(
            request,
            "整改情况已反馈给申请人" if language(request) == "zh-CN" else "Outcome reported",
        )
    except XietongError as error:
        _flash(request, _error_text(request, error), "error")
    return RedirectResponse("/services/rectifications", status_code=303)
