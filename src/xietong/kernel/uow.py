"""One command, one transaction: the change, its audit leaf and its outbox events.

    with UnitOfWork(ctx, actor) as uow:
        uow.session.add(thing)
        uow.record("org.user.create", f"user:{thing.id}", {...})
        uow.emit(UserCreated(...))
        uow.commit()

Leaves and events are written at ``commit()`` — after the domain changes are flushed and
just before the database commit — so the audit lock is held for as short a time as
possible, and nothing leaves the process before the transaction is durable. The events
go in first, in one multi-row INSERT, and the audit leaf last: on PostgreSQL the leaf
locks the tree-size row, which every command needs, so only the leaf's own statement
and the COMMIT run while it is held — sent together, in one round trip.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Self

from sqlalchemy.orm import Session

from xietong.kernel import audit, clock
from xietong.kernel.canonical import rfc3339
from xietong.kernel.events import Event, ensure_registered, to_cloudevent
from xietong.kernel.outbox import event_statements, row_values

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
        events: list[tuple[str, tuple[Any, ...]]] = []
        if self._events:
            moment_text = rfc3339(moment)
            rows = [
                row_values(
                    to_cloudevent(
                        event,
                        event_id=clock.new_id(),
                        time=moment,
                        module=module,
                        time_text=moment_text,
                    ),
                    created_at=moment,
                )
                for event, module in self._events
            ]
            events = event_statements(self.session.connection(), rows)
        # PostgreSQL: the events go in the round trip that locks the tree size, and the
        # leaf with the COMMIT (audit.append); Session.commit then finds it committed, and
        # audit refuses whatever it would still flush (AuditCommitError)
        try:
            self.audit_indexes = audit.append(
                self.session, self._entries, now=moment, before=events, commit=True
            )
            self.session.commit()
        finally:
            audit.end_commit(self.session)
        self.committed = True
        if self._events:
            self.ctx.outbox_notify()
        for callback in self._after_commit:
            callback()
