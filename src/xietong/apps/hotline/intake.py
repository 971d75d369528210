"""受理: tickets from the portal form and from the API (12345 agents, connected systems).

The input is checked first (nothing is written when it is bad). The place is a GB/T
2260 district code, or free text resolved to one by the district's name (岳麓区, or
岳麓 alone). The citizen's phone is kept encrypted, masked and as a keyed digest.
A connected system's own ticket id makes intake idempotent: the same id with the same
content returns the ticket already taken in; with other content it is refused.

Then, in one transaction: the ticket, its attachments, the classifier's answer, and
either a merge into the same citizen's open ticket on the same issue, an automatic
dispatch, or the dispatcher's queue. The model is asked before the transaction opens,
so a slow or broken model never holds the write lock; a broken one means manual
dispatch and an alert, never a lost ticket.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from xietong.apps.hotline import _model, text
from xietong.apps.hotline._common import (
    INTAKE,
    MODULE,
    SUBMIT,
    add_step,
    text_field,
)
from xietong.apps.hotline.dispatch import apply_dispatch, route_for
from xietong.apps.hotline.events import ClassifierUnavailable, TicketMerged, TicketReceived
from xietong.apps.hotline.models import Attachment, Ticket
from xietong.apps.hotline.vocab import (
    CHANNEL_NAMES,
    OPEN_STATUSES,
    TYPE_NAMES,
    Status,
    by_label,
)
from xietong.kernel import clock
from xietong.kernel.access import Actor, authorize
from xietong.kernel.context import Context
from xietong.kernel.errors import Conflict, InvalidInput
from xietong.kernel.org.identity import lookup_digest, mask_mobile, normalize_mobile
from xietong.kernel.org.models import Region
from xietong.kernel.uow import UnitOfWork

CONTACT_AD = b"hotline.contact"
MAX_TEXT = 5000
MAX_ATTACHMENTS = 5
MAX_ATTACHMENT_BYTES = 5 * 1024 * 1024
ATTACHMENT_TYPES = frozenset(
    {"image/jpeg", "image/png", "application/pdf", "audio/mpeg", "audio/wav", "text/plain"}
)
# Same citizen, same issue, this close in time: one ticket, not two.
DUPLICATE_WINDOW = timedelta(days=7)
SAME_CITIZEN_SIMILARITY = 0.5
SAME_PLACE_SIMILARITY = 0.6
_LANDLINE = re.compile(r"0\d{2,3}-?\d{7,8}")

# Words that reveal the ticket type when the agent did not choose one (first match wins).
_TYPE_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("report", ("举报", "检举", "违法", "偷排", "非法")),
    ("complaint", ("投诉", "不作为", "态度恶劣", "乱收费", "扰民", "拖欠")),
    ("suggestion", ("建议", "提议", "希望增设", "能否增加", "意见")),
    ("consultation", ("咨询", "请问", "如何办理", "怎么办理", "是否可以", "需要哪些", "吗？")),
)


@dataclass(frozen=True)
class AttachmentInput:
    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class TicketInput:
    text: str
    contact_phone: str
    channel: str = "web"
    title: str = ""
    contact_name: str = ""
    type: str | None = None
    district_code: str | None = None
    place: str = ""
    external_id: str | None = None
    attachments: tuple[AttachmentInput, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class IntakeResult:
    number: str
    status: str
    replayed: bool
    # the citizen's key to their ticket (shown once; only its digest is stored)
    citizen_token: str | None


@dataclass(frozen=True)
class _Clean:
    text: str
    title: str
    channel: str
    type: str
    type_guessed: bool
    phone: str
    phone_masked: str
    name: str
    place: str
    district_hint: str | None
    external_id: str | None
    attachments: tuple[AttachmentInput, ...]


def normalize_phone(value: str) -> tuple[str, str]:
    """(phone, masked): a mobile number, or a landline with its area code."""
    raw = re.sub(r"[\s]+", "", str(value or ""))
    if _LANDLINE.fullmatch(raw):
        digits = raw.replace("-", "")
        return digits, digits[:4] + "*" * (len(digits) - 6) + digits[-2:]
    try:
        mobile = normalize_mobile(raw)
    except InvalidInput as bad:
        raise InvalidInput(
            "联系电话无效：应为 11 位手机号或带区号的固定电话",
            "Invalid phone number: an 11-digit mobile or a landline with its area code",
            code="invalid_phone",
        ) from bad
    return mobile, mask_mobile(mobile)


def guess_type(title: str, body: str) -> str:
    joined = f"{title} {body}"
    for code, words in _TYPE_WORDS:
        if any(word in joined for word in words):
            return code
    return "help"


def check(data: TicketInput) -> _Clean:
    body = text_field(data.text, "诉求内容", "Text", MAX_TEXT, code="invalid_text")
    title = text_field(data.title, "标题", "Title", 200, code="invalid_title", required=False)
    if not title:
        title = re.split(r"[。！？!?\n]", body, maxsplit=1)[0][:40]
    channel = by_label(CHANNEL_NAMES, data.channel or "")
    if channel is None:
        raise InvalidInput(
            f"未知的受理渠道：{data.channel}",
            f"Unknown channel: {data.channel}",
            code="unknown_channel",
            details={"channels": list(CHANNEL_NAMES)},
        )
    guessed = not data.type
    kind = guess_type(title, body) if guessed else by_label(TYPE_NAMES, data.type or "")
    if kind is None:
        raise InvalidInput(
            f"未知的诉求类型：{data.type}（应为 咨询、求助、投诉、举报、建议）",
            f"Unknown ticket type: {data.type}",
            code="unknown_type",
        )
    phone, masked = normalize_phone(data.contact_phone)
    name = text_field(data.contact_name, "姓名", "Name", 100, code="invalid_name", required=False)
    place = text_field(data.place, "地点", "Place", 200, code="invalid_place", required=False)
    external = text_field(
        data.external_id,
        "外部工单号",
        "External id",
        64,
        code="invalid_external_id",
        required=False,
    )
    if len(data.attachments) > MAX_ATTACHMENTS:
        raise InvalidInput(
            f"附件最多 {MAX_ATTACHMENTS} 个",
            f"At most {MAX_ATTACHMENTS} attachments",
            code="too_many_attachments",
        )
    for item in data.attachments:
        if item.content_type not in ATTACHMENT_TYPES:
            raise InvalidInput(
                f"不支持的附件类型：{item.content_type}",
                f"Unsupported attachment type: {item.content_type}",
                code="invalid_attachment",
                details={"allowed": sorted(ATTACHMENT_TYPES)},
            )
        if not item.data or len(item.data) > MAX_ATTACHMENT_BYTES:
            raise InvalidInput(
                "附件为空或超过 5 MB",
                "An attachment is empty or larger than 5 MB",
                code="invalid_attachment",
            )
        text_field(item.filename, "附件名", "File name", 200, code="invalid_attachment")
    return _Clean(
        body,
        title,
        channel,
        kind,
        guessed,
        phone,
        masked,
        name,
        place,
        (data.district_code or "").strip() or None,
        external or None,
        data.attachments,
    )


def resolve_district(session: Session, code: str | None, place: str, body: str) -> str | None:
    """A known district code; or the district named in the place (or, failing that, the
    text); None when nothing names one (the city-wide routes then apply)."""
    regions = session.scalars(select(Region).where(Region.level.in_(("county", "street")))).all()
    if code:
        if session.get(Region, code) is None:
            raise InvalidInput(
                f"行政区划代码不存在：{code}",
                f"Unknown district code: {code}",
                code="unknown_district",
            )
        return code
    names: list[tuple[str, str]] = []
    for region in regions:
        names.append((region.name, region.code))
        short = region.name[:-1] if region.name[-1:] in "区县市镇" else ""
        if len(short) >= 2 and not any(short == other.name for other in regions):
            names.append((short, region.code))
    names.sort(key=lambda pair: -len(pair[0]))  # 长沙县 before 长沙
    for source in (place, body) if place else (body,):
        hits = {code for name, code in names if name in source}
        if len(hits) == 1:
            return hits.pop()
    if place:
        raise InvalidInput(
            f"无法从地点识别区县：{place}（请写明区县，如“岳麓区”，或填写行政区划代码）",
            f"Cannot resolve a district from the place: {place}",
            code="unresolved_place",
        )
    return None


def _digest(clean: _Clean) -> str:
    content = {
        "text": clean.text,
        "title": clean.title,
        "channel": clean.channel,
        "type": clean.type,
        "phone": clean.phone,
        "place": clean.place,
        "district": clean.district_hint,
        "files": [hashlib.sha256(a.data).hexdigest() for a in clean.attachments],
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def _existing(session: Session, source: str, external_id: str, digest: str) -> IntakeResult | None:
    row = session.scalar(
        select(Ticket).where(Ticket.source == source, Ticket.external_id == external_id)
    )
    if row is None:
        return None
    if row.payload_digest != digest:
        raise Conflict(
            f"外部工单号 {external_id} 已用于内容不同的工单 {row.number}",
            f"External id {external_id} was used for a different ticket {row.number}",
            code="external_id_conflict",
            details={"number": row.number},
        )
    return IntakeResult(row.number, row.status, True, None)


def _store_file(ctx: Context, data: bytes) -> str:
    """Content-addressed: the same file twice is stored once; a rollback leaves at most an
    unreferenced file, never a row without its file."""
    sha = hashlib.sha256(data).hexdigest()
    path = attachment_path(ctx, sha)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".part")
        tmp.write_bytes(data)
        tmp.replace(path)
    return sha


def attachment_path(ctx: Context, sha: str) -> Path:
    return ctx.settings.data_dir / "hotline" / "attachments" / sha[:2] / sha


def _duplicate(
    session: Session, clean: _Clean, contact_digest: str, district: str | None
) -> tuple[Ticket | None, float, bool]:
    """(closest earlier open ticket, its similarity, same citizen?) within the window."""
    since = clock.now() - DUPLICATE_WINDOW
    rows = session.scalars(
        select(Ticket)
        .where(
            Ticket.created_at >= since,
            # open ones only: a replied ticket's answer is given, a follower would get none
            Ticket.status.in_(tuple(OPEN_STATUSES)),
        )
        .order_by(Ticket.id.desc())
        .limit(500)
    ).all()
    candidates = [
        row
        for row in rows
        if row.contact_digest == contact_digest or (district and row.district_code == district)
    ]
    if not candidates:
        return None, 0.0, False
    scores = text.similarity_matrix(
        [f"{clean.title} {clean.text}"], [f"{row.title} {row.text}" for row in candidates]
    )[0]
    best: tuple[Ticket | None, float, bool] = (None, 0.0, False)
    for row, score in zip(candidates, scores, strict=True):
        same = row.contact_digest == contact_digest
        threshold = SAME_CITIZEN_SIMILARITY if same else SAME_PLACE_SIMILARITY
        if score >= threshold and score > best[1]:
            best = (row, score, same)
    return best


def submit_ticket(
    ctx: Context, actor: Actor, data: TicketInput, *, portal: bool = False
) -> IntakeResult:
    """Take a ticket in; ``portal`` for the citizens' form (anyone may use it)."""
    authorize(actor, SUBMIT if portal else INTAKE)
    clean = check(data)
    source = "portal" if portal else actor.label
    digest = _digest(clean)
    if clean.external_id:
        with ctx.db.read() as session:
            found = _existing(session, source, clean.external_id, digest)
        if found is not None:
            return found
    guesses, failure = _model.predict(ctx.settings, [{"title": clean.title, "text": clean.text}])
    guess = guesses[0] if guesses else None
    try:
        return _write(ctx, actor, clean, source, digest, guess, failure)
    except IntegrityError:
        if not clean.external_id:
            raise
        with ctx.db.read() as session:  # a concurrent push of the same id won the race
            found = _existing(session, source, clean.external_id, digest)
        if found is None:
            raise
        return found


