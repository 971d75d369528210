"""What a service function needs from the running platform, passed explicitly.

A ``Context`` is built once per process by an entry point (``xietong.app``,
``xietong.cli``, a test fixture) and handed to service functions. It holds handles,
not behaviour: settings, the database, the keys, the calendar and a way to wake the
outbox relay.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from xietong.config import Settings
from xietong.kernel.db import Database
from xietong.kernel.keys import Keys

if TYPE_CHECKING:
    from xietong.kernel.calendar import WorkCalendar


@dataclass
class Context:
    settings: Settings
    db: Database
    keys: Keys
    calendar: WorkCalendar | None = None
    # The plugins' hook caller (pluggy), set by the entry point that assembled them;
    # the kernel calls only the hooks it declared in ``xietong.kernel.hooks``.
    hooks: Any = None
    # Set by the relay of this process so a commit with events wakes it at once.
    outbox_wakeup: threading.Event = field(default_factory=threading.Event)
    on_close: list[Callable[[], None]] = field(default_factory=list)

    def outbox_notify(self) -> None:
        self.outbox_wakeup.set()

    def close(self) -> None:
        for callback in reversed(self.on_close):
            callback()
        self.db.dispose()


def open_context(settings: Settings, hooks: Any = None) -> Context:
    """Open the database and load the keys (``xietong init`` must have run)."""
    from xietong.kernel.calendar import WorkCalendar

    db = Database(settings.sqlalchemy_url, sqlite_synchronous=settings.sqlite_synchronous)
    ctx = Context(settings=settings, db=db, keys=Keys.load(settings.keys_dir), hooks=hooks)
    ctx.calendar = WorkCalendar(db)
    return ctx
