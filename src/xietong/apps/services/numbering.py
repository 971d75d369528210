"""Application numbers: ``<region>-<yyyymmdd>-<6-digit daily sequence>``.

The counter row (region, day) is bumped inside the submitting transaction: on
PostgreSQL the UPDATE takes the row lock, so concurrent submissions queue on it and
each gets the next number; on SQLite the write transaction already serialises them.
A submission that rolls back rolls its increment back too, so numbers have no gaps.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from xietong.apps.services.models import DailySequence

MAX_PER_DAY = 999_999


def next_number(session: Session, region_code: str, day: date) -> str:
    insert = sqlite_insert if session.get_bind().dialect.name == "sqlite" else pg_insert
    session.execute(
        insert(DailySequence)
        .values(region_code=region_code, day=day, last=0)
        .on_conflict_do_nothing(index_elements=["region_code", "day"])
    )
    last = session.execute(
        update(DailySequence)
        .where(DailySequence.region_code == region_code, DailySequence.day == day)
        .values(last=DailySequence.last + 1)
        .returning(DailySequence.last)
    ).scalar_one()
    if last > MAX_PER_DAY:
        raise RuntimeError(f"more than {MAX_PER_DAY} applications in {region_code} on {day}")
    return f"{region_code}-{day:%Y%m%d}-{last:06d}"
