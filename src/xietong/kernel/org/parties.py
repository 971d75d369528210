"""External parties: natural persons (自然人) and legal persons (法人).

A 身份证号 is validated, then stored three ways: AES-GCM ciphertext (to reveal it to
staff who may see it), a keyed digest (to find the person again) and a masked form (to
show by default). Revealing the number is itself an audited command, so the audit log
answers "who looked at this person's number, and why".

Registration is idempotent on the number: applying twice finds the same person, also
when two registrations race (the unique digest decides, the loser retries and finds it).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from xietong.kernel import clock
from xietong.kernel.access import Actor, Resource, authorize
from xietong.kernel.context import Context
from xietong.kernel.errors import NotFound
from xietong.kernel.org import _checks as checks
from xietong.kernel.org.events import OrganizationRegistered, PersonRegistered
from xietong.kernel.org.identity import (
    lookup_digest,
    mask_id_number,
    mask_mobile,
    normalize_id_number,
    normalize_mobile,
    normalize_uscc,
)
from xietong.kernel.org.models import Organization, Person, Region
from xietong.kernel.org.views import OrganizationView, PersonView
from xietong.kernel.uow import UnitOfWork

ID_NUMBER_AD = b"person.id_number"
MOBILE_AD = b"person.mobile"


def register_person(
    ctx: Context, actor: Actor, name: str, id_number: str, *, mobile: str | None = None
) -> PersonView:
    """Register a natural person, or return the one already registered with this number."""
    authorize(actor, "org.person.register", Resource(kind="person"))
    name = checks.text(name, "姓名", "Name", 100, code="invalid_name")
    number = normalize_id_number(id_number)
    mobile = normalize_mobile(mobile) if mobile else None
    digest = lookup_digest(ctx.keys.encryption, number)
    for attempt in (1, 2):
        try:
            return _register_person(ctx, actor, name, number, digest, mobile)
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _register_person(
    ctx: Context, actor: Actor, name: str, number: str, digest: str, mobile: str | None
) -> PersonView:
    masked = mask_id_number(number)
    with UnitOfWork(ctx, actor) as uow:
        session = uow.session
        person = session.scalar(select(Person).where(Person.id_number_digest == digest))
        if person is not None:
            uow.record(
                "org.person.register",
                f"person:{person.id}",
                {"id_number_masked": masked, "existing": True},
            )
            uow.commit()
            return PersonView.of(person)
        person = Person(
            name=name,
            id_number_cipher=ctx.keys.encrypt(number.encode("ascii"), ID_NUMBER_AD),
            id_number_digest=digest,
            id_number_masked=masked,
            mobile_cipher=ctx.keys.encrypt(mobile.encode("ascii"), MOBILE_AD) if mobile else None,
            mobile_masked=mask_mobile(mobile) if mobile else None,
            created_at=clock.now(),
        )
        session.add(person)
        session.flush()
        uow.record(
            "org.person.register",
            f"person:{person.id}",
            {"id_number_masked": masked, "existing": False},
        )
        uow.emit(PersonRegistered(person.id, masked), module="org")
        uow.commit()
    return PersonView.of(person)


def find_person(ctx: Context, actor: Actor, id_number: str) -> PersonView | None:
    """The registered person with this 身份证号, masked, or ``None``."""
    authorize(actor, "org.person.read", Resource(kind="person"))
    digest = lookup_digest(ctx.keys.encryption, normalize_id_number(id_number))
    with ctx.db.read() as session:
        person = session.scalar(select(Person).where(Person.id_number_digest == digest))
        return PersonView.of(person) if person else None


def get_person(ctx: Context, actor: Actor, person_id: int) -> PersonView:
    authorize(actor, "org.person.read", Resource(kind="person", id=person_id))
    with ctx.db.read() as session:
        person = session.get(Person, person_id)
        if person is None:
            raise NotFound.of("自然人", "Person", person_id)
        return PersonView.of(person)


def reveal_person_id_number(ctx: Context, actor: Actor, person_id: int, *, reason: str = "") -> str:
    """The full 身份证号 — an audited read of sensitive data (the leaf holds the mask only)."""
    authorize(actor, "org.person.read", Resource(kind="person", id=person_id))
    with UnitOfWork(ctx, actor) as uow:
        person = uow.session.get(Person, person_id)
        if person is None:
            raise NotFound.of("自然人", "Person", person_id)
        number = ctx.keys.decrypt(person.id_number_cipher, ID_NUMBER_AD).decode("ascii")
        uow.record(
            "org.person.reveal_id_number",
            f"person:{person_id}",
            {"id_number_masked": person.id_number_masked, "reason": reason.strip()[:500]},
        )
        uow.commit()
    return number


def register_organization(
    ctx: Context,
    actor: Actor,
    name: str,
    uscc: str,
    *,
    legal_representative: str | None = None,
    region_code: str | None = None,
) -> OrganizationView:
    """Register a legal person, or return the one already registered with this code."""
    authorize(actor, "org.person.register", Resource(kind="organization"))
    name = checks.text(name, "单位名称", "Organisation name", 200, code="invalid_name")
    code = normalize_uscc(uscc)
    representative = (legal_representative or "").strip()[:100] or None
    with UnitOfWork(ctx, actor) as uow:
        session = uow.session
        org = session.scalar(select(Organization).where(Organization.uscc == code))
        existing = org is not None
        if org is None:
            if region_code and session.get(Region, region_code) is None:
                raise NotFound.of("行政区划", "Region", region_code)
            org = Organization(
                name=name,
                uscc=code,
                legal_representative=representative,
                region_code=region_code or None,
                created_at=clock.now(),
            )
            session.add(org)
            checks.flush_or_conflict(
                session, "该统一社会信用代码已登记", "USCC already registered", code="uscc_exists"
            )
            uow.emit(OrganizationRegistered(org.id, code, name), module="org")
        uow.record(
            "org.organization.register",
            f"organization:{org.id}",
            {"uscc": code, "name": org.name, "existing": existing},
        )
        uow.commit()
    return OrganizationView.of(org)
