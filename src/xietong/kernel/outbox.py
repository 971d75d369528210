"""The transactional outbox: events written with the change that caused them.

A relay (``xietong.kernel.bus.relay``) reads unpublished rows in ``seq`` order and hands
them to the bus. A row is marked published only after the bus accepted it, so a relay
that dies in between publishes it again; consumers deduplicate by event id.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, String, Text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapped, mapped_column

from xietong.kernel.db import Base, insert_rows, insert_statements


class OutboxEvent(Base):
    __tablename__ = "outbox_event"
    __table_args__ = (Index("ix_outbox_event_unpublished", "published_at", "seq"),)

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    type: Mapped[str] = mapped_column(String(200), index=True)
    subject: Mapped[str | None] = mapped_column(String(300))
    cloudevent: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    published_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)

    @classmethod
    def from_cloudevent(cls, cloud: dict[str, Any], *, created_at: datetime) -> OutboxEvent:
        return cls(
            event_id=cloud["id"],
            type=cloud["type"],
            subject=cloud.get("subject"),
            cloudevent=json.dumps(cloud, ensure_ascii=False, sort_keys=True),
            created_at=created_at,
            attempts=0,
        )

    def to_cloudevent(self) -> dict[str, Any]:
        return json.loads(self.cloudevent)


# json.dumps(cloud, ensure_ascii=False, sort_keys=True)'s encoder, built once: dumps
# builds one per call given options, and this runs for every event of every command
_CLOUDEVENT_ENCODER = json.JSONEncoder(ensure_ascii=False, sort_keys=True)

_ROW_COLUMNS = ("event_id", "type", "subject", "cloudevent", "created_at", "attempts")


def row_values(cloud: dict[str, Any], *, created_at: datetime) -> tuple[Any, ...]:
    """An outbox row as ``from_cloudevent`` builds it, in ``write_events`` column order."""
    return (
        cloud["id"],
        cloud["type"],
        cloud.get("subject"),
        _CLOUDEVENT_ENCODER.encode(cloud),
        created_at,
        0,
    )


def write_events(connection: Connection, rows: list[tuple[Any, ...]]) -> None:
    """Insert outbox rows (from ``row_values``) in one statement, in the caller's
    transaction; ``seq`` follows the order of ``rows``."""
    insert_rows(connection, OutboxEvent.__table__, _ROW_COLUMNS, rows)


def event_statements(connection: Connection, rows: list[tuple[Any, ...]]) -> list[tuple[str, Any]]:
    """``write_events`` as (SQL, parameters) pairs, for a caller that sends them itself."""
    return insert_statements(connection.dialect, OutboxEvent.__table__, _ROW_COLUMNS, rows)
