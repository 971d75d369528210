"""Webhook subscriptions: the audited commands that manage them, and their listing.

An integrator (集成商) subscribes an HTTPS endpoint to event types; the relay queues a
delivery per matching event and ``delivery.deliver_due`` sends it, signed per Standard
Webhooks; ``replay`` holds the delivery log and dead letters. Each command here is
audited under the action ``bus.webhook.manage``.

The signing secret (``whsec_`` + base64 of 32 random bytes unless the integrator brings
one) is returned once, by ``create_subscription`` and ``rotate_secret``; it is stored
encrypted because the platform needs it again to sign, and never appears in a listing
or an audit entry.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from xietong.kernel import clock
from xietong.kernel.access import Actor, authorize
from xietong.kernel.bus.consumers import valid_pattern
from xietong.kernel.bus.models import WebhookSubscription
from xietong.kernel.context import Context
from xietong.kernel.errors import InvalidInput, NotFound
from xietong.kernel.uow import UnitOfWork

ACTION = "bus.webhook.manage"
SECRET_PREFIX = "whsec_"
SECRET_AD = b"webhook.secret"
KEEP: Any = object()  # "leave unchanged" for optional fields that may be set to None


@dataclass(frozen=True)
class SubscriptionInfo:
    id: int
    name: str
    url: str
    event_types: list[str]
    department_id: int | None
    active: bool
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: WebhookSubscription) -> SubscriptionInfo:
        return cls(
            row.id,
            row.name,
            row.url,
            list(row.event_types),
            row.department_id,
            row.active,
            row.created_at,
            row.updated_at,
        )


@dataclass(frozen=True)
class CreatedSubscription:
    subscription: SubscriptionInfo
    secret: str  # shown once; the receiver verifies signatures with it


def generate_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def check_secret(secret: str) -> str:
    """Standard Webhooks symmetric secrets: ``whsec_`` + base64 of 24 to 64 bytes."""
    raw = secret.removeprefix(SECRET_PREFIX)
    try:
        size = len(base64.b64decode(raw, validate=True))
    except (binascii.Error, ValueError):
        size = 0
    if not secret.startswith(SECRET_PREFIX) or not 24 <= size <= 64:
        raise InvalidInput(
            "签名密钥格式应为 whsec_ 加 24 至 64 字节的 base64",
            "A signing secret is whsec_ followed by base64 of 24 to 64 bytes",
            details={"field": "secret"},
        )
    return secret


def check_url(url: str, allowed_hosts: Sequence[str] = ()) -> str:
    """An http(s) URL without credentials, on an allowed host when a list is configured.

    The allow-list (``webhook_allowed_hosts``) keeps an administrator's typo, or a
    stolen admin session, from pointing the platform's signed event stream at an
    arbitrary server; credentials in the URL would end up in logs and the audit log.
    """
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        parsed = None
    if parsed is None or parsed.scheme not in {"http", "https"} or not parsed.host:
        raise InvalidInput(
            f"回调地址无效：{url}", f"Invalid endpoint URL: {url}", details={"field": "url"}
        )
    if parsed.userinfo:
        raise InvalidInput(
            "回调地址不得包含用户名或密码",
            "An endpoint URL must not carry a user name or password",
            code="webhook_url_credentials",
            details={"field": "url"},
        )
    host = parsed.host.lower()
    if allowed_hosts and not any(fnmatch.fnmatchcase(host, p.lower()) for p in allowed_hosts):
        raise InvalidInput(
            f"回调地址的主机 {host} 不在允许列表中",
            f"The endpoint host {host} is not in the allowed list",
            code="webhook_host_not_allowed",
            details={"field": "url", "allowed_hosts": list(allowed_hosts)},
        )
    return url


def check_patterns(patterns: list[str]) -> list[str]:
    bad = [pattern for pattern in patterns if not valid_pattern(pattern)]
    if not patterns or bad:
        raise InvalidInput(
            "事件类型应为具体类型或以 * 结尾的前缀",
            "Event types are exact types or prefixes ending in *",
            details={"field": "event_types", "invalid": bad},
        )
    return list(dict.fromkeys(patterns))


def decrypt_secret(ctx: Context, row: WebhookSubscription) -> str:
    return ctx.keys.decrypt(row.secret_encrypted, SECRET_AD).decode("ascii")


def load_subscription(session: Session, subscription_id: int) -> WebhookSubscription:
    row = session.get(WebhookSubscription, subscription_id)
    if row is None:
        raise NotFound.of("事件订阅", "Webhook subscription", subscription_id)
    return row


def create_subscription(
    ctx: Context,
    actor: Actor,
    *,
    name: str,
    url: str,
    event_types: list[str],
    secret: str | None = None,
    department_id: int | None = None,
) -> CreatedSubscription:
    authorize(actor, ACTION)
    if not name.strip():
        raise InvalidInput("名称不能为空", "A name is required", details={"field": "name"})
    secret = check_secret(secret) if secret else generate_secret()
    now = clock.now()
    with UnitOfWork(ctx, actor) as uow:
        row = WebhookSubscription(
            name=name.strip(),
            url=check_url(url, ctx.settings.webhook_allowed_hosts),
            secret_encrypted=ctx.keys.encrypt(secret.encode("ascii"), SECRET_AD),
            event_types=check_patterns(event_types),
            department_id=department_id,
            active=True,
            created_at=now,
            updated_at=now,
        )
        uow.session.add(row)
        uow.session.flush()
        uow.record(ACTION, f"webhook:{row.id}", {"op": "create", **_audited(row)})
        uow.commit()
    return CreatedSubscription(SubscriptionInfo.of(row), secret)


def _audited(row: WebhookSubscription) -> dict[str, Any]:
    return {
        "name": row.name,
        "url": row.url,
        "event_types": list(row.event_types),
        "department_id": row.department_id,
        "active": row.active,
    }


def update_subscription(
    ctx: Context,
    actor: Actor,
    subscription_id: int,
    *,
    name: str | None = None,
    url: str | None = None,
    event_types: list[str] | None = None,
    department_id: int | None = KEEP,
    active: bool | None = None,
) -> SubscriptionInfo:
    authorize(actor, ACTION)
    with UnitOfWork(ctx, actor) as uow:
        row = load_subscription(uow.session, subscription_id)
        if name is not None and name.strip():
            row.name = name.strip()
        if url is not None:
            row.url = check_url(url, ctx.settings.webhook_allowed_hosts)
        if event_types is not None:
            row.event_types = check_patterns(event_types)
        if department_id is not KEEP:
            row.department_id = department_id
        if active is not None:
            row.active = active
        row.updated_at = clock.now()
        uow.record(ACTION, f"webhook:{row.id}", {"op": "update", **_audited(row)})
        uow.commit()
    return SubscriptionInfo.of(row)


def deactivate_subscription(ctx: Context, actor: Actor, subscription_id: int) -> SubscriptionInfo:
    """Stop deliveries; queued ones stay pending and resume if it is activated again."""
    return update_subscription(ctx, actor, subscription_id, active=False)


def rotate_secret(
    ctx: Context, actor: Actor, subscription_id: int, secret: str | None = None
) -> str:
    """Replace the signing secret; the new one is returned once."""
    authorize(actor, ACTION)
    secret = check_secret(secret) if secret else generate_secret()
    with UnitOfWork(ctx, actor) as uow:
        row = load_subscription(uow.session, subscription_id)
        row.secret_encrypted = ctx.keys.encrypt(secret.encode("ascii"), SECRET_AD)
        row.updated_at = clock.now()
        uow.record(ACTION, f"webhook:{row.id}", {"op": "rotate_secret"})
        uow.commit()
    return secret


def get_subscription(ctx: Context, actor: Actor, subscription_id: int) -> SubscriptionInfo:
    authorize(actor, ACTION)
    with ctx.db.read() as session:
        return SubscriptionInfo.of(load_subscription(session, subscription_id))


def list_subscriptions(ctx: Context, actor: Actor) -> list[SubscriptionInfo]:
    authorize(actor, ACTION)
    with ctx.db.read() as session:
        rows = session.scalars(select(WebhookSubscription).order_by(WebhookSubscription.id))
        return [SubscriptionInfo.of(row) for row in rows]
