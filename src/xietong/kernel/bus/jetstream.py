"""NATS JetStream: the distributed bus behind the same synchronous relay API.

``NatsBus`` publishes each CloudEvent on ``<prefix>.<event type>`` (``xietong.>`` by
default) with header ``Nats-Msg-Id`` = event id, so a relay that publishes an event a
second time inside the stream's duplicate window is acknowledged as a duplicate and
stored once. nats-py is asyncio; the bus keeps one event loop in a daemon thread so
the relay, the worker and the tests stay plain synchronous code.

``run_nats_consumers`` feeds the plugins' consumers from durable pull consumers, one per
consumer name: a message is acknowledged only after the consumer's transaction (effect
plus ``ProcessedEvent`` marker) committed, so a crash means redelivery, never loss, and
the marker makes the redelivery a no-op.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import threading
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, StreamConfig

from xietong.kernel.bus.consumers import (
    CloudEvent,
    Consumer,
    Handler,
    deliver_to_consumer,
    hook_consumers,
    matches,
)
from xietong.kernel.bus.relay import PublisherUnavailable
from xietong.kernel.context import Context

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_PREFIX = "xietong"
DUPLICATE_WINDOW_S = 120.0
RECONNECT_COOLDOWN_S = 5.0
_TYPE = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")


def subject_for(prefix: str, event_type: str) -> str:
    if not _TYPE.match(event_type):
        raise ValueError(f"event type {event_type!r} is not a valid NATS subject suffix")
    return f"{prefix}.{event_type}"


def filter_subject(prefix: str, pattern: str) -> str:
    """The narrowest JetStream filter covering a type pattern (the rest filtered in code)."""
    if pattern == "*" or (pattern.endswith("*") and not pattern.endswith(".*")):
        return f"{prefix}.>"
    if pattern.endswith(".*"):
        return f"{prefix}.{pattern[:-1]}>"
    return subject_for(prefix, pattern)


async def connect(url: str, name: str, timeout: float) -> NatsClient:
    """Connect, giving up after ``timeout``; once connected, reconnect for ever.

    nats-py retries a failing *first* connection endlessly when reconnects are
    unlimited, so the first connection is bounded here: the caller reports the bus
    unavailable and tries again on its next pass.
    """

    async def quiet(error: Exception) -> None:
        log.warning("NATS %s: %r", url, error)

    return await asyncio.wait_for(
        nats.connect(
            servers=[url],
            name=name,
            connect_timeout=timeout,
            allow_reconnect=True,
            max_reconnect_attempts=-1,
            error_cb=quiet,
        ),
        timeout=timeout * 2,
    )


async def ensure_stream(
    js: JetStreamContext, stream: str, prefix: str, max_age_s: float | None = None
) -> None:
    """Create the stream on ``<prefix>.>`` unless it exists (an operator may have tuned it).

    ``max_age_s`` is the bus retention window: a message older than the consumer
    markers the retention job keeps must not be redelivered, or it would apply twice.
    """
    try:
        await js.stream_info(stream)
        return
    except nats.js.errors.NotFoundError:
        pass
    config = StreamConfig(
        name=stream,
        subjects=[f"{prefix}.>"],
        duplicate_window=DUPLICATE_WINDOW_S,
        max_age=max_age_s,
    )
    try:
        await js.add_stream(config)
    except nats.js.errors.BadRequestError:
        await js.stream_info(stream)  # created meanwhile by another process: fine


class NatsBus:
    """A publisher to JetStream with its own asyncio loop thread."""

    def __init__(
        self,
        ctx: Context,
        *,
        url: str | None = None,
        stream: str | None = None,
        subject_prefix: str = DEFAULT_PREFIX,
        timeout: float = 5.0,
    ) -> None:
        resolved = url or ctx.settings.nats_url
        if not resolved:
            raise ValueError("NatsBus needs a NATS URL (XIETONG_NATS_URL)")
        self.url = resolved
        self.stream = stream or ctx.settings.nats_stream
        self.max_age_s = ctx.settings.bus_retention_days * 86400.0
        self.prefix = subject_prefix
        self.timeout = timeout
        self._nc: NatsClient | None = None
        self._js: JetStreamContext | None = None
        self._retry_at = 0.0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="xietong-nats-publisher", daemon=True
        )
        self._thread.start()

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            # Connect and publish each have their own timeout; this is the backstop.
            return future.result(timeout=self.timeout * 4)
        except TimeoutError:
            future.cancel()
            raise

    async def _jetstream(self) -> JetStreamContext:
        if self._js is not None and self._nc is not None and not self._nc.is_closed:
            return self._js
        if time.monotonic() < self._retry_at:
            # A worker pass must not wait for a connect timeout on every call while
            # NATS is down: fail at once until the cool-down ends.
            raise PublisherUnavailable(f"NATS {self.url} unreachable; retrying shortly")
        try:
            nc = await connect(self.url, "xietong-relay", self.timeout)
            js = nc.jetstream(timeout=self.timeout)
            await ensure_stream(js, self.stream, self.prefix, self.max_age_s)
        except BaseException:
            self._retry_at = time.monotonic() + RECONNECT_COOLDOWN_S
            raise
        self._nc, self._js = nc, js
        return js

    async def _publish(self, event: CloudEvent) -> bool:
        js = await self._jetstream()
        payload = json.dumps(event, ensure_ascii=False, sort_keys=True).encode("utf-8")
        ack = await js.publish(
            subject_for(self.prefix, event["type"]),
            payload,
            stream=self.stream,
            headers={"Nats-Msg-Id": str(event["id"])},
        )
        return bool(ack.duplicate)

    def publish(self, event: CloudEvent) -> None:
        self.publish_ack(event)

    def publish_ack(self, event: CloudEvent) -> bool:
        """Publish; True when JetStream recognised the message id as a duplicate."""
        try:
            return self._run(self._publish(event))
        except (TimeoutError, OSError, nats.errors.Error) as error:
            raise PublisherUnavailable(f"NATS {self.url}: {error!r}") from error

    def close(self) -> None:
        if self._loop.is_closed():
            return
        if self._nc is not None and not self._nc.is_closed:
            try:
                self._run(self._nc.close())
            except Exception:  # closing is best effort; the loop goes anyway
                log.warning("closing the NATS connection failed", exc_info=True)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()


def durable_name(consumer: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", consumer)[:200]


def run_nats_consumers(
    ctx: Context,
    stop: threading.Event,
    *,
    consumers: Sequence[Consumer] | None = None,
    url: str | None = None,
    stream: str | None = None,
    subject_prefix: str = DEFAULT_PREFIX,
    batch: int = 10,
    fetch_timeout: float = 1.0,
    ack_wait: float = 60.0,
) -> None:
    """Deliver JetStream messages to consumers until ``stop`` is set (blocks; use a thread)."""
    chosen = list(consumers) if consumers is not None else hook_consumers(ctx)
    resolved = url or ctx.settings.nats_url
    if not resolved:
        raise ValueError("run_nats_consumers needs a NATS URL (XIETONG_NATS_URL)")
    settings = _ConsumeSettings(
        resolved,
        stream or ctx.settings.nats_stream,
        subject_prefix,
        batch,
        fetch_timeout,
        ctx.settings.bus_retention_days * 86400.0,
    )
    asyncio.run(_consume_all(ctx, stop, chosen, settings, ack_wait))


@dataclass(frozen=True)
class _ConsumeSettings:
    url: str
    stream: str
    prefix: str
    batch: int
    fetch_timeout: float
    max_age_s: float | None = None


async def _consume_all(
    ctx: Context,
    stop: threading.Event,
    consumers: Sequence[Consumer],
    settings: _ConsumeSettings,
    ack_wait: float,
) -> None:
    if not consumers:
        return
    nc = await connect(settings.url, "xietong-consumers", 5.0)
    try:
        js = nc.jetstream(timeout=5.0)
        await ensure_stream(js, settings.stream, settings.prefix, settings.max_age_s)
        tasks = []
        for consumer in consumers:
            name, pattern, _handler = consumer
            subscription = await js.pull_subscribe(
                filter_subject(settings.prefix, pattern),
                durable=durable_name(name),
                stream=settings.stream,
                config=ConsumerConfig(ack_wait=ack_wait),
            )
            tasks.append(_consume(ctx, stop, consumer, subscription, settings))
        await asyncio.gather(*tasks)
    finally:
        await nc.close()


async def _consume(
    ctx: Context,
    stop: threading.Event,
    consumer: Consumer,
    subscription: JetStreamContext.PullSubscription,
    settings: _ConsumeSettings,
) -> None:
    name, pattern, handler = consumer
    while not stop.is_set():
        try:
            messages = await subscription.fetch(settings.batch, timeout=settings.fetch_timeout)
        except TimeoutError:  # nothing new (nats-py raises its own or asyncio's)
            continue
        except nats.errors.Error:
            log.warning("fetching for consumer %s failed", name, exc_info=True)
            await asyncio.sleep(settings.fetch_timeout)
            continue
        for message in messages:
            await _handle(ctx, name, pattern, handler, message)


async def _handle(ctx: Context, name: str, pattern: str, handler: Handler, message: Msg) -> None:
    try:
        event = json.loads(message.data)
        event_type = event["type"]
    except (ValueError, KeyError, TypeError):
        log.error("consumer %s: dropping a message that is not a CloudEvent", name)
        await message.term()
        return
    try:
        if matches(pattern, event_type):
            # Database work off the loop, so the connection's heartbeats keep flowing.
            await asyncio.to_thread(deliver_to_consumer, ctx, name, handler, event)
        await message.ack()
    except Exception:
        log.exception("consumer %s failed on %s; it will be redelivered", name, event.get("id"))
        delivered = message.metadata.num_delivered or 1
        # If even the nak fails, the message is unacknowledged: redelivered after ack_wait.
        with contextlib.suppress(nats.errors.Error):
            await message.nak(delay=min(5.0 * 2 ** (delivered - 1), 600.0))
