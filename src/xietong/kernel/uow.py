"""One command, one transaction: the change, its audit leaf and its outbox events.

    with UnitOfWork(ctx, actor) as uow:
        uow.session.add(thing)
        uow.record("org.user.create", f"user:{thing.id}", {...})
        uow.emit(UserCreated(...))
        uow.commit()

Leaves and events are written at ``commit()`` — after the domain changes are flushed and
just before the database commit — so the audit lock is held for as short a time as
possible, and nothing leaves the process before the transaction is durable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Self

from sqlalchemy.orm import Session

from xietong.kernel import audit, clock
from xietong.kernel.events import Event, ensure_registered, to_cloudevent
from xietong.kernel.outbox import OutboxEvent

if TYPE_CHECKING:
    from xietong.kernel.access import Actor
    from xietong.kernel.context import Context


class UnitOfWork:
    def __init__(self, ctx: Context, actor: Actor) -> None:
        self.ctx = ctx
        self.actor = actor
        self._entries: list[audit.Entry] = []
        self._events: list[tuple[Event, str]] = []
        self._after_commit: list[Callable[[], Any]] = []
        self.committed = False
        self.audit_indexes: range = range(0)

    def __enter__(self) -> Self:
        self.session: Session = self.ctx.db.write_session()
        self.session.begin()
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.committed:
            self.session.rollback()
        self.session.close()

    def record(self, action: str, subject: str, payload: dict[str, Any]) -> None:
        """Queue one audit leaf: the actor did ``action`` to ``subject``."""
        self._entries.append(audit.Entry(self.actor.label, action, subject, payload))

    def emit(self, event: Event, module: str = "kernel") -> None:
        ensure_registered(event)
        self._events.append((event, module))

    def after_commit(self, callback: Callable[[], Any]) -> None:
        """Run ``callback`` once the transaction is durable (never on rollback)."""
        self._after_commit.append(callback)

    def commit(self) -> None:
        if not self._entries:
            raise RuntimeError("a command must record at least one audit entry")
        self.session.flush()
        moment = clock.now()
        self.audit_indexes = audit.append(self.session, self._entries, now=moment)
        for event, module in self._events:
            event_id = clock.new_id()
            cloud = to_cloudevent(event, event_id=event_id, time=moment, module=module)
            self.session.add(OutboxEvent.from_cloudevent(cloud, created_at=moment))
        self.session.commit()
        self.committed = True
        if self._events:
            self.ctx.outbox_notify()
        for callback in self._after_commit:
            callback()
