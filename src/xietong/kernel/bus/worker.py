"""The worker loop: relay the outbox, send webhooks, run due jobs and periodic jobs.

``xietong worker`` runs ``Worker.run_forever`` in its own process (several may run
against PostgreSQL); ``xietong serve`` in embedded mode runs one in a daemon thread
(``start_background_worker``). Every step claims its work, so any number of workers
can run and any of them may die at any moment: leases return its work to the others.

A commit that wrote events sets ``ctx.outbox_wakeup``, so a worker in the same process
relays at once instead of at the next poll.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import httpx

from xietong.kernel.bus import claim, delivery, jobs
from xietong.kernel.bus.relay import InProcessBus, Publisher, relay_once
from xietong.kernel.context import Context

log = logging.getLogger(__name__)

PeriodicJob = tuple[str, float, Callable[[Context], int]]


def make_publisher(ctx: Context) -> Publisher:
    """NATS JetStream when ``XIETONG_NATS_URL`` is set, else the in-process bus."""
    if ctx.settings.nats_url:
        from xietong.kernel.bus.jetstream import NatsBus

        return NatsBus(ctx)
    return InProcessBus(ctx)


def hook_periodic_jobs(ctx: Context) -> list[PeriodicJob]:
    if ctx.hooks is None:
        return []
    return [job for batch in ctx.hooks.periodic_jobs() for job in batch]


class Worker:
    def __init__(
        self,
        ctx: Context,
        name: str = "worker",
        *,
        publisher: Publisher | None = None,
        http_client: httpx.Client | None = None,
        periodic: list[PeriodicJob] | None = None,
        relay_batch: int = 100,
        delivery_batch: int = 20,
        job_batch: int = 20,
    ) -> None:
        self.ctx = ctx
        self.name = name
        self.publisher = publisher if publisher is not None else make_publisher(ctx)
        self._own_client = http_client is None
        self.http = http_client or httpx.Client(timeout=ctx.settings.webhook_timeout_s)
        self.periodic = periodic if periodic is not None else hook_periodic_jobs(ctx)
        self.relay_batch = relay_batch
        self.delivery_batch = delivery_batch
        self.job_batch = job_batch
        # Periodic intervals are process-local pacing, so they follow the monotonic
        # clock (unaffected by wall-clock jumps or a test's frozen business clock).
        self._next_periodic: dict[str, float] = {}

    def run_once(self) -> int:
        """One pass over every kind of work; returns the number of items handled."""
        owner = claim.owner_token(self.name)
        handled = 0
        steps: list[tuple[str, Callable[[], int]]] = [
            ("relay", lambda: relay_once(self.ctx, self.publisher, self.relay_batch)),
            (
                "webhooks",
                lambda: delivery.deliver_due(self.ctx, self.http, self.delivery_batch, owner),
            ),
            ("jobs", lambda: jobs.run_due_jobs(self.ctx, owner, self.job_batch)),
            ("periodic", self._run_periodic),
        ]
        for label, step in steps:
            try:
                handled += step()
            except Exception:
                # One failing step (database restarting, a bug in a job) must not stop
                # the others or the loop; the next pass retries.
                log.exception("worker %s: %s step failed", self.name, label)
        return handled

    def _run_periodic(self) -> int:
        handled = 0
        now = time.monotonic()
        for name, interval, job in self.periodic:
            if self._next_periodic.get(name, 0.0) > now:
                continue
            self._next_periodic[name] = now + interval
            try:
                handled += int(job(self.ctx) or 0)
            except Exception:
                log.exception("periodic job %s failed", name)
        return handled

    def run_forever(self, stop: threading.Event) -> None:
        """Loop until ``stop`` is set: work while there is work, else wait for a wake-up."""
        consumers = self._start_nats_consumers(stop)
        try:
            while not stop.is_set():
                # Clear before working: a commit during the pass sets it again, and the
                # wait below then returns at once instead of missing the wake-up.
                self.ctx.outbox_wakeup.clear()
                if self.run_once() == 0 and not stop.is_set():
                    self.ctx.outbox_wakeup.wait(self.ctx.settings.worker_poll_s)
        finally:
            if consumers is not None:
                consumers.join(timeout=10)
            self.close()

    def _start_nats_consumers(self, stop: threading.Event) -> threading.Thread | None:
        """With NATS, this worker also feeds the plugins' consumers from JetStream."""
        if not self.ctx.settings.nats_url:
            return None
        thread = threading.Thread(
            target=_consume_until_stopped,
            args=(self.ctx, stop),
            name=f"{self.name}-nats-consumers",
            daemon=True,
        )
        thread.start()
        return thread

    def close(self) -> None:
        self.publisher.close()
        if self._own_client:
            self.http.close()


def _consume_until_stopped(ctx: Context, stop: threading.Event) -> None:
    from xietong.kernel.bus.jetstream import run_nats_consumers

    while not stop.is_set():
        try:
            run_nats_consumers(ctx, stop)
            return  # stopped, or no consumer is declared
        except Exception:
            # NATS unreachable or restarting: unacknowledged messages wait in the stream.
            log.exception("NATS consumers stopped; restarting")
            stop.wait(5.0)


def start_background_worker(ctx: Context, name: str = "embedded") -> Callable[[], None]:
    """Run a worker in a daemon thread; returns the function that stops it."""
    stop = threading.Event()
    worker = Worker(ctx, name)
    thread = threading.Thread(
        target=worker.run_forever, args=(stop,), name=f"xietong-{name}-worker", daemon=True
    )
    thread.start()

    def stop_worker() -> None:
        stop.set()
        ctx.outbox_wakeup.set()
        thread.join(timeout=30)

    return stop_worker
