"""Tables of the hotline: tickets and everything that happens to them.

- ``hotline_ticket`` — one 工单. The citizen's phone is stored encrypted (shown to the
  handling department only), masked (shown everywhere else) and as a keyed digest (to
  find the same citizen's other tickets without decrypting).
- ``hotline_dispatch`` — every dispatch decision: department, category, automatic or
  manual, the model version and confidence, and how the department answered.
- ``hotline_step`` — the ticket's timeline (each step also has an audit leaf).
- ``hotline_route`` — the routing table: category × district → department.
- ``hotline_correction`` — labelled examples from 退单 and manual dispatch, for training.
- ``hotline_extension`` — 延期 requests and the hotline centre's decisions.
- ``hotline_follow_up`` — 回访 records (and citizens' own ratings).
- ``hotline_attachment`` — files, content-addressed in the data dir.
- ``hotline_knowledge`` — the knowledge base (FAQ and past replies).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from xietong.apps.hotline.vocab import Channel, Rating, Status, TicketType
from xietong.kernel.db import Base


def _one_of(column: str, enum: Any) -> str:
    return f"{column} IN ({', '.join(repr(item.value) for item in enum)})"


class Ticket(Base):
    __tablename__ = "hotline_ticket"
    __table_args__ = (
        CheckConstraint(_one_of("status", Status), name="status"),
        CheckConstraint(_one_of("channel", Channel), name="channel"),
        CheckConstraint(_one_of("type", TicketType), name="type"),
        # a connected system's own ticket id, once per system: intake is idempotent on it
        UniqueConstraint("source", "external_id", name="uq_hotline_ticket_source_external"),
        Index("ix_hotline_ticket_status_created", "status", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    channel: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(80))  # "portal", "user:…", "system:…"
    external_id: Mapped[str | None] = mapped_column(String(64), default=None)
    payload_digest: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text)
    place: Mapped[str] = mapped_column(String(200), default="")
    district_code: Mapped[str | None] = mapped_column(
        ForeignKey("region.code"), default=None, index=True
    )
    contact_name: Mapped[str] = mapped_column(String(100), default="")
    contact_masked: Mapped[str] = mapped_column(String(20))
    contact_cipher: Mapped[bytes] = mapped_column(LargeBinary)
    contact_digest: Mapped[str] = mapped_column(String(64), index=True)
    citizen_token_digest: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(24))
    # the classifier's answer at intake (kept even when a human chose otherwise)
    predicted_category: Mapped[str | None] = mapped_column(String(32), default=None)
    predicted_confidence: Mapped[float | None] = mapped_column(Float, default=None)
    suggestions: Mapped[list[Any]] = mapped_column(JSON, default=list)
    model_version: Mapped[str | None] = mapped_column(String(64), default=None)
    category: Mapped[str | None] = mapped_column(String(32), default=None, index=True)
    department_id: Mapped[int | None] = mapped_column(
        ForeignKey("department.id"), default=None, index=True
    )
    duplicate_of_id: Mapped[int | None] = mapped_column(
        ForeignKey("hotline_ticket.id"), default=None
    )
    duplicate_score: Mapped[float | None] = mapped_column(Float, default=None)
    merged_into_id: Mapped[int | None] = mapped_column(
        ForeignKey("hotline_ticket.id"), default=None, index=True
    )
    sla_started_at: Mapped[datetime | None] = mapped_column(default=None)
    due_at: Mapped[datetime | None] = mapped_column(default=None, index=True)
    warn_at: Mapped[datetime | None] = mapped_column(default=None)
    due_estimated: Mapped[bool] = mapped_column(Boolean, default=False)
    warned_at: Mapped[datetime | None] = mapped_column(default=None)
    breached_at: Mapped[datetime | None] = mapped_column(default=None)
    accepted_at: Mapped[datetime | None] = mapped_column(default=None)
    reply: Mapped[str | None] = mapped_column(Text, default=None)
    replied_at: Mapped[datetime | None] = mapped_column(default=None)
    rating: Mapped[str | None] = mapped_column(String(24), default=None)
    rated_at: Mapped[datetime | None] = mapped_column(default=None)
    reopen_count: Mapped[int] = mapped_column(Integer, default=0)
    closed_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    version: Mapped[int] = mapped_column(Integer, default=1)


class Dispatch(Base):
    __tablename__ = "hotline_dispatch"
    __table_args__ = (
        CheckConstraint("mode IN ('auto', 'manual')", name="mode"),
        CheckConstraint("outcome IN ('pending', 'accepted', 'sent_back')", name="outcome"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("hotline_ticket.id"), index=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("department.id"), index=True)
    category: Mapped[str] = mapped_column(String(32))
    district_code: Mapped[str | None] = mapped_column(String(12), default=None)
    mode: Mapped[str] = mapped_column(String(8))
    model_version: Mapped[str | None] = mapped_column(String(64), default=None)
    confidence: Mapped[float | None] = mapped_column(Float, default=None)
    top3: Mapped[list[Any]] = mapped_column(JSON, default=list)
    dispatched_by: Mapped[str] = mapped_column(String(120))
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]
    outcome: Mapped[str] = mapped_column(String(16), default="pending")
    outcome_reason: Mapped[str | None] = mapped_column(Text, default=None)
    outcome_by: Mapped[str | None] = mapped_column(String(120), default=None)
    outcome_at: Mapped[datetime | None] = mapped_column(default=None)


class Step(Base):
    __tablename__ = "hotline_step"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("hotline_ticket.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(120))
    note: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    at: Mapped[datetime]


class Route(Base):
    """One row of the routing table. ``district_code = ""`` is the city-wide default
    (not NULL: a unique constraint treats NULLs as distinct — see kernel/calendar)."""

    __tablename__ = "hotline_route"
    __table_args__ = (
        UniqueConstraint("category", "district_code", name="uq_hotline_route_category_district"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    category: Mapped[str] = mapped_column(String(32))
    district_code: Mapped[str] = mapped_column(String(12), default="")
    department_id: Mapped[int] = mapped_column(ForeignKey("department.id"), index=True)
    updated_by: Mapped[str] = mapped_column(String(120))
    updated_at: Mapped[datetime]


class Correction(Base):
    __tablename__ = "hotline_correction"
    __table_args__ = (CheckConstraint("source IN ('send_back', 'manual_dispatch')", name="source"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("hotline_ticket.id"), index=True)
    source: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text)
    predicted_category: Mapped[str | None] = mapped_column(String(32), default=None)
    wrong_category: Mapped[str | None] = mapped_column(String(32), default=None)
    # None for a 退单 until the redispatch says where the ticket belongs
    label: Mapped[str | None] = mapped_column(String(32), default=None)
    model_version: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime]


class Extension(Base):
    __tablename__ = "hotline_extension"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'approved', 'rejected')", name="status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("hotline_ticket.id"), index=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("department.id"))
    hours: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)
    requested_by: Mapped[str] = mapped_column(String(120))
    requested_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    decided_by: Mapped[str | None] = mapped_column(String(120), default=None)
    decided_at: Mapped[datetime | None] = mapped_column(default=None)
    decision_note: Mapped[str | None] = mapped_column(Text, default=None)


class FollowUp(Base):
    __tablename__ = "hotline_follow_up"
    __table_args__ = (
        CheckConstraint(_one_of("rating", Rating), name="rating"),
        CheckConstraint("channel IN ('call', 'citizen')", name="channel"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("hotline_ticket.id"), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    rating: Mapped[str] = mapped_column(String(24))
    note: Mapped[str] = mapped_column(Text, default="")
    recorded_by: Mapped[str] = mapped_column(String(120))
    at: Mapped[datetime]


class Attachment(Base):
    __tablename__ = "hotline_attachment"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("hotline_ticket.id"), index=True)
    filename: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]


class Knowledge(Base):
    """知识库: a question with its answer — FAQ entries and past replies."""

    __tablename__ = "hotline_knowledge"
    __table_args__ = (UniqueConstraint("source", "ref", name="uq_hotline_knowledge_source_ref"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(32))  # faq, ticket, import
    ref: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(200))
    question: Mapped[str] = mapped_column(Text)
    answer: Mapped[str] = mapped_column(Text)
    category: Mapped[str | None] = mapped_column(String(32), default=None)
    created_at: Mapped[datetime]
