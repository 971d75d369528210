"""A worker process killed with SIGKILL mid-way loses nothing and duplicates no effect.

A real worker runs in a child process against the test database. It is killed either
inside an in-process consumer (its transaction half done, the relay's batch unmarked)
or while a webhook receiver holds its request (the delivery leased, its outcome
unrecorded). A fresh worker then finishes the work: every event reaches the consumer
and the receiver, the consumer's effect exists once per event, and the receiver —
counting unique ``webhook-id`` values as an integrator would — sees each event once.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from standardwebhooks import Webhook

from xietong.kernel import clock
from xietong.kernel.access import WORKER, Actor, Role
from xietong.kernel.bus import (
    InProcessBus,
    ScheduledJob,
    WebhookDelivery,
    Worker,
    create_subscription,
)
from xietong.kernel.context import Context
from xietong.kernel.events import Event, event_type
from xietong.kernel.outbox import OutboxEvent
from xietong.kernel.uow import UnitOfWork
from xietong.plugins import plugin_manager

ADMIN = Actor(kind="user", id=1, name="admin", scopes={Role.ADMIN: frozenset()})
CONSUMER = "test.crash.consumer"
EFFECT_KIND = "test.crash.effect"
EVENTS = 3


@event_type("test.crash.thing.happened", "A crash test thing happened")
@dataclass(frozen=True)
class ThingHappened(Event):
    n: int


def effect(ctx: Context, event: dict[str, Any], session: Session) -> None:
    """The consumer's effect: a row per application (no unique key hides a duplicate)."""
    now = clock.now()
    session.add(
        ScheduledJob(
            kind=EFFECT_KIND,
            key=None,
            due_at=now,
            payload={"event_id": event["id"]},
            status="done",
            attempts=0,
            max_attempts=1,
            created_at=now,
        )
    )


# The doomed worker: the same consumer (same name, same effect); in "consumer" mode it
# stalls inside the consumer's open transaction. It signals through a file, then waits.
CHILD = textwrap.dedent(
    f"""
    import os, pathlib, sys, time
    from xietong.config import Settings
    from xietong.kernel.bus import InProcessBus, ScheduledJob, Worker
    from xietong.kernel import clock
    from xietong.kernel.context import Context
    from xietong.kernel.db import Database
    from xietong.kernel.keys import Keys

    ready = pathlib.Path(os.environ["CRASH_READY"])
    mode = os.environ["CRASH_MODE"]

    def effect(ctx, event, session):
        now = clock.now()
        session.add(ScheduledJob(kind={EFFECT_KIND!r}, key=None, due_at=now,
                                 payload={{"event_id": event["id"]}}, status="done",
                                 attempts=0, max_attempts=1, created_at=now))
        if mode == "consumer":
            session.flush()
            ready.touch()
            time.sleep(120)

    settings = Settings()
    ctx = Context(settings=settings, db=Database(settings.sqlalchemy_url),
                  keys=Keys.load(settings.keys_dir))
    bus = InProcessBus(ctx, [({CONSUMER!r}, "test.crash.*", effect)])
    Worker(ctx, "doomed", publisher=bus, periodic=[]).run_once()
    sys.exit(3)  # never reached: the test kills this process first
    """
)


class StallingReceiver:
    """Records each verified request's webhook-id; stalls the first one if asked."""

    def __init__(self, stall_first: bool) -> None:
        self.secret = ""
        self.ids: Counter[str] = Counter()
        self.stalled = threading.Event()
        self.release = threading.Event()
        self.stall_first = stall_first
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                Webhook(receiver.secret).verify(body, dict(self.headers))
                receiver.ids[self.headers["webhook-id"]] += 1  # processed...
                if receiver.stall_first and not receiver.stalled.is_set():
                    receiver.stalled.set()  # ...but the answer never reaches the sender
                    receiver.release.wait(30)
                    return
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

            def handle_one_request(self) -> None:
                # The sender died: writing the answer fails, as expected.
                with contextlib.suppress(OSError):
                    super().handle_one_request()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def frozen() -> Iterator[clock.FrozenClock]:
    frozen_clock = clock.FrozenClock(datetime.now(UTC))
    previous = clock.use_clock(frozen_clock)
    yield frozen_clock
    clock.use_clock(previous)


