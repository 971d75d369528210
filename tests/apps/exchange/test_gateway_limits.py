"""What the gateway caches and counts: the bounds on a revocation, the shared rate limit."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from tests.apps.exchange.conftest import Sharing
from tests.apps.exchange.test_gateway import API, grant, query
from xietong.apps.exchange import gateway_cache
from xietong.apps.exchange.ratelimit import RateLimiter
from xietong.apps.exchange.sharing_models import Grant, RateWindow
from xietong.kernel.context import Context
from xietong.kernel.org import systems
from xietong.kernel.org.models import ConnectedSystem


class Clock:
    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def test_a_revocation_elsewhere_takes_effect_within_the_grant_bound(
    sharing: Sharing, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = sharing
    grant(s)
    clock = Clock()
    monkeypatch.setattr(gateway_cache, "now", clock)
    assert query(s).status_code == 200  # grants read and cached
    # another process revokes (no in-process invalidation reaches this one)
    with s.world.ctx.db.write_session() as session, session.begin():
        session.execute(update(Grant).values(status="revoked"))
    clock.now += gateway_cache.GRANT_TTL_S / 2
    assert query(s).status_code == 200  # within the bound: still the cached grant
    clock.now += gateway_cache.GRANT_TTL_S / 2
    denied = query(s)
    assert denied.status_code == 403 and denied.json()["code"] == "no_grant"


def test_a_revocation_here_takes_effect_at_once(
    sharing: Sharing, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = sharing
    made = grant(s)
    monkeypatch.setattr(gateway_cache, "now", Clock())  # the cache never expires by itself
    assert query(s).status_code == 200
    revoked = s.world.client.post(
        f"{API}/grants/{made['grant_id']}/revoke", json={"reason": "停止共享"}, headers=s.provider
    )
    assert revoked.status_code == 200
    assert query(s).json()["code"] == "no_grant"
    again = s.world.client.post(
        f"{API}/requests",
        json={
            "resource_code": s.code,
            "items": ["姓名"],
            "purpose": "核验",
            "legal_basis": "依据",
            "valid_until": made["valid_until"],
        },
        headers=s.consumer,
    )
    assert again.status_code == 201 and again.json()["status"] == "approved"
    assert query(s).status_code == 200  # a new grant is seen at once too


def test_api_keys_are_cached_for_a_bounded_time(
    sharing: Sharing, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = sharing
    grant(s)
    ctx = s.world.ctx
    clock = Clock()
    monkeypatch.setattr(systems, "_monotonic", clock)
    assert query(s).status_code == 200
    actor = systems.cached_api_key_actor(ctx, s.system_key)
    assert actor is not None and actor.kind == "system"
    assert systems.cached_api_key_actor(ctx, "xt_unknown") is None
    # deactivated by another process: seen within KEY_CACHE_TTL_S
    with ctx.db.write_session() as session, session.begin():
        session.execute(update(ConnectedSystem).values(active=False))
    assert query(s).status_code == 200
    clock.now += systems.KEY_CACHE_TTL_S
    assert systems.cached_api_key_actor(ctx, s.system_key) is None
    assert query(s).status_code == 401


def test_sliding_window_and_retry_after() -> None:
    clock = Clock(60 * 1000.0)  # the start of a window
    limiter = RateLimiter(clock)
    key = ("db", 1)
    assert [limiter.take(key, 3) for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limiter.take(key, 3)
    # nothing committed yet: the three pending ones count; the window must end and then
    # a third of it pass before 3 × (1 − t/60) + 1 ≤ 3
    assert wait == pytest.approx(60 + 20)
    limiter.release([(key, 1)])  # one failed before it was logged
    assert limiter.take(key, 3) == 0.0
    # committed: the counts come from the database from now on
    limiter.committed({key: 3}, {key: (1000, 0, 3)})
    clock.now += 90  # half-way through the next window: 3 × 0.5 + 0 = 1.5
    assert limiter.take(key, 3) == 0.0
    assert limiter.take(key, 3) > 0  # 1.5 + 1 + 1 > 3
    clock.now += 60  # two windows on: all forgotten, pending is this process's own
    limiter.release([(key, 1)])
    assert limiter.take(key, 3) == 0.0


def test_the_limit_is_shared_by_processes_through_the_database(ctx: Context) -> None:
    """Two limiters stand for two gateway processes on one database."""
    clock = Clock(60 * 2000.0 + 1)
    first, second = RateLimiter(clock), RateLimiter(clock)
    key = (ctx.db.url, 7)

    def commit(limiter: RateLimiter, count: int) -> None:
        with ctx.db.write_session() as session, session.begin():
            seen = limiter.record(session.connection(), ctx.db.url, {7: count})
        limiter.committed({key: count}, seen)

    for _ in range(3):
        assert first.take(key, 5) == 0.0
    commit(first, 3)
    assert second.take(key, 5) == 0.0  # it has not seen the first one's queries yet …
    commit(second, 1)  # … and learns them at its own commit: 4 in this window
    assert second.take(key, 5) == 0.0
    assert second.take(key, 5) > 0  # 5 + 1 > 5
    commit(second, 1)
    assert first.take(key, 5) == 0.0  # its last view (3) is stale: the bound in the docs
    commit(first, 1)
    assert first.take(key, 5) > 0  # now it sees 6 committed
    with ctx.db.read() as session:
        windows = session.scalars(select(RateWindow)).all()
        assert [(w.grant_id, w.count) for w in windows] == [(7, 6)]
    clock.now += 120  # two windows later the old one is swept at the next commit
    assert first.take(key, 5) == 0.0
    commit(first, 1)
    with ctx.db.read() as session:
        assert [w.count for w in session.scalars(select(RateWindow))] == [1]


def test_the_gateway_counts_only_logged_queries(sharing: Sharing) -> None:
    s = sharing
    made = grant(s)
    s.world.client.put(
        f"{API}/grants/{made['grant_id']}/rate-limit",
        json={"rate_per_minute": 2},
        headers=s.provider,
    )
    beyond = query(s, {"items": ["手机号码"]})  # denied before the provider: not counted
    assert beyond.status_code == 403
    assert [query(s).status_code for _ in range(3)] == [200, 200, 429]
    with s.world.ctx.db.read() as session:
        counted = session.scalars(select(RateWindow.count)).all()
    assert counted == [2]


def test_a_warm_query_reads_nothing_but_writes_its_batch(sharing: Sharing) -> None:
    """With the caches warm, the statements of a query are its batch's commit only."""
    from sqlalchemy import event

    s = sharing
    grant(s)
    assert query(s).status_code == 200  # warm: key, catalogue, grants, connector
    statements: list[str] = []

    def seen(_conn, _cursor, statement, *_args) -> None:
        statements.append(" ".join(statement.split())[:60])

    engine = s.world.ctx.db.engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        assert query(s).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    tables = ("connected_system", "department", "exchange_grant", "exchange_resource")
    assert not [sql for sql in statements if any(f"FROM {t}" in sql for t in tables)]
    assert any("INSERT INTO exchange_query_log" in sql for sql in statements)
    assert any("INSERT INTO exchange_rate_window" in sql for sql in statements)
    assert len(statements) <= 12, statements


