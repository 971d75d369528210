"""Idempotent consumers: an event redelivered any number of times takes effect once.

The bus delivers at least once (a relay that dies after publishing publishes again,
JetStream redelivers an unacknowledged message). A consumer therefore runs its handler
inside one write transaction that also inserts the ``ProcessedEvent`` marker for
(consumer, event id); the marker's primary key makes a second delivery a no-op.

A consumer handler is ``handler(ctx, event, session)``: ``event`` is the CloudEvent as a
dict, ``session`` the transaction holding the marker. Changes made through ``session``
commit together with the marker or not at all. Consumers come from plugins through the
``event_consumers`` hook as ``(name, type pattern, handler)``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from xietong.kernel import clock
from xietong.kernel.bus.models import ProcessedEvent
from xietong.kernel.context import Context

CloudEvent = dict[str, Any]
Handler = Callable[[Context, CloudEvent, Session], None]
Consumer = tuple[str, str, Handler]

_PATTERN = re.compile(r"^(\*|[a-z0-9][a-z0-9_.-]*\*?)$")


def valid_pattern(pattern: str) -> bool:
    """An exact event type, a prefix ending in ``*``, or ``*`` for everything."""
    return bool(_PATTERN.match(pattern))


def matches(pattern: str, event_type: str) -> bool:
    if pattern.endswith("*"):
        return event_type.startswith(pattern[:-1])
    return event_type == pattern


def hook_consumers(ctx: Context) -> list[Consumer]:
    """Every consumer declared by a plugin, checked so a typo fails loudly at start.

    The hooks come in through ``ctx.hooks``: the plugin manager is assembled above the
    kernel by the entry point, and the kernel only calls the hooks it declared.
    """
    found: list[Consumer] = []
    names: set[str] = set()
    batches = ctx.hooks.event_consumers() if ctx.hooks is not None else []
    for batch in batches:
        for name, pattern, handler in batch:
            if name in names:
                raise ValueError(f"event consumer {name!r} declared twice")
            if not valid_pattern(pattern):
                raise ValueError(f"event consumer {name!r}: bad type pattern {pattern!r}")
            names.add(name)
            found.append((name, pattern, handler))
    return found


def deliver_to_consumer(ctx: Context, name: str, handler: Handler, event: CloudEvent) -> bool:
    """Run ``handler`` once for ``event``; False when ``name`` had already processed it.

    The marker is inserted *before* the handler runs: on PostgreSQL a concurrent
    delivery of the same event then blocks on the marker's key and fails as soon as the
    first commits, instead of repeating the handler's work and failing at the end.
    Exceptions from the handler roll everything back and propagate (to be retried).
    """
    event_id = str(event["id"])
    try:
        with ctx.db.write_session() as session, session.begin():
            if session.get(ProcessedEvent, (name, event_id)) is not None:
                return False
            session.add(ProcessedEvent(consumer=name, event_id=event_id, processed_at=clock.now()))
            session.flush()
            handler(ctx, event, session)
    except IntegrityError as error:
        if _is_marker_conflict(error):
            return False
        raise
    return True


def _is_marker_conflict(error: IntegrityError) -> bool:
    text = str(error.orig)
    return ProcessedEvent.__tablename__ in text or "pk_bus_processed_event" in text


def idempotent(name: str) -> Callable[[Handler], Callable[[Context, CloudEvent], bool]]:
    """Decorate a handler so calling it with ``(ctx, event)`` goes through the marker.

    ::

        @idempotent("tasks.on_case_closed")
        def on_case_closed(ctx, event, session): ...

        on_case_closed(ctx, cloudevent)  # True the first time, False afterwards
    """

    def wrap(handler: Handler) -> Callable[[Context, CloudEvent], bool]:
        @functools.wraps(handler)
        def run(ctx: Context, event: CloudEvent) -> bool:
            return deliver_to_consumer(ctx, name, handler, event)

        run.consumer_name = name  # type: ignore[attr-defined]
        run.handler = handler  # type: ignore[attr-defined]
        return run

    return wrap
