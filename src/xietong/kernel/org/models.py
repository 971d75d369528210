"""Tables of the organisation: regions, departments, users, roles, delegations, parties.

Personal numbers never sit in the clear: a 身份证号 or mobile number is stored AES-GCM
encrypted (``*_cipher``) next to its masked form for display, and a 身份证号 also as a
keyed digest so "is this person registered?" is one indexed lookup.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
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

REGION_LEVELS = ("province", "city", "county", "street")
REGION_LEVEL_NAMES = {"province": "省", "city": "市", "county": "区县", "street": "街道"}


class Region(Base):
    """A GB/T 2260 area: 6-digit codes down to counties, 9 or 12 digits for streets."""

    __tablename__ = "region"
    __table_args__ = (
        CheckConstraint("level IN ('province', 'city', 'county', 'street')", name="level"),
    )

    code: Mapped[str] = mapped_column(String(12), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    level: Mapped[str] = mapped_column(String(16))
    parent_code: Mapped[str | None] = mapped_column(
        ForeignKey("region.code"), index=True, default=None
    )


class Department(Base):
    __tablename__ = "department"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    short_name: Mapped[str | None] = mapped_column(String(100), default=None)
    region_code: Mapped[str] = mapped_column(ForeignKey("region.code"), index=True)
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("department.id"), index=True, default=None
    )
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]


class User(Base):
    __tablename__ = "app_user"  # "user" is reserved in PostgreSQL

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(100))
    password_hash: Mapped[str] = mapped_column(String(200))
    mobile_cipher: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    mobile_masked: Mapped[str | None] = mapped_column(String(20), default=None)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]


class Membership(Base):
    """A user holds a role (``xietong.kernel.access.Role`` value) in a department."""

    __tablename__ = "membership"
    __table_args__ = (
        UniqueConstraint(
            "user_id", "department_id", "role", name="uq_membership_user_department_role"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # no separate index on user_id: the unique constraint's leading column serves it
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"))
    department_id: Mapped[int] = mapped_column(ForeignKey("department.id"), index=True)
    role: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime]


class Delegation(Base):
    """代理: the from-user's work (one process, or all when ``process_key`` is NULL)
    also goes to the to-user between ``starts_at`` and ``ends_at``."""

    __tablename__ = "delegation"
    __table_args__ = (
        Index("ix_delegation_from_user_window", "from_user_id", "ends_at"),
        Index("ix_delegation_to_user_window", "to_user_id", "ends_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    from_user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"))
    to_user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    process_key: Mapped[str | None] = mapped_column(String(200), default=None)
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class Person(Base):
    """自然人. ``id_number_digest`` is an HMAC (see ``identity.lookup_digest``)."""

    __tablename__ = "person"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100))
    id_number_cipher: Mapped[bytes] = mapped_column(LargeBinary)
    id_number_digest: Mapped[str] = mapped_column(String(64), unique=True)
    id_number_masked: Mapped[str] = mapped_column(String(18))
    mobile_cipher: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    mobile_masked: Mapped[str | None] = mapped_column(String(20), default=None)
    created_at: Mapped[datetime]


class Organization(Base):
    """法人, identified by its 统一社会信用代码 (public information, stored in the clear)."""

    __tablename__ = "organization"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    uscc: Mapped[str] = mapped_column(String(18), unique=True)
    legal_representative: Mapped[str | None] = mapped_column(String(100), default=None)
    region_code: Mapped[str | None] = mapped_column(ForeignKey("region.code"), default=None)
    created_at: Mapped[datetime]


class ConnectedSystem(Base):
    """接入系统: a department's own system calling xietong with an API key."""

    __tablename__ = "connected_system"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    department_id: Mapped[int] = mapped_column(ForeignKey("department.id"), index=True)
    # SHA-256 hex of the key. The key is 32 random bytes, so it cannot be guessed or
    # brute-forced from its digest: a fast hash is enough, and unlike a password hash
    # (argon2) it lets every request find its system with one indexed lookup.
    api_key_digest: Mapped[str] = mapped_column(String(64), unique=True)
    api_key_prefix: Mapped[str] = mapped_column(String(8))
    roles: Mapped[list[Any]] = mapped_column(JSON, default=list)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)
