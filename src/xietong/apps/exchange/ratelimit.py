"""Per-grant rate limits: a token bucket per grant, in the gateway's process.

A grant allows ``rate_per_minute`` queries: the bucket holds that many tokens and
refills continuously (rate/60 per second), so a consumer may burst up to a minute's
allowance and then proceeds at the steady rate. Over the limit the gateway answers 429
with ``Retry-After`` (seconds until one token is back).

Buckets live in memory, keyed by (database, grant): with several gateway processes each
enforces the limit on its own share of the traffic — the limit then bounds each
process, which is what protects the provider's system behind it per connection pool.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass


@dataclass
class _Bucket:
    rate: int
    tokens: float
    stamp: float


class RateLimiter:
    def __init__(self, now: object = time.monotonic) -> None:
        self._now = now
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, int], _Bucket] = {}

    def take(self, key: tuple[str, int], per_minute: int) -> float:
        """0 when the call may proceed; else the seconds to wait for the next token."""
        now = self._now()  # type: ignore[operator]
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None or bucket.rate != per_minute:
                bucket = _Bucket(per_minute, float(per_minute), now)
                self._buckets[key] = bucket
            refill = (now - bucket.stamp) * per_minute / 60.0
            bucket.tokens = min(float(per_minute), bucket.tokens + refill)
            bucket.stamp = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) * 60.0 / per_minute


LIMITER = RateLimiter()


def retry_after(seconds: float) -> int:
    return max(1, math.ceil(seconds))
