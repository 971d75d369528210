"""Reactions to the workflow engine: a matter's process that ends outside the
workbench (through the generic task API, a timeout's automatic approval, an
administrator's 终止) still moves its sub-case on.

The bus delivers at least once and the consumer runs inside the transaction that holds
its processed-event marker, so the sub-case's change, its audit leaf and its events
commit with the marker. A sub-case that already moved on (the workbench concluded it
in the same transaction as the task) is left alone.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from xietong.apps.services import progress
from xietong.apps.services.models import Application, SubCase
from xietong.apps.services.vocab import RefusalKind, SubCaseStatus
from xietong.kernel import audit, clock
from xietong.kernel.access import WORKER
from xietong.kernel.context import Context
from xietong.kernel.events import to_cloudevent
from xietong.kernel.outbox import row_values, write_events
from xietong.kernel.uow import UnitOfWork
from xietong.kernel.workflow._run import Run
from xietong.kernel.workflow.store import WfInstance, WfVariable


class JoinedUnit(UnitOfWork):
    """A unit of work inside a transaction someone else commits (the consumer's)."""

    def __init__(self, ctx: Context, session: Session) -> None:
        super().__init__(ctx, WORKER)
        self.session = session

    def commit(self) -> None:
        if not self._entries:
            raise RuntimeError("a command must record at least one audit entry")
        self.session.flush()
        moment = clock.now()
        if self._events:
            rows = [
                row_values(
                    to_cloudevent(event, event_id=clock.new_id(), time=moment, module=module),
                    created_at=moment,
                )
                for event, module in self._events
            ]
            write_events(self.session.connection(), rows)
        self.audit_indexes = audit.append(self.session, self._entries, now=moment)
        self.committed = True


def _sub_case(session: Session, event: dict[str, Any]) -> SubCase | None:
    data = event.get("data") or {}
    key = data.get("business_key") or ""
    if not key.startswith(progress.BUSINESS_PREFIX):
        return None
    try:
        sub_id = int(key[len(progress.BUSINESS_PREFIX) :])
    except ValueError:
        return None
    sub = session.get(SubCase, sub_id)
    if sub is None or sub.instance_id != data.get("instance_id"):
        return None
    if sub.status not in (SubCaseStatus.PROCESSING, SubCaseStatus.SUPPLEMENT):
        return None
    return sub


def on_instance_ended(ctx: Context, event: dict[str, Any], session: Session) -> None:
    sub = _sub_case(session, event)
    if sub is None:
        return
    uow = JoinedUnit(ctx, session)
    run = Run(uow)
    case = progress.Case(run, session.get_one(Application, sub.application_id))
    sub = next(s for s in case.subs if s.id == sub.id)
    instance = session.get_one(WfInstance, sub.instance_id)
    if event["type"] == "workflow.instance.completed":
        raw = session.scalar(
            select(WfVariable.value).where(
                WfVariable.instance_id == instance.id, WfVariable.name == "outputs"
            )
        )
        try:
            outputs = progress.check_outputs(case.matter(sub), raw or {})
        except Exception:
            progress.refuse(
                case,
                sub,
                RefusalKind.PERMISSION,
                "流程结束但未登记办理结果，请联系办理部门",
                "workflow",
            )
            action = "services.sub_case.incomplete"
        else:
            progress.conclude(case, sub, outputs, None, "workflow")
            action = "services.sub_case.conclude"
    else:
        reason = (event.get("data") or {}).get("reason") or "流程已终止"
        progress.refuse(case, sub, RefusalKind.PERMISSION, f"办理流程已终止：{reason}", "workflow")
        action = "services.sub_case.terminated"
    uow.record(action, f"services.sub_case:{sub.id}", {"instance_id": instance.id})
    run.finish()
    uow.commit()
