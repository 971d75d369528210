"""Application numbers: ``<region>-<yyyymmdd>-<6-digit daily sequence>``.

The counter row (region, day) is created or bumped by one upsert inside the submitting
transaction: on PostgreSQL the upsert takes the row lock, so concurrent submissions queue on it and
each gets the next number; on SQLite the write transaction already serialises them.
A submission that rolls back rolls its increment back too, so numbers have no gaps.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import bindparam
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from xietong.apps.services.models import DailySequence

MAX_PER_DAY = 999_999


def _bump(insert: Any) -> Any:
    # INSERT … ON CONFLICT DO UPDATE … RETURNING: SQLite (3.35+) and PostgreSQL both
    # speak it; one statement where an insert-if-missing and an update were two
    stmt = insert(DailySequence).values(
        region_code=bindparam("region"), day=bindparam("day"), last=1
    )
    return stmt.on_conflict_do_update(
        index_elements=["region_code", "day"], set_={"last": DailySequence.last + 1}
    ).returning(DailySequence.last)


_BUMP = {"sqlite": _bump(sqlite_insert), "postgresql": _bump(pg_insert)}


def next_number(session: Session, region_code: str, day: date) -> str:
    stmt = _BUMP[session.get_bind().dialect.name]
    last = session.execute(stmt, {"region": region_code, "day": day}).scalar_one()
    if last > MAX_PER_DAY:
        raise RuntimeError(f"more than {MAX_PER_DAY} applications in {region_code} on {day}")
    return f"{region_code}-{day:%Y%m%d}-{last:06d}"