def _write(
    ctx: Context,
    actor: Actor,
    clean: _Clean,
    source: str,
    digest: str,
    guess: _model.Guess | None,
    failure: str,
) -> IntakeResult:
    token = secrets.token_urlsafe(18)
    files = [(item, _store_file(ctx, item.data)) for item in clean.attachments]
    contact_digest = lookup_digest(ctx.keys.encryption, f"phone:{clean.phone}")
    with UnitOfWork(ctx, actor) as uow:
        session = uow.session
        district = resolve_district(session, clean.district_hint, clean.place, clean.text)
        duplicate, score, same_citizen = _duplicate(session, clean, contact_digest, district)
        now = clock.now()
        ticket = Ticket(
            number=f"tmp-{secrets.token_hex(8)}",
            channel=clean.channel,
            source=source,
            external_id=clean.external_id,
            payload_digest=digest,
            type=clean.type,
            title=clean.title,
            text=clean.text,
            place=clean.place,
            district_code=district,
            contact_name=clean.name,
            contact_masked=clean.phone_masked,
            contact_cipher=ctx.keys.encrypt(clean.phone.encode("ascii"), CONTACT_AD),
            contact_digest=contact_digest,
            citizen_token_digest=hashlib.sha256(token.encode()).hexdigest(),
            status=Status.PENDING_DISPATCH.value,
            predicted_category=guess.category if guess else None,
            predicted_confidence=guess.confidence if guess else None,
            suggestions=[list(pair) for pair in guess.top3] if guess else [],
            model_version=guess.model_version if guess else None,
            duplicate_of_id=duplicate.id if duplicate else None,
            duplicate_score=round(score, 4) if duplicate else None,
            created_at=now,
            updated_at=now,
        )
        session.add(ticket)
        session.flush()
        # 12345 + China date + the row id: unique without a counter to contend on
        ticket.number = f"12345{clock.local_now():%Y%m%d}{ticket.id:06d}"
        for item, sha in files:
            session.add(
                Attachment(
                    ticket_id=ticket.id,
                    filename=item.filename.strip(),
                    content_type=item.content_type,
                    size=len(item.data),
                    sha256=sha,
                    created_at=now,
                )
            )
        add_step(
            session,
            ticket,
            actor,
            "intake",
            "",
            channel=clean.channel,
            type=clean.type,
            type_guessed=clean.type_guessed,
            category=ticket.predicted_category,
            confidence=ticket.predicted_confidence,
        )
        uow.emit(
            TicketReceived(ticket.number, ticket.status, clean.channel, clean.type, district),
            MODULE,
        )
        outcome = _route_new(ctx, uow, ticket, guess, failure, duplicate, same_citizen)
        uow.record(
            "hotline.ticket.intake",
            f"hotline.ticket:{ticket.number}",
            {
                "source": source,
                "external_id": clean.external_id,
                "channel": clean.channel,
                "type": clean.type,
                "district": district,
                "contact": clean.phone_masked,
                "attachments": [sha for _item, sha in files],
                "prediction": ticket.predicted_category,
                "confidence": ticket.predicted_confidence,
                "model_version": ticket.model_version,
                "outcome": outcome,
            },
        )
        uow.commit()
        return IntakeResult(ticket.number, ticket.status, False, token)


