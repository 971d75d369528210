"""Tables of the sharing side of the exchange: connectors, requests, grants, the gateway's
query log, published changes and subscriptions.

They hang off ``exchange_resource.id`` (the catalogue) and the kernel's departments.
Items are stored by name (a resource's item names are unique and keep their ids across
edits, but a grant must keep naming what was granted even if the entry is edited later).

Credentials never sit in plain text: ``exchange_connector.secret_cipher`` is AES-256-GCM
under the platform's encryption key, with the connector's id as associated data, so a
cipher copied onto another connector's row does not decrypt.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from xietong.kernel.db import Base

BigId = BigInteger().with_variant(Integer, "sqlite")

CONNECTOR_KINDS = ("rest", "sql", "file")
REQUEST_STATUSES = ("pending", "approved", "refused", "withdrawn")
GRANT_STATUSES = ("active", "revoked")


def _in(column: str, choices: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(choice) for choice in choices)})"


class Connector(Base):
    """How the gateway reaches the provider's system for one resource (one per resource)."""

    __tablename__ = "exchange_connector"
    __table_args__ = (CheckConstraint(_in("kind", CONNECTOR_KINDS), name="kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    resource_id: Mapped[int] = mapped_column(
        ForeignKey("exchange_resource.id", ondelete="CASCADE"), unique=True
    )
    kind: Mapped[str] = mapped_column(String(8))
    # non-secret settings: url, table, path, timeout, retries, key field, poll field …
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # item name -> the provider's field or column name (missing: the item's own name)
    fields: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    secret_cipher: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    tested_at: Mapped[datetime | None] = mapped_column(default=None)
    test_ok: Mapped[bool | None] = mapped_column(Boolean, default=None)
    test_message: Mapped[str | None] = mapped_column(Text, default=None)
    # the connector poll's high-water mark (the last change-field value seen)
    poll_cursor: Mapped[str | None] = mapped_column(String(200), default=None)


class ShareRequest(Base):
    """共享申请: a consuming department asks for some items of a resource."""

    __tablename__ = "exchange_share_request"
    __table_args__ = (
        CheckConstraint(_in("status", REQUEST_STATUSES), name="status"),
        Index("ix_exchange_share_request_provider_status", "provider_id", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    resource_id: Mapped[int] = mapped_column(ForeignKey("exchange_resource.id"), index=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("department.id"))
    consumer_id: Mapped[int] = mapped_column(ForeignKey("department.id"), index=True)
    requested_by: Mapped[str] = mapped_column(String(200))
    items: Mapped[list[Any]] = mapped_column(JSON)
    purpose: Mapped[str] = mapped_column(Text)
    legal_basis: Mapped[str] = mapped_column(Text)
    valid_from: Mapped[date] = mapped_column(Date)
    valid_until: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(12))
    share_type: Mapped[str] = mapped_column(String(16))
    opinion: Mapped[str | None] = mapped_column(Text, default=None)
    decided_by: Mapped[str | None] = mapped_column(String(200), default=None)
    decided_at: Mapped[datetime | None] = mapped_column(default=None)
    process_instance_id: Mapped[int | None] = mapped_column(Integer, default=None)
    created_at: Mapped[datetime]


class Grant(Base):
    """授权: what a consuming department may query, until when, with which items masked."""

    __tablename__ = "exchange_grant"
    __table_args__ = (
        CheckConstraint(_in("status", GRANT_STATUSES), name="status"),
        Index("ix_exchange_grant_lookup", "resource_id", "consumer_id", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("exchange_share_request.id"), unique=True)
    resource_id: Mapped[int] = mapped_column(ForeignKey("exchange_resource.id"))
    provider_id: Mapped[int] = mapped_column(ForeignKey("department.id"), index=True)
    consumer_id: Mapped[int] = mapped_column(ForeignKey("department.id"), index=True)
    items: Mapped[list[Any]] = mapped_column(JSON)
    # item name -> masking rule (id_number, mobile, name, address, bank_card)
    masked: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    purpose: Mapped[str] = mapped_column(Text)
    valid_from: Mapped[date] = mapped_column(Date)
    valid_until: Mapped[date] = mapped_column(Date)
    rate_per_minute: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(12))
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    revoke_reason: Mapped[str | None] = mapped_column(Text, default=None)


class QueryLog(Base):
    """One gateway query, for statistics; the audit leaf (``audit_index``) is the proof."""

    __tablename__ = "exchange_query_log"
    __table_args__ = (
        Index("ix_exchange_query_log_provider_time", "provider_id", "created_at"),
        Index("ix_exchange_query_log_consumer_time", "consumer_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    resource_id: Mapped[int] = mapped_column(ForeignKey("exchange_resource.id"))
    provider_id: Mapped[int] = mapped_column(Integer)
    consumer_id: Mapped[int] = mapped_column(Integer)
    grant_id: Mapped[int | None] = mapped_column(Integer, default=None)
    system_code: Mapped[str] = mapped_column(String(64))
    client: Mapped[str] = mapped_column(String(200))
    # ok · provider_unavailable · provider_timeout · provider_error · quality_failure
    outcome: Mapped[str] = mapped_column(String(24))
    row_count: Mapped[int] = mapped_column(Integer, default=0)
    latency_ms: Mapped[float] = mapped_column(Float)
    provider_ms: Mapped[float] = mapped_column(Float)
    audit_index: Mapped[int] = mapped_column(BigInteger)
    detail: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime]


class Change(Base):
    """A change a provider published (pushed, or found by the connector poll).

    ``id`` orders changes per platform: a subscriber replays "from change N on".
    ``data`` holds the provider's row by item name, unmasked: each subscriber gets it
    cut to its grant's items and masked at delivery, never stored per subscriber.
    """

    __tablename__ = "exchange_change"
    __table_args__ = (Index("ix_exchange_change_resource", "resource_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    resource_id: Mapped[int] = mapped_column(ForeignKey("exchange_resource.id"))
    op: Mapped[str] = mapped_column(String(8))  # upsert · delete
    key: Mapped[str] = mapped_column(String(200))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    source: Mapped[str] = mapped_column(String(8))  # push · poll
    created_at: Mapped[datetime]


class Subscription(Base):
    """A consuming department's subscription to a resource's changes (needs a grant)."""

    __tablename__ = "exchange_subscription"
    __table_args__ = (Index("ix_exchange_subscription_resource", "resource_id", "active"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    resource_id: Mapped[int] = mapped_column(ForeignKey("exchange_resource.id"))
    consumer_id: Mapped[int] = mapped_column(ForeignKey("department.id"), index=True)
    webhook_id: Mapped[int | None] = mapped_column(Integer, default=None)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]


class RateWindow(Base):
    """Gateway queries per grant per one-minute window, shared by every gateway
    process (``ratelimit``); windows older than the previous one are deleted."""

    __tablename__ = "exchange_rate_window"

    grant_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    window_start: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # epoch minute
    count: Mapped[int] = mapped_column(Integer)
