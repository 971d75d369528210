"""Claiming work rows safely on both databases, with a lease that outlives no worker.

A claim is one short write transaction: select the due rows and mark them taken by an
*owner* token until ``locked_until``. On PostgreSQL the select is
``FOR UPDATE SKIP LOCKED``, so concurrent workers each get different rows without
waiting on one another; on SQLite the transaction starts with ``BEGIN IMMEDIATE``
(``Database.write_session``), and with one writer at a time the select-then-update
cannot interleave.

A row whose lease ran out — its worker died or hung — matches the *ready* condition
again and is claimed by the next worker. Finishing a row is *fenced* on the owner token
(``finish``): a worker whose lease was taken over cannot overwrite the new owner's work.
"""

from __future__ import annotations

import os
import random
import socket
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import InstrumentedAttribute, Session

from xietong.kernel import clock
from xietong.kernel.context import Context
from xietong.kernel.db import Base

M = TypeVar("M", bound=Base)

BACKOFF_BASE_S = 5.0
BACKOFF_CAP_S = 6 * 3600.0
INSERT_CHUNK = 500


def owner_token(worker_name: str) -> str:
    """A token naming one claim: the worker, its host and process, and a random part."""
    return f"{worker_name}@{socket.gethostname()}:{os.getpid()}:{clock.new_id()[:8]}"[:120]


def backoff(attempts: int) -> timedelta:
    """Wait after the n-th failed attempt: 5 s · 2^(n−1), capped at 6 h, plus up to 25 %
    jitter so that retries of many rows that failed together (a receiver that was down)
    spread out instead of arriving as one burst."""
    base = min(BACKOFF_BASE_S * 2 ** max(attempts - 1, 0), BACKOFF_CAP_S)
    return timedelta(seconds=min(base * (1 + random.random() * 0.25), BACKOFF_CAP_S))


def ready(
    model: type[Base],
    *,
    pending: str,
    claimed: str,
    due: InstrumentedAttribute[datetime],
    now: datetime,
) -> ColumnElement[bool]:
    """Due pending rows, and claimed rows whose lease expired (their worker is gone)."""
    status = model.status  # type: ignore[attr-defined]
    locked_until = model.locked_until  # type: ignore[attr-defined]
    return or_(
        and_(status == pending, due <= now),
        and_(status == claimed, locked_until < now),
    )


def claim(
    ctx: Context,
    model: type[M],
    *,
    where: ColumnElement[bool],
    order_by: Sequence[Any],
    limit: int,
    owner: str,
    lease: timedelta,
    claimed: str,
) -> list[M]:
    """Take up to ``limit`` rows matching ``where`` for ``owner`` until now + ``lease``.

    Each claimed row gets ``status = claimed`` and ``attempts + 1``: counting the attempt
    when it starts means a row that crashes its worker every time still reaches its
    attempt limit. Returns detached rows with their attributes loaded.
    """
    now = clock.now()
    stmt = select(model).where(where).order_by(*order_by).limit(limit)
    if not ctx.db.is_sqlite:
        stmt = stmt.with_for_update(skip_locked=True)
    with ctx.db.write_session() as session, session.begin():
        rows = list(session.scalars(stmt))
        for row in rows:
            row.status = claimed  # type: ignore[attr-defined]
            row.locked_by = owner  # type: ignore[attr-defined]
            row.locked_until = now + lease  # type: ignore[attr-defined]
            row.attempts = (row.attempts or 0) + 1  # type: ignore[attr-defined]
    return rows


def finish(
    session: Session,
    model: type[Base],
    row_id: int,
    *,
    owner: str,
    claimed: str,
    values: Mapping[str, Any],
) -> bool:
    """Set ``values`` on a row this owner still holds; False when the lease was lost."""
    id_column = model.id  # type: ignore[attr-defined]
    stmt = (
        update(model)
        .where(
            id_column == row_id,
            model.locked_by == owner,  # type: ignore[attr-defined]
            model.status == claimed,  # type: ignore[attr-defined]
        )
        .values(locked_by=None, locked_until=None, **values)
        .execution_options(synchronize_session=False)
    )
    return session.execute(stmt).rowcount == 1  # type: ignore[attr-defined]


def insert_ignore(
    session: Session,
    model: type[Base],
    rows: Iterable[Mapping[str, Any]],
    conflict: Sequence[str],
) -> int:
    """Insert rows, silently skipping those whose ``conflict`` columns already exist.

    ``INSERT … ON CONFLICT DO NOTHING`` on both databases: a re-run (a relay that
    crashed after fan-out, a replay) can never duplicate a row or fail on one.
    """
    values = [dict(row) for row in rows]
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    inserted = 0
    # Chunks keep each statement under SQLite's bound-parameter limit.
    for start in range(0, len(values), INSERT_CHUNK):
        chunk = values[start : start + INSERT_CHUNK]
        stmt = dialect.insert(model).values(chunk).on_conflict_do_nothing(index_elements=conflict)
        # One multi-row statement through the Core connection (the ORM would turn a list
        # of rows into a bulk insert); SQLAlchemy reports an INSERT's rowcount only when
        # asked to.
        result = session.connection().execute(stmt.execution_options(preserve_rowcount=True))
        inserted += max(result.rowcount, 0)
    return inserted
