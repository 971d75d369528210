"""Per-grant rate limits, shared by every gateway process through the database.

A grant allows ``rate_per_minute`` queries in any sliding minute, estimated the usual
way from two fixed one-minute windows: ``previous × (share of the previous window
still inside the last 60 s) + current``. Over the limit the gateway answers 429 with
``Retry-After`` (the seconds until one more query fits).

The counts live in ``exchange_rate_window`` (grant, window, count). They are written
where the gateway already writes: each group commit (``group_commit._write``) adds its
batch's queries per grant with one upsert and reads back the grant's previous and
current windows — the other processes' queries included — in the same transaction. So
the check itself reads nothing: it uses the counts seen at this process's last commit
plus the queries it admitted since (``pending``). What another process admitted since
then is unseen until the next commit, so a limit can be exceeded by at most the
queries in flight at once across the other processes — a few dozen, next to limits of
hundreds or thousands a minute (ADR 0033).

Only queries that reached the provider are counted (they are the ones in the log);
denials are not.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import bindparam, text
from sqlalchemy.engine import Connection

WINDOW_S = 60.0

Key = tuple[str, int]  # (database URL, grant id)


@dataclass
class _Seen:
    window: int  # the window number of ``current``
    previous: int
    current: int


class RateLimiter:
    def __init__(self, now: Callable[[], float] = time.time) -> None:
        self._now = now
        self._lock = threading.Lock()
        self._seen: dict[Key, _Seen] = {}
        self._pending: dict[Key, int] = {}
        self._swept: dict[str, int] = {}

    def reset(self) -> None:
        """Forget everything (tests: a new database under the same URL)."""
        with self._lock:
            self._seen.clear()
            self._pending.clear()
            self._swept.clear()

    def window(self) -> int:
        return int(self._now() // WINDOW_S)

    def _counts(self, key: Key, window: int) -> tuple[int, int]:
        seen = self._seen.get(key)
        if seen is None or seen.window < window - 1:
            return 0, 0
        if seen.window == window - 1:
            return seen.current, 0
        return seen.previous, seen.current

    def take(self, key: Key, per_minute: int) -> float:
        """0 when the query may proceed (it is then pending until committed or
        released); else the seconds until one more query fits."""
        now = self._now()
        window = int(now // WINDOW_S)
        left = 1.0 - (now / WINDOW_S - window)  # share of the previous window still counted
        with self._lock:
            previous, current = self._counts(key, window)
            current += self._pending.get(key, 0)
            used = previous * left + current
            if used + 1 <= per_minute:
                self._pending[key] = self._pending.get(key, 0) + 1
                return 0.0
        # The previous window's share decays at previous/60 per second until this
        # window ends; after that, the current window's count decays the same way.
        if previous and (used + 1 - per_minute) / previous * WINDOW_S <= left * WINDOW_S:
            return (used + 1 - per_minute) / previous * WINDOW_S
        later = WINDOW_S * max(0.0, 1.0 - (per_minute - 1) / current) if current else 0.0
        return left * WINDOW_S + later

    def release(self, counts: Iterable[tuple[Key, int]]) -> None:
        """Admitted queries that will not be committed (their batch failed)."""
        with self._lock:
            self._unpend(counts)

    def _unpend(self, counts: Iterable[tuple[Key, int]]) -> None:
        for key, count in counts:
            left = self._pending.get(key, 0) - count
            if left > 0:
                self._pending[key] = left
            else:
                self._pending.pop(key, None)

    def committed(self, counts: dict[Key, int], seen: dict[Key, tuple[int, int, int]]) -> None:
        """After a commit: ``counts`` queries per grant are now in the database, whose
        windows read ``seen[key] = (window, previous, current)``."""
        # One hold of the lock: between dropping the pending count and installing the
        # windows that now include it, a ``take`` would see neither and over-admit.
        with self._lock:
            self._unpend(counts.items())
            for key, (window, previous, current) in seen.items():
                self._seen[key] = _Seen(window, previous, current)

    def record(
        self, connection: Connection, url: str, grants: dict[int, int]
    ) -> dict[Key, tuple[int, int, int]]:
        """Inside a batch's transaction: add ``grants`` (grant id → queries) to the
        current window and read back both windows of each, for ``committed``."""
        window = self.window()
        connection.execute(
            text(
                "INSERT INTO exchange_rate_window (grant_id, window_start, count)"
                " VALUES (:grant, :window, :count)"
                " ON CONFLICT (grant_id, window_start)"
                " DO UPDATE SET count = exchange_rate_window.count + excluded.count"
            ),
            [{"grant": g, "window": window, "count": n} for g, n in sorted(grants.items())],
        )
        rows = connection.execute(
            text(
                "SELECT grant_id, window_start, count FROM exchange_rate_window"
                " WHERE grant_id IN :grants AND window_start >= :since"
            ).bindparams(bindparam("grants", expanding=True)),
            {"grants": sorted(grants), "since": window - 1},
        ).all()
        seen = {g: [window, 0, 0] for g in grants}
        for grant_id, start, count in rows:
            seen[grant_id][1 if start == window - 1 else 2] = count
        if self._swept.get(url) != window:  # once a minute per process: old windows go
            self._swept[url] = window
            connection.execute(
                text("DELETE FROM exchange_rate_window WHERE window_start < :old"),
                {"old": window - 1},
            )
        return {(url, g): (w, previous, current) for g, (w, previous, current) in seen.items()}


LIMITER = RateLimiter()


def retry_after(seconds: float) -> int:
    return max(1, math.ceil(seconds))
