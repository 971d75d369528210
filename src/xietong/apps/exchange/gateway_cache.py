"""What the gateway remembers between queries: catalogue data and grants, for a bound time.

A gateway query needs the resource (id, provider, item types), its connector and the
consumer's grants. Read from the database, that is three or four statements per query —
more than the rest of the gateway's work. Both are cached per process:

- **catalogue and connector**, ``META_TTL_S`` (2 s): they change rarely, and an edit in
  this process (``connector_service``) drops the entry at once;
- **grants**, ``GRANT_TTL_S`` (1 s), per (resource, consumer departments): a revocation,
  a new rate limit or a new grant made in this process drops every grant entry at once
  (``forget_grants``); one made by another process (another gateway worker, the
  approval consumer in a separate ``xietong worker``) is seen within ``GRANT_TTL_S``.
  That is the bound on "a revoked grant stops working": immediately here, at most one
  second elsewhere. Expiry is computed from the cached dates at every query.

``now`` is ``time.monotonic`` (tests replace it to step over the bound).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any, Generic, TypeVar

META_TTL_S = 2.0
GRANT_TTL_S = 1.0
MAX_ENTRIES = 10_000  # a bound on memory; past it the cache starts afresh

now: Callable[[], float] = time.monotonic

V = TypeVar("V")


class TtlCache(Generic[V]):
    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._entries: dict[Any, tuple[float, V]] = {}

    def get(self, key: Any) -> V | None:
        found = self._entries.get(key)
        if found is None or now() - found[0] >= self.ttl_s:
            return None
        return found[1]

    def put(self, key: Any, value: V, read_at: float) -> None:
        """``read_at``: ``now()`` taken *before* the read, so the bound holds from then."""
        with self._lock:
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            self._entries[key] = (read_at, value)

    def pop(self, key: Any) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


@dataclass(frozen=True)
class GrantSnapshot:
    """The fields of a grant the gateway uses (``grant_state`` reads the same names)."""

    id: int
    consumer_id: int
    items: tuple[str, ...]
    masked: dict[str, str]
    purpose: str
    valid_from: date
    valid_until: date
    rate_per_minute: int
    status: str


META: TtlCache[Any] = TtlCache(META_TTL_S)
GRANTS: TtlCache[tuple[GrantSnapshot, ...]] = TtlCache(GRANT_TTL_S)


def forget_grants() -> None:
    """After a grant changed in this process: the next query reads grants again."""
    GRANTS.clear()


def forget_resource(db_url: str, code: str) -> None:
    """After a resource, its items or its connector changed in this process: the next
    query reads the catalogue again (other processes within ``META_TTL_S``)."""
    META.pop((db_url, code))
