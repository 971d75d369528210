"""Audit leaves and events for work done inside a bus consumer's transaction.

An event consumer gets the session holding its processed-event marker (so a redelivered
event takes effect once), not a ``UnitOfWork``. ``SessionUnit`` gives it the same two
duties — an audit leaf for the change and outbox events — committed with that session.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from xietong.kernel import audit, clock
from xietong.kernel.events import Event, ensure_registered, to_cloudevent
from xietong.kernel.outbox import row_values, write_events


class SessionUnit:
    def __init__(self, session: Session, actor_label: str) -> None:
        self.session = session
        self.actor_label = actor_label
        self._entries: list[audit.Entry] = []
        self._events: list[Event] = []

    def record(self, action: str, subject: str, payload: dict[str, Any]) -> None:
        self._entries.append(audit.Entry(self.actor_label, action, subject, payload))

    def emit(self, event: Event) -> None:
        ensure_registered(event)
        self._events.append(event)

    def write(self) -> None:
        """Flush the changes, then the events and the leaves (the caller commits)."""
        self.session.flush()
        moment = clock.now()
        if self._events:
            rows = [
                row_values(
                    to_cloudevent(event, event_id=clock.new_id(), time=moment, module="exchange"),
                    created_at=moment,
                )
                for event in self._events
            ]
            write_events(self.session.connection(), rows)
        audit.append(self.session, self._entries, now=moment)
