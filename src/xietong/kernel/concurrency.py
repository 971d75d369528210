"""Single flight for async routes: one load per key at a time, awaited by all who ask.

When a cached value expires under load, every request in flight misses at once; each
loading it on its own (a thread and the same queries, dozens of times) is what showed
up as multi-second tails in the gateway bench. Here the first miss starts one task and
the others await that task. The task is not tied to the request that started it, so a
client that disconnects cancels only its own wait.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from anyio import to_thread

T = TypeVar("T")

_loading: dict[tuple[asyncio.AbstractEventLoop, Hashable], asyncio.Task[Any]] = {}


async def load_once(key: Hashable, load: Callable[..., T], *args: Any) -> T:
    """``load(*args)`` in a worker thread, shared by every caller of ``key`` meanwhile."""
    loop = asyncio.get_running_loop()
    slot = (loop, key)
    task = _loading.get(slot)
    if task is None:
        task = loop.create_task(to_thread.run_sync(load, *args))
        _loading[slot] = task
        task.add_done_callback(lambda _done: _loading.pop(slot, None))
    return await asyncio.shield(task)
