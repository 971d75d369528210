"""Tables of the bus: consumer markers, webhook subscriptions and deliveries, scheduled jobs.

Every row a worker processes carries its own state machine and, while a worker holds it,
a lease (``locked_by``, ``locked_until``). A worker that dies leaves a lease that runs out,
and the row becomes claimable again — nothing is lost, and markers keep effects single.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from xietong.kernel.db import Base

# SQLite only auto-increments an ``INTEGER PRIMARY KEY``; PostgreSQL gets a 64-bit id.
BigId = BigInteger().with_variant(Integer, "sqlite")

DELIVERY_STATUSES = ("pending", "delivering", "delivered", "dead")
JOB_STATUSES = ("pending", "running", "done", "failed")


class ProcessedEvent(Base):
    """The idempotent-consumer marker: ``consumer`` has applied event ``event_id``.

    Inserted in the same transaction as the consumer's effect, so a redelivered event
    finds the marker and is skipped: at-least-once delivery, exactly-once effect.
    """

    __tablename__ = "bus_processed_event"

    consumer: Mapped[str] = mapped_column(String(120), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    processed_at: Mapped[datetime]


class WebhookSubscription(Base):
    """An integrator's endpoint and the event types it wants (Standard Webhooks signed)."""

    __tablename__ = "bus_webhook_subscription"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    url: Mapped[str] = mapped_column(String(2000))
    # ``whsec_…`` encrypted with the platform key (associated data b"webhook.secret"):
    # the receiver needs the secret itself to verify, so it cannot be stored hashed.
    secret_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    # Exact types ("org.user.created") or prefixes ending in "*" ("org.*", "*").
    event_types: Mapped[list[str]] = mapped_column(JSON)
    # When set, only events whose data names this department are delivered (see relay).
    department_id: Mapped[int | None] = mapped_column(Integer, index=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class WebhookDelivery(Base):
    """One event for one subscription: pending → delivering → delivered, or dead."""

    __tablename__ = "bus_webhook_delivery"
    __table_args__ = (
        UniqueConstraint("subscription_id", "event_id", name="uq_bus_webhook_delivery_event"),
        Index("ix_bus_webhook_delivery_due", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    subscription_id: Mapped[int] = mapped_column(
        ForeignKey("bus_webhook_subscription.id", ondelete="CASCADE")
    )
    event_id: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    # Attempts started (counted at claim time, so a delivery that kills its worker
    # still moves towards the dead-letter state instead of looping forever).
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    locked_by: Mapped[str | None] = mapped_column(String(120))
    locked_until: Mapped[datetime | None]
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]


class ScheduledJob(Base):
    """Generic due work (workflow timers, task warnings) run by a handler per ``kind``.

    ``key`` deduplicates within a kind: scheduling the same (kind, key) again moves the
    existing job instead of adding one. Rows without a key never collide (NULLs differ).
    """

    __tablename__ = "bus_scheduled_job"
    __table_args__ = (
        UniqueConstraint("kind", "key", name="uq_bus_scheduled_job_kind_key"),
        Index("ix_bus_scheduled_job_due", "status", "due_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(120))
    key: Mapped[str | None] = mapped_column(String(300))
    due_at: Mapped[datetime]
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=5)
    locked_by: Mapped[str | None] = mapped_column(String(120))
    locked_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
