"""Tables of 一件事一次办: matters, bundles, applications and sub-cases, materials,
result documents, ratings and rectifications.

A matter's form schema, materials and outputs are JSON documents (they are read and
written whole and validated by ``forms``). A sub-case keeps only the fields its matter
needs (data minimisation): the clerk of one department never sees the rest of the
applicant's form. Process instances are referred to by id without a foreign key: the
workflow engine owns their lifecycle (and may archive them).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    ForeignKey,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from xietong.kernel.db import Base

BigId = BigInteger().with_variant(Integer, "sqlite")


class Matter(Base):
    """事项: one service a department provides."""

    __tablename__ = "svc_matter"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    department_id: Mapped[int] = mapped_column(ForeignKey("department.id"), index=True)
    matter_type: Mapped[str] = mapped_column(String(32))
    legal_basis: Mapped[str] = mapped_column(Text, default="")
    # [{code, name, required}]
    materials: Mapped[list[Any]] = mapped_column(JSON, default=list)
    form_schema: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    promised_days: Mapped[int] = mapped_column(Integer)  # 承诺时限 (working days)
    statutory_days: Mapped[int] = mapped_column(Integer)  # 法定时限 (working days)
    fee: Mapped[Decimal] = mapped_column(Numeric(12, 2), default=Decimal("0"))
    process_key: Mapped[str] = mapped_column(String(200))
    # [{name, title, type}]: what concluding the matter produces (证照编号 …)
    outputs: Mapped[list[Any]] = mapped_column(JSON, default=list)
    # code of the one connected system (接入系统) whose answer the matter's process
    # waits for; None: no external system may answer (see ``external.answer``)
    external_system_code: Mapped[str | None] = mapped_column(String(64), default=None)
    active: Mapped[bool] = mapped_column(default=True)
    # jieba-segmented words of the name, department, type, basis and materials
    search_text: Mapped[str] = mapped_column(Text, default="")
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Bundle(Base):
    """一件事: matters of several departments offered as one service."""

    __tablename__ = "svc_bundle"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    life_event: Mapped[str] = mapped_column(String(64), default="")  # 出生, 开办企业 …
    audience: Mapped[str] = mapped_column(String(16), default="person")
    lead_department_id: Mapped[int] = mapped_column(ForeignKey("department.id"), index=True)
    region_code: Mapped[str] = mapped_column(String(12))  # the application number's prefix
    status: Mapped[str] = mapped_column(String(16), default="draft", index=True)
    # computed on publish: the merged form, the merged materials, the bundle's limit
    merged_form: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    merged_materials: Mapped[list[Any]] = mapped_column(JSON, default=list)
    promised_days: Mapped[int] = mapped_column(Integer, default=0)
    search_text: Mapped[str] = mapped_column(Text, default="")
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    published_at: Mapped[datetime | None] = mapped_column(default=None)


class BundleMatter(Base):
    """A matter in a bundle: the matters it waits for and the fields they fill."""

    __tablename__ = "svc_bundle_matter"
    __table_args__ = (UniqueConstraint("bundle_id", "matter_id", name="uq_svc_bundle_matter"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    bundle_id: Mapped[int] = mapped_column(ForeignKey("svc_bundle.id", ondelete="CASCADE"))
    matter_id: Mapped[int] = mapped_column(ForeignKey("svc_matter.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    depends_on: Mapped[list[Any]] = mapped_column(JSON, default=list)  # matter codes
    # [{from, output, to}]: output ``output`` of matter ``from`` fills field ``to``
    mappings: Mapped[list[Any]] = mapped_column(JSON, default=list)


class DailySequence(Base):
    """The last application number given out per region and day (gap-free counter)."""

    __tablename__ = "svc_daily_sequence"

    region_code: Mapped[str] = mapped_column(String(12), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    last: Mapped[int] = mapped_column(Integer, default=0)


class Application(Base):
    """办件: one submission of a bundle, fanned out to sub-cases."""

    __tablename__ = "svc_application"
    __table_args__ = (
        UniqueConstraint("applicant_user_id", "idempotency_key", name="uq_svc_application_idem"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    bundle_id: Mapped[int] = mapped_column(ForeignKey("svc_bundle.id"), index=True)
    applicant_user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"), index=True)
    applicant_name: Mapped[str] = mapped_column(String(200))
    idempotency_key: Mapped[str] = mapped_column(String(128))
    request_digest: Mapped[str] = mapped_column(String(64))  # same key, other body: refused
    form: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="processing", index=True)
    submitted_at: Mapped[datetime]
    due_date: Mapped[date]
    due_estimated: Mapped[bool] = mapped_column(default=False)
    delivered_at: Mapped[datetime | None] = mapped_column(default=None)
    notice: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    version: Mapped[int] = mapped_column(Integer, default=1)


class SubCase(Base):
    """子件: one matter's part of an application, handled by one department."""

    __tablename__ = "svc_sub_case"
    __table_args__ = (
        UniqueConstraint("application_id", "matter_id", name="uq_svc_sub_case_matter"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    application_id: Mapped[int] = mapped_column(
        ForeignKey("svc_application.id", ondelete="CASCADE")
    )
    matter_id: Mapped[int] = mapped_column(ForeignKey("svc_matter.id"))
    department_id: Mapped[int] = mapped_column(ForeignKey("department.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), index=True)
    instance_id: Mapped[int | None] = mapped_column(BigId, default=None, index=True)
    form: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # only this matter's
    outputs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    opinion: Mapped[str | None] = mapped_column(Text, default=None)
    refusal_kind: Mapped[str | None] = mapped_column(String(32), default=None)
    reason: Mapped[str | None] = mapped_column(Text, default=None)  # refusal or cancellation
    supplement: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    supplements: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    due_date: Mapped[date | None] = mapped_column(Date, default=None)
    ended_at: Mapped[datetime | None] = mapped_column(default=None)
    handled_by: Mapped[str | None] = mapped_column(String(200), default=None)
    version: Mapped[int] = mapped_column(Integer, default=1)


class Upload(Base):
    """A file a user uploaded; the bytes live once per SHA-256 under the data dir."""

    __tablename__ = "svc_upload"
    __table_args__ = (UniqueConstraint("user_id", "sha256", name="uq_svc_upload_user_sha"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(Integer)
    media_type: Mapped[str] = mapped_column(String(64))
    filename: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime]


class ApplicationMaterial(Base):
    """申请材料: one material of an application, used by every matter that asks for it."""

    __tablename__ = "svc_application_material"
    __table_args__ = (
        UniqueConstraint("application_id", "code", name="uq_svc_application_material"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    application_id: Mapped[int] = mapped_column(
        ForeignKey("svc_application.id", ondelete="CASCADE")
    )
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    media_type: Mapped[str] = mapped_column(String(64))
    filename: Mapped[str] = mapped_column(String(255))
    revision: Mapped[int] = mapped_column(Integer, default=1)  # 补正 replaces it
    uploaded_at: Mapped[datetime]


class ResultDocument(Base):
    """A result (证照 / 办结通知书): canonical JSON, its SHA-256 and an Ed25519 signature."""

    __tablename__ = "svc_document"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    application_id: Mapped[int] = mapped_column(
        ForeignKey("svc_application.id", ondelete="CASCADE"), index=True
    )
    sub_case_id: Mapped[int | None] = mapped_column(ForeignKey("svc_sub_case.id"), default=None)
    title: Mapped[str] = mapped_column(String(200))
    content: Mapped[str] = mapped_column(Text)  # canonical JSON, exactly the signed bytes
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    signature: Mapped[str] = mapped_column(String(128))  # base64 Ed25519 over the digest
    created_at: Mapped[datetime]


class Rating(Base):
    """好差评 of a delivered application: the bundle (``target`` = "bundle") or one
    department (``target`` = "department:<id>")."""

    __tablename__ = "svc_rating"
    __table_args__ = (UniqueConstraint("application_id", "target", name="uq_svc_rating_target"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("svc_application.id"))
    target: Mapped[str] = mapped_column(String(48))
    department_id: Mapped[int | None] = mapped_column(
        ForeignKey("department.id"), default=None, index=True
    )
    level: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]


class Rectification(Base):
    """整改: a department's fix after a bad rating, reported back to the applicant."""

    __tablename__ = "svc_rectification"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    rating_id: Mapped[int] = mapped_column(ForeignKey("svc_rating.id"), unique=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("svc_application.id"), index=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("department.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="open", index=True)
    due_date: Mapped[date]
    outcome: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime]
    completed_at: Mapped[datetime | None] = mapped_column(default=None)
    completed_by: Mapped[str | None] = mapped_column(String(200), default=None)
