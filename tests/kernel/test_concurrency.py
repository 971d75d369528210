"""load_once: concurrent misses share one load; its error reaches each of them."""

from __future__ import annotations

import asyncio
import time

import pytest

from xietong.kernel.concurrency import load_once


def test_concurrent_callers_share_one_load() -> None:
    calls: list[int] = []

    def load(value: int) -> int:
        calls.append(value)
        time.sleep(0.05)
        return value * 2

    async def run() -> None:
        results = await asyncio.gather(*(load_once("key", load, 21) for _ in range(10)))
        assert results == [42] * 10 and calls == [21]
        assert await load_once("key", load, 1) == 2  # finished: the next miss loads again
        assert await load_once("other", load, 3) == 6
        assert calls == [21, 1, 3]

    asyncio.run(run())


def test_an_error_reaches_every_waiter_and_a_cancelled_wait_cancels_only_itself() -> None:
    calls: list[int] = []

    def fail() -> None:
        calls.append(1)
        time.sleep(0.05)
        raise ValueError("provider table missing")

    def slow() -> str:
        time.sleep(0.1)
        return "done"

    async def run() -> None:
        results = await asyncio.gather(
            *(load_once("bad", fail) for _ in range(5)), return_exceptions=True
        )
        assert calls == [1] and all(isinstance(r, ValueError) for r in results)
        first = asyncio.ensure_future(load_once("slow", slow))
        second = asyncio.ensure_future(load_once("slow", slow))
        await asyncio.sleep(0.01)
        first.cancel()
        assert await second == "done"
        with pytest.raises(asyncio.CancelledError):
            await first

    asyncio.run(run())
