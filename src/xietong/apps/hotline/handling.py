"""办理: the department accepts or sends back (退单), replies, asks for more time (延期);
the citizen or the 回访 call rates the reply; 不满意 reopens once (重办), then escalates.

The ticket's life is a small state machine in this module (ADR 0056 says why not the
workflow engine):

    pending_dispatch ─派单→ dispatched ─受理→ in_progress ─答复→ replied ─满意/基本满意→ closed
         ↑                    │退单                  ↑                  │不满意 (first time)
         └────────────────────┘                      └──────重办─────────┘
                                                               不满意 again → escalated

Every transition is one ``UnitOfWork``: the row change, a timeline step, an audit leaf
and an event commit together. A transition from the wrong state is a 409 and changes
nothing; a missing reason or an empty reply is a 422.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from sqlalchemy import select

from xietong.apps.hotline._common import (
    DISPATCH,
    EXTENSION_DECIDE,
    FOLLOW_UP,
    HANDLE,
    MODULE,
    RATE,
    add_step,
    clear_sla,
    department_code,
    extend_sla,
    guarded,
    load_ticket,
    require_status,
    start_sla,
    text_field,
    touch,
)
from xietong.apps.hotline.dispatch import check_category
from xietong.apps.hotline.events import (
    ExtensionDecided,
    ExtensionRequested,
    TicketAccepted,
    TicketEscalated,
    TicketMerged,
    TicketRated,
    TicketReopened,
    TicketReplied,
    TicketSentBack,
)
from xietong.apps.hotline.intake import CONTACT_AD
from xietong.apps.hotline.models import (
    Correction,
    Dispatch,
    Extension,
    FollowUp,
    Knowledge,
    Ticket,
)
from xietong.apps.hotline.vocab import (
    FINAL_STATUSES,
    MAX_REOPENS,
    OPEN_STATUSES,
    RATING_NAMES,
    Status,
    by_label,
)
from xietong.kernel import clock
from xietong.kernel.access import Actor, authorize, get_action
from xietong.kernel.context import Context
from xietong.kernel.errors import Conflict, Forbidden, InvalidInput, NotFound
from xietong.kernel.uow import UnitOfWork

MAX_EXTENSION_HOURS = 70  # ten working days


def _subject(ticket: Ticket) -> str:
    return f"hotline.ticket:{ticket.number}"


def is_handler(actor: Actor, ticket: Ticket) -> bool:
    """The actor holds a handling role in the department the ticket is dispatched to."""
    return ticket.department_id is not None and ticket.department_id in actor.departments_for(
        get_action(HANDLE).roles
    )


@dataclass(frozen=True)
class Contact:
    name: str
    phone: str


def reveal_contact(ctx: Context, actor: Actor, number: str) -> Contact:
    """The citizen's name and phone in full, for the handling department only.

    Every reveal is an audit leaf (who, whose ticket, when — the leaf holds the mask, not
    the number), like the kernel's ``reveal_person_id_number``: views show only the mask.
    """
    authorize(actor, HANDLE)
    if actor.kind != "user":
        # A connected system's key is no person to answer for who looked at the number.
        raise Forbidden(
            "只有承办部门的工作人员可以查看市民的完整联系方式",
            "Only a person of the handling department may see the citizen's full contact",
            code="person_required",
        )
    with UnitOfWork(ctx, actor) as uow:
        ticket = load_ticket(uow.session, number)
        if not is_handler(actor, ticket):
            raise Forbidden(
                "只有承办部门可以查看市民的完整联系方式",
                "Only the handling department may see the citizen's full contact",
                code="not_handler",
            )
        phone = ctx.keys.decrypt(ticket.contact_cipher, CONTACT_AD).decode("ascii")
        uow.record(
            "hotline.ticket.reveal_contact",
            _subject(ticket),
            {
                "contact_masked": ticket.contact_masked,
                "department": department_code(uow.session, ticket.department_id),
            },
        )
        uow.commit()
    return Contact(ticket.contact_name, phone)


def _pending_dispatch(session, ticket: Ticket) -> Dispatch | None:  # type: ignore[no-untyped-def]
    return session.scalar(
        select(Dispatch)
        .where(Dispatch.ticket_id == ticket.id, Dispatch.outcome == "pending")
        .order_by(Dispatch.id.desc())
    )


def accept(ctx: Context, actor: Actor, number: str) -> None:
    """受理: the department takes the ticket on."""
    authorize(actor, HANDLE)
    with UnitOfWork(ctx, actor) as uow:
        session = uow.session
        ticket = load_ticket(session, number, lock=True)
        authorize(actor, HANDLE, guarded(ticket))
        require_status(ticket, Status.DISPATCHED, action_zh="受理", action_en="accept it")
        now = clock.now()
        row = _pending_dispatch(session, ticket)
        if row is not None:
            row.outcome, row.outcome_by, row.outcome_at = "accepted", actor.label, now
        ticket.status = Status.IN_PROGRESS.value
        ticket.accepted_at = now
        touch(ticket, now)
        add_step(session, ticket, actor, "accept")
        dept = department_code(session, ticket.department_id)
        uow.record("hotline.ticket.accept", _subject(ticket), {"department": dept})
        uow.emit(TicketAccepted(ticket.number, ticket.status, dept), MODULE)
        uow.commit()


def send_back(
    ctx: Context,
    actor: Actor,
    number: str,
    reason: str,
    *,
    suggested_category: str | None = None,
) -> None:
    """退单: a wrong dispatch goes back to the dispatchers, with the reason.

    The ticket's text with the category it was wrongly given is a correction; the
    category it finally gets (the department's suggestion, or the redispatch) is its
    label for the next training.
    """
    authorize(actor, HANDLE)
    reason = text_field(reason, "退单原因", "Reason for sending back", 500, code="reason_required")
    suggested = check_category(suggested_category) if suggested_category else None
    with UnitOfWork(ctx, actor) as uow:
        session = uow.session
        ticket = load_ticket(session, number, lock=True)
        authorize(actor, HANDLE, guarded(ticket))
        require_status(ticket, Status.DISPATCHED, action_zh="退单", action_en="send it back")
        now = clock.now()
        dept = department_code(session, ticket.department_id)
        row = _pending_dispatch(session, ticket)
        if row is not None:
            row.outcome, row.outcome_reason = "sent_back", reason
            row.outcome_by, row.outcome_at = actor.label, now
        session.add(
            Correction(
                ticket_id=ticket.id,
                source="send_back",
                title=ticket.title,
                text=ticket.text,
                predicted_category=ticket.predicted_category,
                wrong_category=ticket.category,
                label=suggested,
                model_version=ticket.model_version,
                created_at=now,
            )
        )
        wrong = ticket.category
        ticket.status = Status.PENDING_DISPATCH.value
        ticket.department_id = None
        clear_sla(ticket)
        touch(ticket, now)
        add_step(session, ticket, actor, "send_back", reason, category=wrong, suggested=suggested)
        uow.record(
            "hotline.ticket.send_back",
            _subject(ticket),
            {"department": dept, "reason": reason, "category": wrong, "suggested": suggested},
        )
        uow.emit(TicketSentBack(ticket.number, ticket.status, dept, reason), MODULE)
        uow.commit()


def reply(ctx: Context, actor: Actor, number: str, text: str) -> None:
    """答复: the department's answer to the citizen; merged duplicates get it too."""
    authorize(actor, HANDLE)
    text = text_field(text, "答复内容", "Reply", 5000, code="reply_required")
    with UnitOfWork(ctx, actor) as uow:
        session = uow.session
        ticket = load_ticket(session, number, lock=True)
        authorize(actor, HANDLE, guarded(ticket))
        require_status(ticket, Status.IN_PROGRESS, action_zh="答复", action_en="reply")
        now = clock.now()
        followers = session.scalars(
            select(Ticket).where(
                Ticket.merged_into_id == ticket.id, Ticket.status == Status.MERGED.value
            )
        ).all()
        for item in (ticket, *followers):
            item.reply, item.replied_at = text, now
            touch(item, now)
        ticket.status = Status.REPLIED.value
        add_step(session, ticket, actor, "reply", text, on_time=_on_time(ticket, now))
        for follower in followers:
            add_step(session, follower, actor, "reply", text, via=ticket.number)
        dept = department_code(session, ticket.department_id)
        uow.record(
            "hotline.ticket.reply",
            _subject(ticket),
            {
                "department": dept,
                "sha256": hashlib.sha256(text.encode()).hexdigest(),
                "on_time": _on_time(ticket, now),
                "followers": [f.number for f in followers],
            },
        )
        uow.emit(TicketReplied(ticket.number, ticket.status, dept), MODULE)
        uow.commit()


def _on_time(ticket: Ticket, now) -> bool | None:  # type: ignore[no-untyped-def]
    return None if ticket.due_at is None else now <= ticket.due_at


def request_extension(ctx: Context, actor: Actor, number: str, hours: int, reason: str) -> int:
    """延期: the department asks the hotline centre for more office hours."""
    authorize(actor, HANDLE)
    reason = text_field(reason, "延期理由", "Reason for the extension", 500, code="reason_required")
    if not isinstance(hours, int) or not 1 <= hours <= MAX_EXTENSION_HOURS:
        raise InvalidInput(
            f"延期时长应为 1–{MAX_EXTENSION_HOURS} 个工作小时",
            f"An extension is 1–{MAX_EXTENSION_HOURS} office hours",
            code="invalid_hours",
        )
    with UnitOfWork(ctx, actor) as uow:
        session = uow.session
        ticket = load_ticket(session, number, lock=True)
        authorize(actor, HANDLE, guarded(ticket))
        require_status(
            ticket,
            Status.DISPATCHED,
            Status.IN_PROGRESS,
            action_zh="申请延期",
            action_en="ask for an extension",
        )
        pending = session.scalar(
            select(Extension.id).where(
                Extension.ticket_id == ticket.id, Extension.status == "pending"
            )
        )
        if pending is not None:
            raise Conflict(
                "已有待审批的延期申请", "An extension request is already pending", code="pending"
            )
        now = clock.now()
        row = Extension(
            ticket_id=ticket.id,
            department_id=ticket.department_id,
            hours=hours,
            reason=reason,
            requested_by=actor.label,
            requested_at=now,
        )
        session.add(row)
        session.flush()
        touch(ticket, now)
        add_step(session, ticket, actor, "extension_requested", reason, hours=hours)
        uow.record(
            "hotline.extension.request",
            _subject(ticket),
            {"extension_id": row.id, "hours": hours, "reason": reason},
        )
        uow.emit(ExtensionRequested(ticket.number, ticket.status, row.id, hours), MODULE)
        uow.commit()
        return row.id


def decide_extension(
    ctx: Context, actor: Actor, number: str, extension_id: int, *, approve: bool, note: str = ""
) -> None:
    """The hotline centre approves (the deadline moves) or refuses a 延期 request."""
    authorize(actor, EXTENSION_DECIDE)
    note = text_field(note, "审批意见", "Opinion", 500, code="invalid_note", required=False)
    if not approve and not note:
        raise InvalidInput(
            "不同意延期须说明理由", "Say why the extension is refused", code="reason_required"
        )
    with UnitOfWork(ctx, actor) as uow:
        session = uow.session
        ticket = load_ticket(session, number, lock=True)
        row = session.get(Extension, extension_id)
        if row is None or row.ticket_id != ticket.id:
            raise NotFound.of("延期申请", "Extension request", extension_id)
        if row.status != "pending":
            raise Conflict("该延期申请已审批", "Already decided", code="already_decided")
        if ticket.status not in OPEN_STATUSES:
            require_status(ticket, *OPEN_STATUSES, action_zh="延期", action_en="extend it")
        now = clock.now()
        row.status = "approved" if approve else "rejected"
        row.decided_by, row.decided_at, row.decision_note = actor.label, now, note
        if approve:
            extend_sla(ctx, ticket, row.hours)
        touch(ticket, now)
        add_step(
            session,
            ticket,
            actor,
            "extension_approved" if approve else "extension_rejected",
            note,
            hours=row.hours,
            due_at=ticket.due_at.isoformat() if ticket.due_at else None,
        )
        uow.record(
            "hotline.extension.decide",
            _subject(ticket),
            {"extension_id": row.id, "approved": approve, "note": note},
        )
        uow.emit(ExtensionDecided(ticket.number, ticket.status, row.id, approve), MODULE)
        uow.commit()


def _check_rating(value: str) -> str:
    rating = by_label(RATING_NAMES, value)
    if rating is None:
        raise InvalidInput(
            f"评价应为 满意、基本满意 或 不满意：{value}",
            f"A rating is satisfied, basically_satisfied or unsatisfied: {value}",
            code="invalid_rating",
        )
    return rating


def token_matches(ticket: Ticket, token: str | None) -> bool:
    if not token:
        return False
    digest = hashlib.sha256(token.encode()).hexdigest()
    return hmac.compare_digest(digest, ticket.citizen_token_digest)


def rate(
    ctx: Context,
    actor: Actor,
    number: str,
    rating: str,
    *,
    note: str = "",
    citizen_token: str | None = None,
) -> str:
    """The rating of a reply: by the citizen (with their ticket key) or as a 回访 call
    record by the hotline centre. Returns the ticket's new status.

    满意 / 基本满意 close the ticket; 不满意 reopens it for the same department (重办)
    the first time, and escalates it to supervision after that. A ticket is rated once
    per reply: a second rating is a 409.
    """
    by_citizen = citizen_token is not None
    authorize(actor, RATE if by_citizen else FOLLOW_UP)
    rating = _check_rating(rating)
    note = text_field(note, "回访记录", "Note", 2000, code="invalid_note", required=False)
    with UnitOfWork(ctx, actor) as uow:
        session = uow.session
        ticket = load_ticket(session, number, lock=True)
        if by_citizen and not token_matches(ticket, citizen_token):
            raise Forbidden("工单查询码不正确", "Wrong ticket key", code="wrong_token")
        if ticket.status != Status.REPLIED:
            if ticket.rating is not None and ticket.status in FINAL_STATUSES:
                raise Conflict(
                    "该答复已评价，不能重复评价",
                    "This reply was already rated",
                    code="already_rated",
                )
            require_status(ticket, Status.REPLIED, action_zh="评价", action_en="rate it")
        now = clock.now()
        session.add(
            FollowUp(
                ticket_id=ticket.id,
                channel="citizen" if by_citizen else "call",
                rating=rating,
                note=note,
                recorded_by=actor.label if not by_citizen else "citizen",
                at=now,
            )
        )
        ticket.rating, ticket.rated_at = rating, now
        touch(ticket, now)
        add_step(
            session,
            ticket,
            actor,
            "rating" if by_citizen else "follow_up",
            note,
            rating=rating,
        )
        dept = department_code(session, ticket.department_id)
        uow.emit(TicketRated(ticket.number, ticket.status, rating), MODULE)
        if rating != "unsatisfied":
            ticket.status = Status.CLOSED.value
            ticket.closed_at = now
            _learn_reply(session, ticket, now)
        elif ticket.reopen_count < MAX_REOPENS:
            ticket.status = Status.IN_PROGRESS.value
            ticket.reopen_count += 1
            ticket.rated_at = None  # the next reply is rated afresh
            start_sla(ctx, ticket, now)
            add_step(session, ticket, actor, "reopen", note, reopen_count=ticket.reopen_count)
            uow.emit(TicketReopened(ticket.number, ticket.status, ticket.reopen_count), MODULE)
        else:
            ticket.status = Status.ESCALATED.value
            ticket.closed_at = now
            add_step(session, ticket, actor, "escalate", note)
            uow.emit(TicketEscalated(ticket.number, ticket.status, dept), MODULE)
        uow.record(
            "hotline.ticket.rate",
            _subject(ticket),
            {
                "rating": rating,
                "channel": "citizen" if by_citizen else "call",
                "status": ticket.status,
                "department": dept,
            },
        )
        uow.commit()
        return ticket.status


def _learn_reply(session, ticket: Ticket, now) -> None:  # type: ignore[no-untyped-def]
    """A reply the citizen was satisfied with joins the knowledge base."""
    if ticket.rating != "satisfied" or not ticket.reply:
        return
    session.add(
        Knowledge(
            source="ticket",
            ref=ticket.number,
            title=ticket.title,
            question=ticket.text,
            answer=ticket.reply,
            category=ticket.category,
            created_at=now,
        )
    )


def merge(ctx: Context, actor: Actor, number: str, into: str) -> None:
    """A dispatcher merges a duplicate into the ticket it repeats; it follows that one."""
    authorize(actor, DISPATCH)
    with UnitOfWork(ctx, actor) as uow:
        session = uow.session
        ticket = load_ticket(session, number, lock=True)
        target = load_ticket(session, into, lock=True)
        if target.id == ticket.id:
            raise InvalidInput("不能合并到自身", "Cannot merge a ticket into itself", code="self")
        require_status(ticket, Status.PENDING_DISPATCH, action_zh="合并", action_en="merge it")
        if target.status not in OPEN_STATUSES:
            raise Conflict(
                f"目标工单{target.number}已答复或已结束，不能合并",
                f"Ticket {target.number} is answered or finished: cannot merge into it",
                code="target_finished",
            )
        now = clock.now()
        ticket.status = Status.MERGED.value
        ticket.merged_into_id = target.id
        ticket.category, ticket.department_id = target.category, target.department_id
        touch(ticket, now)
        add_step(session, ticket, actor, "merge", "", into=target.number, automatic=False)
        add_step(session, target, actor, "merged_in", "", number=ticket.number)
        uow.record("hotline.ticket.merge", _subject(ticket), {"into": target.number})
        uow.emit(TicketMerged(ticket.number, ticket.status, target.number), MODULE)
        uow.commit()
