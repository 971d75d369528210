"""Authentication: argon2 passwords, signed bearer tokens, API keys, login throttling.

People sign in with a username and password and get a short-lived bearer token (JWT,
HS256 with the platform's session key) or, on the web, a signed session cookie.
Connected systems send ``X-API-Key``. Failed logins are counted per username in a
sliding window; past the limit the account answers 429 until the window has passed,
whatever the password — so guessing costs the attacker time, not the user their account.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt
from sqlalchemy import BigInteger, Index, Integer, String, delete, event, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column, object_session

from xietong.kernel import clock
from xietong.kernel.access import ANONYMOUS, Actor
from xietong.kernel.context import Context
from xietong.kernel.db import Base
from xietong.kernel.errors import InvalidInput, RateLimited, Unauthenticated
from xietong.kernel.passwords import DUMMY_HASH, check_password
from xietong.kernel.uow import UnitOfWork

TOKEN_AUDIENCE = "xietong"


class LoginFailure(Base):
    __tablename__ = "login_failure"
    __table_args__ = (Index("ix_login_failure_username_at", "username", "at"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    username: Mapped[str] = mapped_column(String(100))
    client: Mapped[str] = mapped_column(String(100))
    at: Mapped[datetime]


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_in: int
    token_type: str = "bearer"


def _failures_since(session: Session, username: str, since: datetime) -> int:
    stmt = select(func.count()).where(LoginFailure.username == username, LoginFailure.at >= since)
    return session.execute(stmt).scalar_one()


def _throttle(ctx: Context, username: str) -> None:
    window = timedelta(seconds=ctx.settings.login_window_s)
    with ctx.db.read() as session:
        failures = _failures_since(session, username, clock.now() - window)
    if failures >= ctx.settings.login_max_failures:
        raise RateLimited(
            "登录失败次数过多，请稍后再试",
            "Too many failed logins; try again later",
            details={"retry_after_s": ctx.settings.login_window_s},
        )


def login(ctx: Context, username: str, password: str, *, client: str = "") -> Actor:
    """Check a username and password; the result is audited either way."""
    from xietong.kernel.org.models import User
    from xietong.kernel.org.scopes import actor_for_user

    username = username.strip()
    if not username or not password:
        raise InvalidInput(
            "请输入用户名和密码", "Username and password are required", code="missing_credentials"
        )
    _throttle(ctx, username)
    with UnitOfWork(ctx, ANONYMOUS) as uow:
        user = uow.session.scalar(select(User).where(User.username == username))
        valid = check_password(user.password_hash if user else DUMMY_HASH, password)
        if user is None or not valid or not user.active:
            uow.session.add(LoginFailure(username=username, client=client[:100], at=clock.now()))
            uow.record("auth.login_failed", f"user:{username}", {"client": client})
            uow.commit()
            raise Unauthenticated("用户名或密码错误", "Wrong username or password")
        uow.session.execute(delete(LoginFailure).where(LoginFailure.username == username))
        actor = actor_for_user(uow.session, user)
        uow.actor = actor
        uow.record("auth.login", f"user:{user.id}", {"client": client})
        uow.commit()
    return actor


def issue_token(ctx: Context, actor: Actor) -> IssuedToken:
    ttl = ctx.settings.access_token_ttl_s
    issued = clock.now()
    claims = {
        "sub": str(actor.id),
        "name": actor.name,
        "aud": TOKEN_AUDIENCE,
        "iat": int(issued.timestamp()),
        "exp": int((issued + timedelta(seconds=ttl)).timestamp()),
        "jti": clock.new_id(),
    }
    return IssuedToken(jwt.encode(claims, ctx.keys.session, algorithm="HS256"), ttl)


def actor_from_token(ctx: Context, token: str) -> Actor:
    """The user a bearer token speaks for, as the database says now (deactivation bites):
    read once, then remembered until an organisation change commits (``_ActorCache``)."""
    actor = actors.get(ctx, _token_user(ctx, token))
    if actor is None:
        raise Unauthenticated("账号不可用", "Account not available")
    return actor


def remembered_actor_from_token(ctx: Context, token: str) -> Actor | None:
    """``actor_from_token`` when it needs no I/O (the actor is remembered), else None —
    for async callers, which must not block; a bad or expired token raises as there."""
    user_id = _token_user(ctx, token)
    found = actors.peek(ctx, user_id)
    if found is _MISSING:
        return None
    if found is None:
        raise Unauthenticated("账号不可用", "Account not available")
    return found  # type: ignore[return-value]


def _token_user(ctx: Context, token: str) -> int:
    """The user id of a valid, unexpired token (raises ``Unauthenticated`` otherwise)."""
    try:
        claims = jwt.decode(
            token,
            ctx.keys.session,
            algorithms=["HS256"],
            audience=TOKEN_AUDIENCE,
            options={"verify_exp": False},
        )
        user_id = int(claims["sub"])
        expires = int(claims["exp"])
    except (jwt.PyJWTError, KeyError, ValueError) as bad:
        raise Unauthenticated("令牌无效", "Invalid token") from bad
    # Expiry is checked against the platform clock, so tests with a frozen clock work.
    if expires <= int(clock.now().timestamp()):
        raise Unauthenticated("令牌已过期，请重新登录", "Token expired; log in again")
    return user_id


def actor_from_user_id(ctx: Context, user_id: int) -> Actor | None:
    """The actor of an active user (``None`` for an unknown or deactivated one)."""
    return actors.get(ctx, user_id)


def _load_actor(ctx: Context, user_id: int) -> Actor | None:
    from xietong.kernel.org.models import User
    from xietong.kernel.org.scopes import actor_for_user

    with ctx.db.read() as session:
        user = session.get(User, user_id)
        if user is None or not user.active:
            return None
        return actor_for_user(session, user)


_ORG_CHANGED = "xietong.auth.org_changed"
_MISSING = object()


class _ActorCache:
    """Actors of users, by database and user id, for the requests that follow.

    Every authenticated request needs its actor; reading it is a read transaction of
    three queries (the user, their memberships, the department tree), as much CPU as a
    small command. An actor depends only on the ``user``, ``membership`` and
    ``department`` tables, so a remembered one stays right until one of them changes:

    - **In this process** a commit that inserted, updated or deleted such a row through
      the ORM (every organisation service, the org import, tests) bumps ``generation``
      and every remembered actor is dropped at once — a deactivated user or a revoked
      membership takes effect on the very next request.
    - **In another process** (a second worker, the CLI) the change is not seen here:
      an actor is re-read at the latest ``TTL_S`` seconds after it was read, the bound
      ADR 0063 accepts (as ADR 0032 does for API keys).

    An actor read by a transaction that began before a change commits would be stale;
    it is stored under the generation seen *before* the read, so it is dropped too.
    """

    TTL_S = 2.0

    def __init__(self) -> None:
        self.generation = 0
        self._entries: dict[tuple[str, int], tuple[int, float, Actor | None]] = {}
        self._lock = threading.Lock()
        self.monotonic = time.monotonic  # tests replace it to step over the bound

    def peek(self, ctx: Context, user_id: int) -> Actor | object | None:
        """The remembered actor (None: remembered as unavailable), or ``_MISSING``."""
        found = self._entries.get((ctx.db.url, user_id))
        if (
            found is not None
            and found[0] == self.generation
            and self.monotonic() - found[1] < self.TTL_S
        ):
            return found[2]
        return _MISSING

    def get(self, ctx: Context, user_id: int) -> Actor | None:
        found = self.peek(ctx, user_id)
        if found is not _MISSING:
            return found  # type: ignore[return-value]
        key = (ctx.db.url, user_id)
        now = self.monotonic()
        generation = self.generation
        actor = _load_actor(ctx, user_id)
        with self._lock:
            if len(self._entries) > 10_000:  # bounded: drop all rather than track age
                self._entries.clear()
            self._entries[key] = (generation, now, actor)
        return actor

    def forget(self) -> None:
        """Drop every remembered actor (an organisation change committed)."""
        with self._lock:
            self.generation += 1
            self._entries.clear()


actors = _ActorCache()


def _org_row_written(_mapper: Any, _connection: Any, target: Any) -> None:
    session = object_session(target)
    if session is not None:
        session.info[_ORG_CHANGED] = True


def _after_commit(session: Session) -> None:
    if session.info.pop(_ORG_CHANGED, False):
        actors.forget()


def _watch_org_tables() -> None:
    from xietong.kernel.org.models import Department, Membership, User

    # an actor is derived from rows of these three only (``scopes.actor_for_user``)
    for model in (User, Membership, Department):
        for name in ("after_insert", "after_update", "after_delete"):
            event.listen(model, name, _org_row_written)
    # a flag left by a transaction that rolled back is harmless: it only makes a later
    # commit of the same session drop the remembered actors once more
    event.listen(Session, "after_commit", _after_commit)


_watch_org_tables()
