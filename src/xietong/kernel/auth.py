"""Authentication: argon2 passwords, signed bearer tokens, API keys, login throttling.

People sign in with a username and password and get a short-lived bearer token (JWT,
HS256 with the platform's session key) or, on the web, a signed session cookie.
Connected systems send ``X-API-Key``. Failed logins are counted per username in a
sliding window; past the limit the account answers 429 until the window has passed,
whatever the password — so guessing costs the attacker time, not the user their account.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt
from sqlalchemy import BigInteger, Index, Integer, String, delete, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

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
    """The user a bearer token speaks for, re-read from the database (deactivation bites)."""
    from xietong.kernel.org.models import User
    from xietong.kernel.org.scopes import actor_for_user

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
    with ctx.db.read() as session:
        user = session.get(User, user_id)
        if user is None or not user.active:
            raise Unauthenticated("账号不可用", "Account not available")
        return actor_for_user(session, user)


def actor_from_user_id(ctx: Context, user_id: int) -> Actor | None:
    from xietong.kernel.org.models import User
    from xietong.kernel.org.scopes import actor_for_user

    with ctx.db.read() as session:
        user = session.get(User, user_id)
        if user is None or not user.active:
            return None
        return actor_for_user(session, user)
