"""办件: submit once, read one's applications, answer a 补正 request.

Submission is idempotent per applicant and ``Idempotency-Key``: the same key with the
same body returns the application already made (``created`` is False); the same key
with another body is a conflict. Two concurrent submissions with one key race on the
unique (applicant, key) constraint: the loser's transaction rolls back — its number
too, so numbers stay gap-free — and it returns the winner's application.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import bindparam, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from xietong.apps.services import forms, numbering, progress
from xietong.apps.services.events import MODULE, ApplicationSubmitted
from xietong.apps.services.models import (
    Application,
    ApplicationMaterial,
    Bundle,
    BundleMatter,
    Matter,
    Rating,
    Rectification,
    ResultDocument,
    SubCase,
    Upload,
)
from xietong.apps.services.views import (
    ApplicationView,
    DocumentView,
    MaterialView,
    SubCaseView,
)
from xietong.apps.services.vocab import (
    RATING_LEVELS,
    SUB_CASE_STATUS_ZH,
    BundleStatus,
    SubCaseStatus,
)
from xietong.kernel import clock
from xietong.kernel.access import Actor, Resource, authorize, can
from xietong.kernel.calendar import to_local_date
from xietong.kernel.context import Context
from xietong.kernel.errors import Conflict, Forbidden, InvalidInput, NotFound
from xietong.kernel.org.models import Department
from xietong.kernel.uow import UnitOfWork
from xietong.kernel.workflow._run import Run
from xietong.kernel.workflow.events import InstanceResumed

SUBMIT = "services.application.submit"
READ_STAFF = "services.sub_case.read"
MAX_KEY = 128


def _digest(bundle_code: str, form: dict[str, Any], materials: dict[str, str]) -> str:
    body = json.dumps([bundle_code, form, materials], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def submit(
    ctx: Context,
    actor: Actor,
    bundle_code: str,
    form: dict[str, Any],
    materials: dict[str, str],
    idempotency_key: str,
) -> ApplicationView:
    """Apply once for a bundle: the merged form, each material once (by SHA-256)."""
    authorize(actor, SUBMIT)
    if actor.kind != "user" or actor.id is None:
        raise InvalidInput(
            "仅个人账号可申请", "Only a person's account may apply", code="not_a_user"
        )
    key = (idempotency_key or "").strip()
    if not key or len(key) > MAX_KEY:
        raise InvalidInput(
            "请提供 Idempotency-Key（1–128 个字符）",
            "An Idempotency-Key (1–128 characters) is required",
            code="idempotency_key_required",
        )
    if not isinstance(form, dict) or not isinstance(materials, dict):
        raise InvalidInput(
            "申请表与材料须为对象", "Form and materials must be objects", code="invalid_form"
        )
    digest = _digest(bundle_code, form, materials)
    found = _existing(ctx, actor.id, key, digest)
    if found is not None:
        return found
    progress.calendar_ready(ctx)
    try:
        return _submit(ctx, actor, bundle_code, form, materials, key, digest)
    except IntegrityError:
        found = _existing(ctx, actor.id, key, digest)
        if found is None:
            raise
        return found


def _existing(ctx: Context, user_id: int, key: str, digest: str) -> ApplicationView | None:
    with ctx.db.read() as session:
        found = session.execute(_BY_KEY, {"user": user_id, "key": key}).first()
        if found is None:
            return None
        app_id, number, request_digest = found
        if request_digest != digest:
            raise Conflict(
                "该 Idempotency-Key 已用于另一份申请",
                "This Idempotency-Key was used for a different application",
                code="idempotency_key_reused",
                details={"number": number},
            )
        return application_view(session, session.get_one(Application, app_id))


# a first submission (nearly every one) reads three columns, not a whole application
_BY_KEY = select(Application.id, Application.number, Application.request_digest).where(
    Application.applicant_user_id == bindparam("user"),
    Application.idempotency_key == bindparam("key"),
)


def _submit(
    ctx: Context,
    actor: Actor,
    bundle_code: str,
    form: dict[str, Any],
    materials: dict[str, str],
    key: str,
    digest: str,
) -> ApplicationView:
    with UnitOfWork(ctx, actor) as uow:
        session = uow.session
        bundle = session.scalar(select(Bundle).where(Bundle.code == bundle_code))
        if bundle is None or bundle.status != BundleStatus.PUBLISHED:
            raise NotFound(
                f"一件事不存在或未发布：{bundle_code}",
                f"No published bundle {bundle_code}",
                code="bundle_not_found",
            )
        forms.validate(bundle.merged_form, form, what_zh="申请表", what_en="The form")
        uploads = _materials(session, actor.id or 0, bundle.merged_materials, materials)
        now = clock.now()
        today = to_local_date(now)
        number = numbering.next_number(session, bundle.region_code, today)
        due = (
            ctx.calendar.add_working_days(today, bundle.promised_days, bundle.region_code)
            if ctx.calendar
            else None
        )
        app = Application(
            number=number,
            bundle_id=bundle.id,
            applicant_user_id=actor.id,
            applicant_name=actor.display_name or actor.name,
            idempotency_key=key,
            request_digest=digest,
            form=form,
            status="processing",
            submitted_at=now,
            due_date=due.day if due else today,
            due_estimated=bool(due and due.estimated),
        )
        session.add(app)
        session.flush()
        # plain multi-row INSERTs: nothing here needs the rows back as objects
        material_rows = [
            {
                "application_id": app.id,
                "code": material["code"],
                "name": material["name"],
                "sha256": upload.sha256,
                "size": upload.size,
                "media_type": upload.media_type,
                "filename": upload.filename,
                "revision": 1,
                "uploaded_at": now,
            }
            for material in bundle.merged_materials
            if (upload := uploads.get(material["code"])) is not None
        ]
        if material_rows:
            session.execute(insert(ApplicationMaterial), material_rows)
        from xietong.apps.services.bundles import _members

        sub_rows = []
        for position, (_link, matter) in enumerate(_members(session, bundle.id)):
            own = set(matter.form_schema.get("properties", {}))
            sub_rows.append(
                {
                    "application_id": app.id,
                    "matter_id": matter.id,
                    "department_id": matter.department_id,
                    "position": position,
                    "status": SubCaseStatus.WAITING.value,
                    "form": {k: v for k, v in form.items() if k in own},  # data minimisation
                    "outputs": {},
                }
            )
        session.execute(insert(SubCase), sub_rows)
        uow.record(
            "services.application.submit",
            f"services.application:{number}",
            {"bundle": bundle.code, "materials": sorted(uploads), "idempotency_key": key},
        )
        uow.emit(ApplicationSubmitted(number, bundle.code), MODULE)
        run = Run(uow)
        case = progress.Case(run, app)
        progress.advance(case)
        run.finish()
        view = _submitted_view(case, bundle, material_rows)
        uow.commit()
    return view


def _materials(
    session: Session, user_id: int, wanted: list[dict[str, Any]], given: dict[str, str]
) -> dict[str, Upload]:
    codes = {m["code"]: m for m in wanted}
    unknown = sorted(set(given) - set(codes))
    if unknown:
        raise InvalidInput(
            f"本一件事不需要材料：{unknown[0]}",
            f"Unknown material: {unknown[0]}",
            code="unknown_material",
            details={"unknown": unknown},
        )
    missing = [m["name"] for m in wanted if m.get("required") and not given.get(m["code"])]
    if missing:
        raise InvalidInput(
            f"缺少材料：{'、'.join(missing)}",
            f"Missing materials: {', '.join(missing)}",
            code="missing_material",
            details={"missing": missing},
        )
    found: dict[str, Upload] = {}
    wanted_shas = {str(sha).lower() for sha in given.values()}
    mine = {
        u.sha256: u
        for u in session.scalars(
            select(Upload).where(Upload.user_id == user_id, Upload.sha256.in_(wanted_shas))
        )
    }
    for code, sha in given.items():
        upload = mine.get(str(sha).lower())
        if upload is None:
            raise InvalidInput(
                f"材料 {codes[code]['name']} 未上传（{str(sha)[:12]}…）",
                f"Material {code} was not uploaded by you",
                code="material_not_uploaded",
                details={"material": code},
            )
        found[code] = upload
    return found


def read_view(ctx: Context, application_id: int, *, created: bool = False) -> ApplicationView:
    with ctx.db.read() as session:
        return application_view(
            session, session.get_one(Application, application_id), created=created
        )


def load_application(session: Session, number: str) -> Application:
    row = session.scalar(select(Application).where(Application.number == number))
    if row is None:
        raise NotFound.of("办件", "Application", number)
    return row


def may_read(session: Session, actor: Actor, app: Application) -> bool:
    if actor.kind == "user" and actor.id == app.applicant_user_id:
        return True
    if actor.is_admin:
        return True
    departments = session.scalars(
        select(SubCase.department_id).where(SubCase.application_id == app.id)
    )
    return any(
        can(actor, READ_STAFF, Resource(kind="services.sub_case", department_id=d))
        for d in departments
    )


def get_application(ctx: Context, actor: Actor, number: str) -> ApplicationView:
    authorize(actor, "services.application.read")
    with ctx.db.read() as session:
        app = load_application(session, number)
        if not may_read(session, actor, app):
            raise Forbidden(
                "无权查看该办件", "Not allowed to read this application", code="forbidden"
            )
        return application_view(session, app)


def my_applications(ctx: Context, actor: Actor) -> list[ApplicationView]:
    authorize(actor, "services.application.read")
    with ctx.db.read() as session:
        rows = session.scalars(
            select(Application)
            .where(Application.applicant_user_id == actor.id)
            .order_by(Application.id.desc())
            .limit(200)
        )
        return [application_view(session, row) for row in rows]


# What the view reads, as plain columns (no ORM objects, and none of the forms, schemas
# and materials lists a view never shows), built once with bound parameters.
_VIEW_SUB_CASES = (
    select(
        SubCase.id,
        SubCase.department_id,
        SubCase.status,
        SubCase.instance_id,
        SubCase.outputs,
        SubCase.opinion,
        SubCase.refusal_kind,
        SubCase.reason,
        SubCase.supplement,
        SubCase.started_at,
        SubCase.due_date,
        SubCase.ended_at,
        Matter.code,
        Matter.name,
        Matter.outputs,
        BundleMatter.depends_on,
        Department.name,
    )
    .join(Matter, Matter.id == SubCase.matter_id)
    .join(Department, Department.id == SubCase.department_id)
    .outerjoin(
        BundleMatter,
        (BundleMatter.matter_id == SubCase.matter_id)
        & (BundleMatter.bundle_id == bindparam("bundle")),
    )
    .where(SubCase.application_id == bindparam("app"))
    .order_by(SubCase.position)
)
_VIEW_BUNDLE = select(Bundle.code, Bundle.name).where(Bundle.id == bindparam("bundle"))
MATERIALS_OF_APPLICATION = (  # also the sub-case page's
    select(
        ApplicationMaterial.code,
        ApplicationMaterial.name,
        ApplicationMaterial.sha256,
        ApplicationMaterial.size,
        ApplicationMaterial.media_type,
        ApplicationMaterial.filename,
        ApplicationMaterial.revision,
    )
    .where(ApplicationMaterial.application_id == bindparam("app"))
    .order_by(ApplicationMaterial.id)
)
_VIEW_DOCUMENTS = (
    select(
        ResultDocument.id,
        ResultDocument.title,
        ResultDocument.sha256,
        ResultDocument.signature,
        ResultDocument.content,
        ResultDocument.sub_case_id,
        ResultDocument.created_at,
    )
    .where(ResultDocument.application_id == bindparam("app"))
    .order_by(ResultDocument.id)
)


def application_view(
    session: Session, app: Application, *, created: bool = False
) -> ApplicationView:
    keys = {"app": app.id, "bundle": app.bundle_id}
    bundle_code, bundle_name = session.execute(_VIEW_BUNDLE, keys).one()
    subs = [
        _sub_case_view(*row[:12], row[12], row[13], row[14], row[15], row[16])
        for row in session.execute(_VIEW_SUB_CASES, keys)
    ]
    names = {s.department_id: s.department_name for s in subs}
    # ratings (and the rectifications they open) come only after delivery
    rated = app.delivered_at is not None
    ratings = (
        session.scalars(select(Rating).where(Rating.application_id == app.id).order_by(Rating.id))
        if rated
        else []
    )
    fixes = (
        session.scalars(
            select(Rectification)
            .where(Rectification.application_id == app.id)
            .order_by(Rectification.id)
        )
        if rated
        else []
    )
    return _view(
        app,
        bundle_code,
        bundle_name,
        subs,
        [MaterialView(*row) for row in session.execute(MATERIALS_OF_APPLICATION, keys)],
        [
            DocumentView(doc_id, title, sha, sig, json.loads(content), sub_id, at)
            for doc_id, title, sha, sig, content, sub_id, at in session.execute(
                _VIEW_DOCUMENTS, keys
            )
        ],
        [
            {
                "target": r.target,
                "department_id": r.department_id,
                "department_name": names.get(r.department_id or 0, ""),
                "level": r.level,
                "level_zh": RATING_LEVELS[r.level],
                "comment": r.comment,
            }
            for r in ratings
        ],
        [
            {
                "id": f.id,
                "department_id": f.department_id,
                "department_name": names.get(f.department_id, ""),
                "status": f.status,
                "due_date": f.due_date.isoformat(),
                "outcome": f.outcome,
            }
            for f in fixes
        ],
        created=created,
    )


def _sub_case_view(
    sub_id: int,
    department_id: int,
    status: str,
    instance_id: int | None,
    outputs: dict[str, Any] | None,
    opinion: str | None,
    refusal_kind: str | None,
    reason: str | None,
    supplement: dict[str, Any] | None,
    started_at: Any,
    due_date: Any,
    ended_at: Any,
    matter_code: str,
    matter_name: str,
    matter_outputs: list[dict[str, Any]],
    depends_on: list[str] | None,
    department_name: str,
) -> SubCaseView:
    return SubCaseView(
        id=sub_id,
        matter_code=matter_code,
        matter_name=matter_name,
        department_id=department_id,
        department_name=department_name,
        status=status,
        status_zh=SUB_CASE_STATUS_ZH[SubCaseStatus(status)],
        instance_id=instance_id,
        outputs=dict(outputs or {}),
        opinion=opinion,
        refusal_kind=refusal_kind,
        reason=reason,
        supplement=supplement,
        started_at=started_at,
        due_date=due_date,
        ended_at=ended_at,
        depends_on=list(depends_on) if depends_on is not None else [],
        output_titles={o["name"]: o["title"] for o in matter_outputs},
    )


def _view(
    app: Application,
    bundle_code: str,
    bundle_name: str,
    sub_cases: list[SubCaseView],
    materials: list[MaterialView],
    documents: list[DocumentView],
    ratings: list[dict[str, Any]],
    rectifications: list[dict[str, Any]],
    *,
    created: bool,
) -> ApplicationView:
    return ApplicationView(
        id=app.id,
        number=app.number,
        bundle_code=bundle_code,
        bundle_name=bundle_name,
        applicant_user_id=app.applicant_user_id,
        applicant_name=app.applicant_name,
        status=app.status,
        submitted_at=app.submitted_at,
        due_date=app.due_date,
        due_estimated=app.due_estimated,
        delivered_at=app.delivered_at,
        sub_cases=sub_cases,
        materials=materials,
        documents=documents,
        notice=app.notice,
        ratings=ratings,
        rectifications=rectifications,
        created=created,
    )


def _submitted_view(
    case: progress.Case, bundle: Bundle, material_rows: list[dict[str, Any]]
) -> ApplicationView:
    """The view of an application just submitted, from what this transaction wrote
    and holds (after ``run.finish``): the same as ``application_view`` would read back
    after commit, without a read transaction of five queries. A new application has no
    ratings or rectifications yet."""
    subs = []
    for s in case.subs:
        matter, link = case.matter(s), case.links.get(s.matter_id)
        subs.append(
            _sub_case_view(
                s.id,
                s.department_id,
                s.status,
                s.instance_id,
                s.outputs,
                s.opinion,
                s.refusal_kind,
                s.reason,
                s.supplement,
                s.started_at,
                s.due_date,
                s.ended_at,
                matter.code,
                matter.name,
                matter.outputs,
                link.depends_on if link is not None else None,
                case.department(s.department_id).name,
            )
        )
    return _view(
        case.app,
        bundle.code,
        bundle.name,
        subs,
        [
            MaterialView(
                m["code"], m["name"], m["sha256"], m["size"], m["media_type"], m["filename"], 1
            )
            for m in material_rows
        ],
        [
            DocumentView(
                d.id,
                d.title,
                d.sha256,
                d.signature,
                json.loads(d.content),
                d.sub_case_id,
                d.created_at,
            )
            for d in case.documents
        ],
        [],
        [],
        created=True,
    )


def supplement(
    ctx: Context,
    actor: Actor,
    number: str,
    sub_case_id: int,
    fields: dict[str, Any],
    materials: dict[str, str],
) -> ApplicationView:
    """The applicant answers a 补正 request once; only that matter resumes."""
    authorize(actor, SUBMIT)
    if not isinstance(fields, dict) or not isinstance(materials, dict):
        raise InvalidInput(
            "补正内容须为对象", "Fields and materials must be objects", code="invalid_form"
        )
    progress.calendar_ready(ctx)
    with UnitOfWork(ctx, actor) as uow:
        session = uow.session
        app = load_application(session, number)
        if actor.id != app.applicant_user_id:
            raise Forbidden(
                "只有申请人可以补正", "Only the applicant may supplement", code="not_applicant"
            )
        sub = session.get(SubCase, sub_case_id)
        if sub is None or sub.application_id != app.id:
            raise NotFound.of("子件", "Sub-case", sub_case_id)
        if sub.status != SubCaseStatus.SUPPLEMENT or not sub.supplement:
            raise Conflict(
                "该事项没有待补正的内容", "Nothing to supplement", code="no_supplement_request"
            )
        request = sub.supplement
        if set(fields) != set(request.get("fields", [])) or set(materials) != set(
            request.get("materials", [])
        ):
            raise InvalidInput(
                "请按补正告知补充且仅补充所列的字段与材料",
                "Supply exactly the fields and materials the request lists",
                code="supplement_mismatch",
                details={
                    "fields": request.get("fields", []),
                    "materials": request.get("materials", []),
                },
            )
        matter = session.get_one(Matter, sub.matter_id)
        new_form = {**sub.form, **fields}
        forms.validate(
            matter.form_schema, new_form, what_zh=f"“{matter.name}”补正", what_en=matter.code
        )
        wanted = [m for m in matter.materials if m["code"] in materials]
        uploads = _materials(session, actor.id or 0, wanted, materials)
        now = clock.now()
        for code, upload in uploads.items():
            row = session.scalar(
                select(ApplicationMaterial).where(
                    ApplicationMaterial.application_id == app.id, ApplicationMaterial.code == code
                )
            )
            name = next(m["name"] for m in wanted if m["code"] == code)
            if row is None:
                row = ApplicationMaterial(application_id=app.id, code=code, name=name, revision=0)
                session.add(row)
            row.sha256, row.size, row.media_type = upload.sha256, upload.size, upload.media_type
            row.filename, row.uploaded_at, row.revision = (
                upload.filename,
                now,
                (row.revision or 0) + 1,
            )
        sub.form = new_form
        app.form = {**app.form, **fields}
        sub.supplement = {**request, "answered_at": now.isoformat()}
        sub.supplements += 1
        sub.status = SubCaseStatus.PROCESSING.value
        run = Run(uow)
        if sub.instance_id is not None:
            state = run.instance(sub.instance_id)
            if state.row.status == "suspended":
                state.row.status = "running"
                run.history(state, "instance.resumed", activity="补正后恢复办理")
                row_ = state.row
                uow.emit(
                    InstanceResumed(row_.id, row_.process_key, row_.business_key), module="workflow"
                )
        case = progress.Case(run, app)
        case.changed(next(s for s in case.subs if s.id == sub.id))
        uow.record(
            "services.application.supplement",
            f"services.application:{number}",
            {"sub_case_id": sub.id, "fields": sorted(fields), "materials": sorted(materials)},
        )
        run.finish()
        app_id = app.id
        uow.commit()
    return read_view(ctx, app_id)
