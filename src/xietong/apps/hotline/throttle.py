"""Per-client rate limits on ticket intake (the public form and the API).

A visitor (not signed in) is counted by client IP — cookies are free to drop, so a
session would not hold anyone back; a signed-in agent or a connected system (API key)
by its identity, with a higher limit (the 12345 call centre pushes every call). Moving
windows from the ``limits`` library, kept in the memory of this process, one store per
application, made when the app is built (``app_state`` hook): a restart forgets the
counts, which only errs towards letting citizens in.
Behind a reverse proxy, run uvicorn with ``--proxy-headers --forwarded-allow-ips`` so
that the client IP is the citizen's, not the proxy's (ADR 0061).
"""

from __future__ import annotations

import math
import threading
import time
from functools import lru_cache

from fastapi import Request
from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from xietong.kernel.access import Actor
from xietong.kernel.context import Context
from xietong.kernel.errors import RateLimited

NAMESPACE = "hotline.intake"


@lru_cache(maxsize=16)
def _items(spec: str) -> tuple[RateLimitItem, ...]:
    return tuple(parse_many(spec))


class IntakeLimiter:
    def __init__(self) -> None:
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        # test-then-hit of several windows is no single operation of the storage: two
        # submissions at once would both pass the test of the last free slot
        self._lock = threading.Lock()

    def hit(self, spec: str, client: str) -> None:
        """Count one submission by ``client``, or raise ``RateLimited`` (nothing counted)."""
        with self._lock:
            self._hit(_items(spec), client)

    def _hit(self, items: tuple[RateLimitItem, ...], client: str) -> None:
        for item in items:
            if not self._limiter.test(item, NAMESPACE, client):
                reset, _remaining = self._limiter.get_window_stats(item, NAMESPACE, client)
                retry = max(1, math.ceil(reset - time.time()))
                raise RateLimited(
                    f"提交过于频繁（每{_per_zh(item)}最多 {item.amount} 件），请 {retry} 秒后再试",
                    f"Too many tickets from this client (at most {item.amount} per "
                    f"{_per_en(item)}); try again in {retry} s",
                    code="intake_rate_limited",
                    details={"retry_after_s": retry, "limit": str(item)},
                )
        for item in items:
            self._limiter.hit(item, NAMESPACE, client)


def _per_zh(item: RateLimitItem) -> str:
    unit = {"second": "秒", "minute": "分钟", "hour": "小时", "day": "天", "month": "月"}
    name = unit.get(item.GRANULARITY.name, item.GRANULARITY.name)
    return name if item.multiples == 1 else f" {item.multiples} {name}"


def _per_en(item: RateLimitItem) -> str:
    name = item.GRANULARITY.name
    return name if item.multiples == 1 else f"{item.multiples} {name}s"


def check_intake(request: Request, ctx: Context, actor: Actor) -> None:
    """Count this submission against its client's limit (raises ``RateLimited``)."""
    limiter: IntakeLimiter = request.app.state.hotline_intake_limiter  # see plugin.app_state
    if actor.is_authenticated:
        spec, client = ctx.settings.hotline_intake_rate_agent, f"actor:{actor.label}"
    else:
        host = request.client.host if request.client else "unknown"
        spec, client = ctx.settings.hotline_intake_rate_public, f"ip:{host}"
    limiter.hit(spec, client)