def _route_new(
    ctx: Context,
    uow: UnitOfWork,
    ticket: Ticket,
    guess: _model.Guess | None,
    failure: str,
    duplicate: Ticket | None,
    same_citizen: bool,
) -> str:
    session = uow.session
    if duplicate is not None and same_citizen:
        ticket.status = Status.MERGED.value
        ticket.merged_into_id = duplicate.id
        ticket.category, ticket.department_id = duplicate.category, duplicate.department_id
        add_step(session, ticket, uow.actor, "merge", "", into=duplicate.number, automatic=True)
        add_step(session, duplicate, uow.actor, "merged_in", "", number=ticket.number)
        uow.emit(TicketMerged(ticket.number, ticket.status, duplicate.number), MODULE)
        return f"merged into {duplicate.number}"
    if guess is None:
        add_step(session, ticket, uow.actor, "classifier_unavailable", failure)
        uow.emit(ClassifierUnavailable(ticket.number, failure or "no model"), MODULE)
        return "manual: classifier unavailable"
    if not guess.auto:
        return "manual: low confidence"
    dept = route_for(session, guess.category, ticket.district_code)
    if dept is None:
        add_step(session, ticket, uow.actor, "no_route", guess.category)
        return "manual: no route"
    if duplicate is not None:
        return "manual: possible duplicate"
    apply_dispatch(ctx, uow, ticket, dept, guess.category, mode="auto", guess=guess)
    return "auto"
