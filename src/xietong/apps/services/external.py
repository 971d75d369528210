"""Answers of external systems: a matter handled outside the platform (the bank that
opens an enterprise's account) answers later through the API.

The matter's process sends the request as a signed webhook (a service task) and then
waits at a message catch named ``MESSAGE`` whose correlation key is the *reference*
``<application number>/<matter code>``. The external system — the connected system
(接入系统) of the matter's department whose code the matter names
(``Matter.external_system_code``) — answers with its API key; the answer's
outputs are checked against the matter's declared outputs *before* anything moves, then
the waiting token is correlated and — when that ends the matter's process — the
sub-case concludes, all in one transaction.

A wrong key, a person instead of a system, a system without the external role, an
unknown reference, another department's or one whose matter names another system (the
same 404, so numbers cannot be probed), bad outputs, or a matter that is no longer
waiting (the bank answered after its time ran out and a clerk took over) are refused
and change nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from xietong.apps.services import progress
from xietong.apps.services.models import Application, Matter, SubCase
from xietong.apps.services.vocab import (
    EXTERNAL_ANSWER_MESSAGE,
    REFUSAL_ZH,
    RefusalKind,
    SubCaseStatus,
)
from xietong.apps.services.workbench import MAX_TEXT, require_processing
from xietong.kernel.access import Actor, Resource, authorize, can
from xietong.kernel.context import Context
from xietong.kernel.errors import Conflict, Forbidden, InvalidInput, NotFound
from xietong.kernel.uow import UnitOfWork
from xietong.kernel.workflow import runtime
from xietong.kernel.workflow._run import Run
from xietong.kernel.workflow.store import WfInstance, WfToken

ACTION = "services.external.answer"
MESSAGE = EXTERNAL_ANSWER_MESSAGE


def reference(application_number: str, matter_code: str) -> str:
    return f"{application_number}/{matter_code}"


@dataclass(frozen=True)
class AnswerResult:
    reference: str
    sub_case_id: int
    status: str  # the sub-case's status after the answer


def _split(ref: str) -> tuple[str, str]:
    number, _, code = (ref or "").strip().partition("/")
    if not number or not code or len(ref) > 200:
        raise InvalidInput(
            "业务编号格式应为“办件编号/事项编码”",
            "reference must be '<application number>/<matter code>'",
            code="invalid_reference",
        )
    return number, code


def answer(
    ctx: Context,
    actor: Actor,
    ref: str,
    *,
    outputs: dict[str, Any] | None = None,
    refused: bool = False,
    reason: str | None = None,
) -> AnswerResult:
    """The external system's answer: outputs (办结) or a refusal with a reason."""
    authorize(actor, ACTION)
    if actor.kind != "system":
        raise Forbidden(
            "仅接入系统（API 密钥）可提交外部办理结果",
            "Only a connected system (API key) may answer for an external system",
            code="not_a_connected_system",
        )
    number, code = _split(ref)
    text = (reason or "").strip()
    if refused and not text:
        raise InvalidInput("请填写不予办理的理由", "A reason is required", code="reason_required")
    if len(text) > MAX_TEXT:
        raise InvalidInput("理由过长", "Reason too long", code="text_too_long")
    progress.calendar_ready(ctx)
    with UnitOfWork(ctx, actor) as uow:
        session = uow.session
        found = session.execute(
            select(SubCase.id, SubCase.department_id, Matter.external_system_code)
            .join(Application, Application.id == SubCase.application_id)
            .join(Matter, Matter.id == SubCase.matter_id)
            .where(Application.number == number, Matter.code == code)
        ).first()
        # Another department's reference, or one whose matter waits for another system
        # (or names none), answers exactly like an unknown one: a 403 would tell a
        # caller which application numbers exist.
        if (
            found is None
            or found.external_system_code != actor.name
            or not can(
                actor, ACTION, Resource("services.sub_case", found.department_id, id=found.id)
            )
        ):
            raise NotFound(
                f"没有该业务：{ref}", f"No such reference: {ref}", code="unknown_reference"
            )
        sub = session.get_one(SubCase, found.id)
        app = session.get_one(Application, sub.application_id, with_for_update=not ctx.db.is_sqlite)
        run = Run(uow)
        case = progress.Case(run, app)
        sub = next(s for s in case.subs if s.id == found.id)
        require_processing(sub)
        matter = case.matter(sub)
        cleaned = {} if refused else progress.check_outputs(matter, outputs or {})
        waiting_in = _waiting(run, sub, ref)
        # lock the matter's process before the called one it waits in, the order a
        # timer of the process takes them (the other order can deadlock on PostgreSQL)
        root = run.instance(sub.instance_id if sub.instance_id is not None else waiting_in)
        state = run.instance(waiting_in)
        token = runtime.waiting_message(run, state, MESSAGE, ref)
        if token is None:
            # taken between the look-up and the lock (a timer, another answer)
            raise _not_waiting(sub)
        run.require_active(state)
        run.require_active(root)
        if refused:
            runtime.end_instance(run, root, "terminated", reason=REFUSAL_ZH[RefusalKind.PERMISSION])
            progress.refuse(case, sub, RefusalKind.PERMISSION, text, actor.label)
        else:
            runtime.deliver_message(run, state, token, {"outputs": cleaned})
            if root.row.status == "completed":
                progress.conclude(case, sub, cleaned, None, actor.label)
        uow.record(
            "services.sub_case.external_answer",
            f"services.sub_case:{sub.id}",
            {"reference": ref, "refused": refused, "outputs": sorted(cleaned)},
        )
        run.finish()
        uow.commit()
        return AnswerResult(ref, sub.id, sub.status)


def _waiting(run: Run, sub: SubCase, ref: str) -> int:
    """The instance (this sub-case's process or its called exchange) with a token
    waiting for the answer; read before the locks, so only a hint."""
    instance_id = run.session.scalar(
        select(WfToken.instance_id)
        .join(WfInstance, WfInstance.id == WfToken.instance_id)
        .where(
            WfInstance.business_key == progress.business_key(sub.id),
            WfToken.message_name == MESSAGE,
            WfToken.correlation == ref,
            WfToken.status == "waiting",
        )
        .order_by(WfToken.id)
        .limit(1)
    )
    if instance_id is None:
        raise _not_waiting(sub)
    return instance_id


def _not_waiting(sub: SubCase) -> Conflict:
    return Conflict(
        "该事项当前不在等待外部系统回执（可能已超时转人工办理）",
        "The matter is not waiting for this answer (it may have timed out to a clerk)",
        code="not_awaiting_answer",
        details={"status": SubCaseStatus(sub.status).value},
    )