def start_doomed_worker(ctx: Context, tmp_path: Path, mode: str) -> tuple[Any, Path]:
    ready = tmp_path / f"ready-{mode}"
    env = {name: value for name, value in os.environ.items() if not name.startswith("XIETONG_")}
    env |= {
        "XIETONG_DATABASE_URL": ctx.settings.sqlalchemy_url,
        "XIETONG_DATA_DIR": str(ctx.settings.data_dir),
        "CRASH_READY": str(ready),
        "CRASH_MODE": mode,
    }
    child = subprocess.Popen([sys.executable, "-c", CHILD], env=env, cwd=tmp_path)
    return child, ready


def wait_for(condition: Any, child: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert child.poll() is None, f"the worker exited early with {child.returncode}"
        assert time.monotonic() < deadline, "the worker never reached the crash point"
        time.sleep(0.02)


@pytest.mark.parametrize("crash_in", ["consumer", "webhook"])
def test_killed_worker_loses_nothing_and_duplicates_nothing(
    ctx: Context, tmp_path: Path, frozen: clock.FrozenClock, crash_in: str
) -> None:
    plugin_manager()
    receiver = StallingReceiver(stall_first=crash_in == "webhook")
    try:
        created = create_subscription(
            ctx, ADMIN, name="crash", url=receiver.url, event_types=["test.crash.*"]
        )
        receiver.secret = created.secret
        with UnitOfWork(ctx, WORKER) as uow:
            for n in range(EVENTS):
                uow.record("test.thing", f"thing:{n}", {"n": n})
                uow.emit(ThingHappened(n=n), module="test")
            uow.commit()
        event_ids = {row.event_id for row in rows(ctx, OutboxEvent)}

        child, ready = start_doomed_worker(ctx, tmp_path, crash_in)
        try:
            if crash_in == "consumer":
                wait_for(ready.exists, child)
            else:
                wait_for(receiver.stalled.is_set, child)
        finally:
            child.kill()  # SIGKILL: no cleanup, no rollback by the process itself
            child.wait(timeout=30)

        if crash_in == "consumer":
            assert all(row.published_at is None for row in rows(ctx, OutboxEvent))
            assert rows(ctx, WebhookDelivery) == []
        else:
            assert {row.status for row in rows(ctx, WebhookDelivery)} == {"delivering"}
            receiver.release.set()
            # The dead worker's lease runs out before anyone may take its deliveries.
            frozen.advance(timedelta(hours=1))

        with httpx.Client() as http:
            worker = Worker(
                ctx,
                "survivor",
                publisher=InProcessBus(ctx, [(CONSUMER, "test.crash.*", effect)]),
                http_client=http,
                periodic=[],
            )
            for _ in range(5):
                if worker.run_once() == 0:
                    break
            worker.close()

        applied = Counter(row.payload["event_id"] for row in rows(ctx, ScheduledJob))
        assert applied == {event_id: 1 for event_id in event_ids}
        assert all(row.published_at is not None for row in rows(ctx, OutboxEvent))
        assert {row.status for row in rows(ctx, WebhookDelivery)} == {"delivered"}
        assert set(receiver.ids) == event_ids  # every event arrived, unique by webhook-id
        if crash_in == "webhook":
            assert sorted(receiver.ids.values()) == [1, 1, 2]  # the stalled one came again
    finally:
        receiver.close()


def rows(ctx: Context, model: Any) -> list[Any]:
    with ctx.db.read() as session:
        found = list(session.scalars(select(model)))
        session.expunge_all()
        return found
