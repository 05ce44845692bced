"""The threads the operator's blocking API calls run in, off the event loop.

Owns: one thread pool (sized for the reconciler's workers and the watch handlers), and running
a blocking call in it from async code. Must not: know what the calls are.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar, TypeVarTuple

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


class ApiThreads:
    """`await threads.run(fn, *args)` runs the blocking `fn(*args)` in a worker thread."""

    def __init__(self, size: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix="ferry-api")

    async def run(self, fn: Callable[[*Ts], T], *args: *Ts) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def shutdown(self) -> None:
        """Stop taking calls; the ones not started yet are cancelled."""
        self._pool.shutdown(wait=False, cancel_futures=True)