def test_a_withdrawal_here_takes_effect_at_once(
    sharing: Sharing, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = sharing
    grant(s)
    monkeypatch.setattr(gateway_cache, "now", Clock())  # the cache never expires by itself
    assert query(s).status_code == 200  # the catalogue entry is cached
    withdrawn = s.world.client.post(
        f"{API}/resources/{s.code}/withdraw", json={"reason": "数据源停用"}, headers=s.provider
    )
    assert withdrawn.status_code == 200, withdrawn.text
    refused = query(s)
    assert refused.status_code == 404, refused.text


def test_a_commit_swaps_pending_for_the_windows_in_one_step() -> None:
    """A ``take`` between dropping the pending count and installing the windows that now
    hold it would see neither and admit one over the limit."""
    limiter = RateLimiter(now=lambda: 600.0)  # the start of window 10
    key = ("db", 1)
    assert limiter.take(key, 2) == 0.0 and limiter.take(key, 2) == 0.0
    assert limiter.take(key, 2) > 0  # full: two pending

    taken: list[float] = []
    inner = limiter._lock

    class Spy:
        """Takes one more query each time the lock is let go, as a racing thread could."""

        def __enter__(self) -> None:
            inner.acquire()

        def __exit__(self, *_exc: object) -> None:
            inner.release()
            limiter._lock = inner
            taken.append(limiter.take(key, 2))
            limiter._lock = spy

    spy = Spy()
    limiter._lock = spy  # type: ignore[assignment]
    limiter.committed({key: 2}, {key: (10, 0, 2)})
    limiter._lock = inner
    assert taken and all(wait > 0 for wait in taken), taken
