"""Tables of the resource catalogue (资源目录): resources and their information items.

A resource carries the 13 core fields of 政务信息资源目录编制指南 (the classification
path 类/项/目/细目 stored level by level, so a listing can filter on any level by code
prefix). The provider is a foreign key to the kernel's department; its 提供方代码 is that
department's code, read through the join rather than copied, so it cannot drift.

Later parts of the exchange (connectors, grants, the gateway, subscriptions) hang their
own tables off ``exchange_resource.id`` and ``exchange_item.id``: items keep their ids
across edits (an update matches them by name), so a grant naming items stays valid.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Date,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from xietong.apps.exchange.vocab import (
    Classification,
    DataType,
    OpenType,
    ShareType,
    Status,
    UpdateCycle,
    values,
)
from xietong.kernel.db import Base


def _one_of(column: str, enum: Any) -> str:
    return f"{column} IN ({', '.join(repr(value) for value in values(enum))})"


class Resource(Base):
    """信息资源: one catalogue entry. ``version`` counts edits (optimistic checks)."""

    __tablename__ = "exchange_resource"
    __table_args__ = (
        CheckConstraint(_one_of("status", Status), name="status"),
        CheckConstraint(_one_of("share_type", ShareType), name="share_type"),
        CheckConstraint(_one_of("open_type", OpenType), name="open_type"),
        CheckConstraint(_one_of("update_cycle", UpdateCycle), name="update_cycle"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # 信息资源代码: the classification code, "/", a six-digit sequence (101001/000001)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    provider_id: Mapped[int] = mapped_column(ForeignKey("department.id"), index=True)
    # 信息资源分类: 类 (1 digit), 项 (2), 目 (3), 细目 (optional, 1–9 digits)
    class_code: Mapped[str] = mapped_column(String(1))
    class_name: Mapped[str] = mapped_column(String(100))
    subclass_code: Mapped[str] = mapped_column(String(2))
    subclass_name: Mapped[str] = mapped_column(String(100))
    group_code: Mapped[str] = mapped_column(String(3))
    group_name: Mapped[str] = mapped_column(String(100))
    detail_code: Mapped[str | None] = mapped_column(String(9), default=None)
    detail_name: Mapped[str | None] = mapped_column(String(100), default=None)
    # the four codes concatenated: the code's front part, indexed for prefix filters
    category_code: Mapped[str] = mapped_column(String(16), index=True)
    summary: Mapped[str] = mapped_column(Text)
    format: Mapped[str] = mapped_column(String(32))
    format_detail: Mapped[str | None] = mapped_column(String(32), default=None)
    share_type: Mapped[str] = mapped_column(String(16), index=True)
    share_conditions: Mapped[str | None] = mapped_column(Text, default=None)
    not_shared_basis: Mapped[str | None] = mapped_column(Text, default=None)
    share_methods: Mapped[list[Any]] = mapped_column(JSON, default=list)
    open_type: Mapped[str] = mapped_column(String(24))
    open_conditions: Mapped[str | None] = mapped_column(Text, default=None)
    update_cycle: Mapped[str] = mapped_column(String(16))
    publish_date: Mapped[date | None] = mapped_column(Date, default=None)
    related_codes: Mapped[list[Any]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16), index=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    published_at: Mapped[datetime | None] = mapped_column(default=None)
    withdrawn_at: Mapped[datetime | None] = mapped_column(default=None)

    items: Mapped[list[Item]] = relationship(
        back_populates="resource",
        order_by="Item.position",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )


class Item(Base):
    """信息项: one field of a resource, with its data type and classification level."""

    __tablename__ = "exchange_item"
    __table_args__ = (
        UniqueConstraint("resource_id", "name", name="uq_exchange_item_resource_name"),
        CheckConstraint(_one_of("data_type", DataType), name="data_type"),
        CheckConstraint(_one_of("classification", Classification), name="classification"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # no separate index on resource_id: the unique constraint's leading column serves it
    resource_id: Mapped[int] = mapped_column(ForeignKey("exchange_resource.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(100))
    data_type: Mapped[str] = mapped_column(String(16))
    classification: Mapped[str] = mapped_column(String(16))
    description: Mapped[str] = mapped_column(Text, default="")

    resource: Mapped[Resource] = relationship(back_populates="items")
