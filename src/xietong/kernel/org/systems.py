"""接入系统 (connected systems): a department's existing system calling xietong by API key.

Like an X-Road subsystem, a connected system belongs to one department and acts only
with the roles it was registered with, in that department (and its sub-departments).
The key is ``xt_`` + 43 url-safe characters (32 random bytes), shown once at
registration or rotation; only its SHA-256 and its first 8 characters are stored.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update

from xietong.kernel import clock
from xietong.kernel.access import Actor, Resource, Role, authorize
from xietong.kernel.context import Context
from xietong.kernel.errors import Conflict, InvalidInput, NotFound
from xietong.kernel.org import _checks as checks
from xietong.kernel.org.events import SystemChanged
from xietong.kernel.org.models import ConnectedSystem, Department
from xietong.kernel.org.scopes import actor_for_system
from xietong.kernel.org.service import ORG_WIDE_ROLES, check_role_authority
from xietong.kernel.org.views import IssuedKey, SystemView
from xietong.kernel.uow import UnitOfWork

KEY_PREFIX = "xt_"
# last_used_at is a hint for administrators ("is this system still calling?"), not an
# access log: writing it at most once a minute keeps authentication a pure read.
LAST_USED_GRANULARITY = timedelta(minutes=1)
# An authenticated key is remembered for this long in this process: a gateway answering
# hundreds of calls a second would otherwise spend three queries on each one. Rotating
# or deactivating a system through this module forgets every key at once; a change made
# by another process (or to the system's department tree) is seen within this bound.
KEY_CACHE_TTL_S = 2.0


@dataclass(frozen=True)
class _KnownKey:
    actor: Actor
    system_id: int
    checked_at: float  # time.monotonic()
    last_used: datetime | None


_known_keys: dict[tuple[str, str], _KnownKey] = {}
_monotonic = time.monotonic  # tests replace it to step over the bound
_known_keys_lock = threading.Lock()


def forget_api_keys() -> None:
    """Drop every remembered key: the next call of each system is looked up again."""
    with _known_keys_lock:
        _known_keys.clear()


def _new_key() -> tuple[str, str]:
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    return key, key_digest(key)


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _system_roles(actor: Actor, roles: list[str | Role]) -> list[str]:
    checked: list[str] = []
    for value in roles:
        role = checks.role(value)
        if role is Role.ADMIN:
            raise InvalidInput(
                "接入系统不能拥有管理员角色",
                "A connected system cannot hold the administrator role",
                code="invalid_role",
            )
        if role in ORG_WIDE_ROLES:
            check_role_authority(actor, role)
        if role.value not in checked:
            checked.append(role.value)
    return checked


def register_connected_system(
    ctx: Context,
    actor: Actor,
    code: str,
    name: str,
    department_id: int,
    roles: list[str | Role],
) -> IssuedKey:
    """Register a system; the result carries the plaintext API key, this one time only."""
    authorize(actor, "org.system.manage", Resource(kind="department", department_id=department_id))
    code = checks.code(code, "系统编码", "System code")
    name = checks.text(name, "系统名称", "System name", 200, code="invalid_name")
    role_values = _system_roles(actor, roles)
    key, digest = _new_key()
    with UnitOfWork(ctx, actor) as uow:
        session = uow.session
        if session.get(Department, department_id) is None:
            raise NotFound.of("部门", "Department", department_id)
        if session.scalar(select(ConnectedSystem.id).where(ConnectedSystem.code == code)):
            raise Conflict(
                f"系统编码已存在：{code}", f"System code taken: {code}", code="system_exists"
            )
        system = ConnectedSystem(
            code=code,
            name=name,
            department_id=department_id,
            api_key_digest=digest,
            api_key_prefix=key[:8],
            roles=role_values,
            active=True,
            created_at=clock.now(),
        )
        session.add(system)
        checks.flush_or_conflict(
            session, "系统编码已存在", "System code taken", code="system_exists"
        )
        uow.record(
            "org.system.register",
            f"connected_system:{system.id}",
            {"code": code, "department_id": department_id, "roles": role_values},
        )
        uow.emit(SystemChanged(system.id, code, department_id, "registered"), module="org")
        uow.commit()
    return IssuedKey(SystemView.of(system), key)


def _load_for_manage(ctx: Context, actor: Actor, system_id: int) -> None:
    with ctx.db.read() as session:
        system = session.get(ConnectedSystem, system_id)
        if system is None:
            raise NotFound.of("接入系统", "Connected system", system_id)
        department_id = system.department_id
    authorize(actor, "org.system.manage", Resource(kind="department", department_id=department_id))


def rotate_system_key(ctx: Context, actor: Actor, system_id: int) -> IssuedKey:
    """Issue a new key; the old one stops working when this commits."""
    _load_for_manage(ctx, actor, system_id)
    key, digest = _new_key()
    with UnitOfWork(ctx, actor) as uow:
        system = uow.session.get(ConnectedSystem, system_id)
        if system is None:
            raise NotFound.of("接入系统", "Connected system", system_id)
        system.api_key_digest = digest
        system.api_key_prefix = key[:8]
        uow.record("org.system.rotate_key", f"connected_system:{system_id}", {})
        uow.emit(
            SystemChanged(system.id, system.code, system.department_id, "key_rotated"),
            module="org",
        )
        uow.commit()
    forget_api_keys()
    return IssuedKey(SystemView.of(system), key)


def deactivate_system(ctx: Context, actor: Actor, system_id: int) -> SystemView:
    _load_for_manage(ctx, actor, system_id)
    with UnitOfWork(ctx, actor) as uow:
        system = uow.session.get(ConnectedSystem, system_id)
        if system is None:
            raise NotFound.of("接入系统", "Connected system", system_id)
        system.active = False
        uow.record("org.system.deactivate", f"connected_system:{system_id}", {})
        uow.emit(
            SystemChanged(system.id, system.code, system.department_id, "deactivated"),
            module="org",
        )
        uow.commit()
    forget_api_keys()
    return SystemView.of(system)


def list_systems(ctx: Context, actor: Actor) -> list[SystemView]:
    authorize(actor, "org.read")
    with ctx.db.read() as session:
        rows = session.scalars(select(ConnectedSystem).order_by(ConnectedSystem.code))
        return [SystemView.of(row) for row in rows]


def cached_api_key_actor(ctx: Context, key: str) -> Actor | None:
    """The actor of ``key`` if this process authenticated it within ``KEY_CACHE_TTL_S``
    and its last-used time needs no update — without any I/O, for async callers; ``None``
    means "call ``authenticate_api_key``" (which may read and write), not "invalid"."""
    known = _known_keys.get((ctx.db.url, key_digest(key))) if key else None
    if known is None or _monotonic() - known.checked_at >= KEY_CACHE_TTL_S:
        return None
    if known.last_used is None or clock.now() - known.last_used >= LAST_USED_GRANULARITY:
        return None
    return known.actor


def authenticate_api_key(ctx: Context, key: str) -> Actor | None:
    """The system this key belongs to, as an actor; ``None`` for a wrong or disabled key."""
    if not key or not key.startswith(KEY_PREFIX) or len(key) > 200:
        return None
    digest = key_digest(key)
    cache_key = (ctx.db.url, digest)
    known = _known_keys.get(cache_key)
    if known is None or _monotonic() - known.checked_at >= KEY_CACHE_TTL_S:
        checked_at = _monotonic()
        with ctx.db.read() as session:
            system = session.scalar(
                select(ConnectedSystem).where(ConnectedSystem.api_key_digest == digest)
            )
            # The indexed lookup already matched the digest; the constant-time compare is
            # belt and braces against a future lookup that matches on a prefix.
            if system is None or not hmac.compare_digest(system.api_key_digest, digest):
                return None
            department = session.get(Department, system.department_id)
            if not system.active or department is None or not department.active:
                return None
            known = _KnownKey(
                actor_for_system(session, system), system.id, checked_at, system.last_used_at
            )
        with _known_keys_lock:
            _known_keys[cache_key] = known
    now = clock.now()
    if known.last_used is None or now - known.last_used >= LAST_USED_GRANULARITY:
        _touch(ctx, known.system_id, now)
        with _known_keys_lock:
            if _known_keys.get(cache_key) is known:
                _known_keys[cache_key] = _KnownKey(
                    known.actor, known.system_id, known.checked_at, now
                )
    return known.actor


def _touch(ctx: Context, system_id: int, now: datetime) -> None:
    """Bookkeeping, not a command: no audit leaf, and the guard makes racing writers cheap."""
    session = ctx.db.write_session()
    try:
        with session.begin():
            session.execute(
                update(ConnectedSystem)
                .where(
                    ConnectedSystem.id == system_id,
                    or_(
                        ConnectedSystem.last_used_at.is_(None),
                        ConnectedSystem.last_used_at <= now - LAST_USED_GRANULARITY,
                    ),
                )
                .values(last_used_at=now)
            )
    finally:
        session.close()
