"""The message table: one row per recipient, read or not."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from xietong.kernel.db import Base

BigId = BigInteger().with_variant(Integer, "sqlite")


class NotifyMessage(Base):
    __tablename__ = "notify_message"
    __table_args__ = (
        # the bell and the inbox: a user's unread messages, newest first
        Index("ix_notify_message_user_unread", "user_id", "read_at", "id"),
        # a redelivered event never notifies twice
        UniqueConstraint("user_id", "source_event_id", name="uq_notify_message_event"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"))
    kind: Mapped[str] = mapped_column(String(120))
    title_zh: Mapped[str] = mapped_column(String(300))
    title_en: Mapped[str] = mapped_column(String(300))
    body_zh: Mapped[str] = mapped_column(Text, default="")
    body_en: Mapped[str] = mapped_column(Text, default="")
    link: Mapped[str | None] = mapped_column(String(500), default=None)
    source_event_id: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime]
    read_at: Mapped[datetime | None] = mapped_column(default=None)
