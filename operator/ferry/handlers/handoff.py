"""Handing an informer's items from its thread to the event loop, in order, in batches.

Owns: `Handoff`, the one queue between a watch thread and the loop. The thread appends what
it read and wakes the loop only when no drain is already on its way, so a listing of 50,000
Jobs costs a loop wakeup per batch the loop can take, not one per network read; the loop
drains everything pending at once, in arrival order. The thread waits while `limit` items are
pending (so a listing is held a few hundred items at a time, never all at once), and stops
waiting once the loop has stopped. Must not: look into the items, or drop or reorder one.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")

#: Items pending before the informer's thread waits for the loop to take them in.
LIMIT = 500


class Handoff(Generic[T]):
    """`deliver` (from any thread) hands items to `receive` (on `loop`), in order."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        receive: Callable[[Sequence[T]], None],
        limit: int = LIMIT,
    ) -> None:
        self.loop = loop
        self.receive = receive
        self.limit = limit
        self._pending: list[T] = []
        self._scheduled = False
        self._cond = threading.Condition()
        self.wakeups = 0  # drains scheduled: a measure of how well batches coalesce

    def deliver(self, items: Sequence[T]) -> None:
        with self._cond:
            while len(self._pending) >= self.limit:
                if self._cond.wait(1.0):
                    continue
                if self.loop.is_closed() or not self.loop.is_running():
                    return  # nobody will take them: the operator is stopping
            self._pending.extend(items)
            if self._scheduled:
                return
            self._scheduled = True
            self.wakeups += 1
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: stopping
            self.loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        with self._cond:
            items, self._pending = self._pending, []
            self._scheduled = False
            self._cond.notify_all()
        if items:
            self.receive(items)
