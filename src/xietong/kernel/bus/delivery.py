"""Sending queued webhook deliveries: signed, bounded in time, retried, dead-lettered.

``deliver_due`` claims due deliveries with a lease, POSTs each event as a structured
CloudEvent, and records the outcome of each one as soon as it is known — a worker
killed mid-batch loses only the request in flight, which its lease returns to the queue.

Signatures follow Standard Webhooks (the ``standardwebhooks`` package): ``webhook-id``
is the event id (the same on every retry and replay, so the receiver deduplicates),
``webhook-timestamp`` the sending time, ``webhook-signature`` ``v1,<HMAC-SHA256>``.
A 2xx answer is success; anything else is retried after an exponential backoff with
jitter, and after ``webhook_max_attempts`` attempts the delivery is dead (replayable).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import and_, select
from standardwebhooks import Webhook

from xietong.kernel import clock
from xietong.kernel.bus import claim
from xietong.kernel.bus.models import WebhookDelivery, WebhookSubscription
from xietong.kernel.bus.webhooks import decrypt_secret
from xietong.kernel.context import Context
from xietong.kernel.outbox import OutboxEvent

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"
USER_AGENT = "xietong-webhooks/1"


@dataclass(frozen=True)
class _Outcome:
    delivered: bool
    status_code: int | None
    error: str | None


def sign_headers(secret: str, message_id: str, body: str) -> dict[str, str]:
    """The three Standard Webhooks headers for ``body``.

    The timestamp is the real wall-clock time, not ``clock.now()``: receivers reject
    signatures more than five minutes from *their* clock (replay protection), so it must
    be the moment the request leaves, even while tests move the platform's clock.
    """
    sent = datetime.fromtimestamp(time.time(), UTC)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(sent.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, sent, body),
    }


def lease_for(ctx: Context, batch: int) -> timedelta:
    # Requests in a claimed batch go one after another, each bounded by the timeout
    # (connect, write, read): the lease must outlast the whole batch.
    return timedelta(seconds=(ctx.settings.webhook_timeout_s * 3 + 1) * batch + 30)


def deliver_due(
    ctx: Context, http_client: httpx.Client, batch: int = 20, owner: str | None = None
) -> int:
    """Send up to ``batch`` due deliveries; returns how many were attempted."""
    owner = owner or claim.owner_token("webhooks")
    now = clock.now()
    active = select(WebhookSubscription.id).where(WebhookSubscription.active.is_(True))
    rows = claim.claim(
        ctx,
        WebhookDelivery,
        where=and_(
            claim.ready(
                WebhookDelivery,
                pending="pending",
                claimed="delivering",
                due=WebhookDelivery.next_attempt_at,
                now=now,
            ),
            WebhookDelivery.subscription_id.in_(active),
        ),
        order_by=[WebhookDelivery.next_attempt_at, WebhookDelivery.id],
        limit=batch,
        owner=owner,
        lease=lease_for(ctx, batch),
        claimed="delivering",
    )
    if not rows:
        return 0
    with ctx.db.read() as session:
        subscriptions = {
            sub.id: sub
            for sub in session.scalars(
                select(WebhookSubscription).where(
                    WebhookSubscription.id.in_({row.subscription_id for row in rows})
                )
            )
        }
        bodies: dict[str, str] = {
            event_id: text
            for event_id, text in session.execute(
                select(OutboxEvent.event_id, OutboxEvent.cloudevent).where(
                    OutboxEvent.event_id.in_({row.event_id for row in rows})
                )
            )
        }
        session.expunge_all()  # keep the subscriptions loaded past the read's rollback
    for row in rows:
        body = bodies.get(row.event_id)
        if body is None:
            outcome = _Outcome(False, None, "event no longer in the outbox")
            _record(ctx, row, owner, outcome, final=True)
            continue
        outcome = _post(ctx, http_client, subscriptions[row.subscription_id], row, body)
        _record(ctx, row, owner, outcome)
    return len(rows)


def _post(
    ctx: Context,
    http_client: httpx.Client,
    subscription: WebhookSubscription,
    row: WebhookDelivery,
    body: str,
) -> _Outcome:
    try:
        headers = sign_headers(decrypt_secret(ctx, subscription), row.event_id, body)
        headers.update({"content-type": CONTENT_TYPE, "user-agent": USER_AGENT})
        response = http_client.post(
            subscription.url,
            content=body.encode("utf-8"),
            headers=headers,
            timeout=httpx.Timeout(ctx.settings.webhook_timeout_s),
            follow_redirects=False,
        )
    except httpx.HTTPError as error:
        return _Outcome(False, None, f"{type(error).__name__}: {error}"[:2000])
    except Exception as error:  # a bad secret or URL must not stop the whole batch
        log.exception("delivery %s could not be sent", row.id)
        return _Outcome(False, None, repr(error)[:2000])
    if response.is_success:
        return _Outcome(True, response.status_code, None)
    snippet = response.text[:200] if response.content else ""
    return _Outcome(False, response.status_code, f"HTTP {response.status_code} {snippet}")


def _record(
    ctx: Context, row: WebhookDelivery, owner: str, outcome: _Outcome, final: bool = False
) -> None:
    now = clock.now()
    values: dict[str, Any] = {
        "last_status_code": outcome.status_code,
        "last_error": outcome.error,
    }
    if outcome.delivered:
        values.update(status="delivered", delivered_at=now)
    elif final or row.attempts >= ctx.settings.webhook_max_attempts:
        values.update(status="dead")
        log.warning("delivery %s is dead after %s attempts", row.id, row.attempts)
    else:
        values.update(status="pending", next_attempt_at=now + claim.backoff(row.attempts))
    with ctx.db.write_session() as session, session.begin():
        if not claim.finish(
            session, WebhookDelivery, row.id, owner=owner, claimed="delivering", values=values
        ):
            log.warning("delivery %s: lease lost before its outcome was recorded", row.id)
