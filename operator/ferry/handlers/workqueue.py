"""The reconciler's work queue: deduplicated keys in three priorities, and delayed adds.

Owns: which Job is worked on next. A key is queued at most once; a key added while it is being
worked on is queued again when that work ends (never twice at once). Urgent keys (a Job whose
pod moved on, a user's change to a Job Ferry already works on) are served before routine ones
(a new Job's first pass, periodic resyncs), first-in first-out within each priority: in a burst
of new Jobs, a Job whose pod has ended is recorded as done without waiting behind every first
pass. So that new Jobs are not starved when progress never stops (a machine running at its
limit), every `ROUTINE_EVERY`-th key handed out while both wait is a routine one. Idle keys
(the first pass owed to each finished Job a listing brought: 50,000 of them at a start) come
after both, so that a new Job does not wait behind them, and every `IDLE_EVERY`-th routine
hand-out while idle keys wait is an idle one, so that they are not starved either; a key
queued idle and added again with a higher priority is promoted (its old place is skipped when
reached). At most `routine_limit` routine or idle keys are worked on at once: the other
workers are kept for urgent ones,
so that in a burst, when every first pass waits for its create's turn in the client's rate
limit, a Job whose pod has ended still finds a worker at once. Delayed adds keep the earliest
due time per key. Each key handed out reports how long it waited since it was queued
(`on_wait`, the queue-wait metric); a delayed add waits from when it is due. Must not: know
what a key means.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)

URGENT = 0
ROUTINE = 1
IDLE = 2
#: A routine key is handed out after at most this many urgent ones in a row (about the number
#: of progress passes of one Job: its pod created, scheduled, running, ended).
ROUTINE_EVERY = 5
#: An idle key is handed out after at most this many routine ones in a row.
IDLE_EVERY = 10


def routine_limit_for(workers: int) -> int:
    """Routine keys worked on at once with `workers` workers: a quarter of them, at least one
    (a create waits for its token, not for a worker: two workers keep the creates at the
    client's rate), the rest kept for urgent keys."""
    return max(1, workers // 4)


class WorkQueue(Generic[K]):
    """Keys to work on. `get` hands out a key and marks it active until `done`."""

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, routine_limit: int | None = None
    ) -> None:
        self.clock = clock
        #: At most this many routine keys worked on at once (None: no limit).
        self.routine_limit = routine_limit
        #: The routine keys being worked on.
        self._routine_active: set[K] = set()
        #: Told the seconds each key handed out waited, and whether it was urgent.
        self.on_wait: Callable[[float, bool], None] | None = None
        #: When each queued key was queued (kept when it is promoted to urgent).
        self._since: dict[K, float] = {}
        self._lanes: tuple[deque[K], deque[K], deque[K]] = (deque(), deque(), deque())
        #: Queued keys and the lane they wait in.
        self._queued: dict[K, int] = {}
        #: Keys being worked on, with the lane to requeue them in when added meanwhile.
        self._active: dict[K, int | None] = {}
        self._timers: dict[K, tuple[float, asyncio.TimerHandle]] = {}
        self._ready = asyncio.Event()
        self._urgent_in_a_row = 0
        self._routine_in_a_row = 0

    def __len__(self) -> int:
        return len(self._queued)

    def add(self, key: K, urgent: bool = False) -> None:
        self._add(key, URGENT if urgent else ROUTINE)

    def add_idle(self, key: K) -> None:
        """Queue `key` after every urgent and routine key (unless it waits already)."""
        self._add(key, IDLE)

    def _add(self, key: K, lane: int) -> None:
        if key in self._active:
            again = self._active[key]
            self._active[key] = lane if again is None else min(again, lane)
            return
        queued = self._queued.get(key)
        if queued is not None and queued <= lane:
            return
        if queued == ROUTINE:
            self._lanes[queued].remove(key)  # promoted: rare, and the lane is short then
        elif queued is None:
            self._since[key] = self.clock()
        self._queued[key] = lane
        self._lanes[lane].append(key)
        self._ready.set()

    def add_after(self, key: K, delay: float, urgent: bool = False) -> None:
        """Add `key` after `delay` seconds, unless it is already due sooner."""
        if delay <= 0:
            self.add(key, urgent)
            return
        loop = asyncio.get_running_loop()
        due = loop.time() + delay
        current = self._timers.get(key)
        if current is not None and current[0] <= due:
            return
        if current is not None:
            current[1].cancel()
        self._timers[key] = (due, loop.call_at(due, self._fire, key, urgent))

    def _fire(self, key: K, urgent: bool) -> None:
        self._timers.pop(key, None)
        self.add(key, urgent)

    def forget(self, key: K) -> None:
        """Drop a pending delayed add (the object is gone)."""
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer[1].cancel()

    def _routine_open(self) -> bool:
        return self.routine_limit is None or len(self._routine_active) < self.routine_limit

    def _skip_promoted(self) -> None:
        """Drop the idle lane's leading places of keys promoted (or handed out) since."""
        idle = self._lanes[IDLE]
        while idle and self._queued.get(idle[0]) != IDLE:
            idle.popleft()

    async def get(self) -> K:
        """The next key, urgent ones first, idle ones last; it stays active until
        `done(key)`."""
        urgent, routine, idle = self._lanes
        self._skip_promoted()
        while not urgent and not ((routine or idle) and self._routine_open()):
            self._ready.clear()
            await self._ready.wait()
            self._skip_promoted()
        later = (routine or idle) and self._routine_open()
        if urgent and (not later or self._urgent_in_a_row < ROUTINE_EVERY - 1):
            self._urgent_in_a_row += 1
            key = urgent.popleft()
        else:
            self._urgent_in_a_row = 0
            if routine and (not idle or self._routine_in_a_row < IDLE_EVERY - 1):
                self._routine_in_a_row += 1
                key = routine.popleft()
            else:
                self._routine_in_a_row = 0
                key = idle.popleft()
            self._routine_active.add(key)
        lane = self._queued.pop(key)
        self._active[key] = None
        since = self._since.pop(key, None)
        if self.on_wait is not None and since is not None:
            self.on_wait(self.clock() - since, lane == URGENT)
        return key

    def done(self, key: K) -> None:
        if key in self._routine_active:
            self._routine_active.discard(key)
            self._ready.set()  # a routine key may be handed out again
        again = self._active.pop(key, None)
        if again is not None:
            self.add(key, urgent=again == URGENT)

    def is_active(self, key: K) -> bool:
        return key in self._active

    def queued(self) -> dict[K, bool]:
        """The keys waiting, each with whether it is urgent."""
        return {k: lane == URGENT for k, lane in self._queued.items()}

    def due_in(self, key: K) -> float | None:
        """Seconds until the delayed add of `key` fires; None when none is pending."""
        timer = self._timers.get(key)
        return None if timer is None else timer[0] - asyncio.get_running_loop().time()

    def clear(self) -> None:
        """Forget every waiting key (not the active ones, not the delayed adds)."""
        for lane in self._lanes:
            lane.clear()
        self._queued.clear()
        self._since.clear()

    def close(self) -> None:
        for _, handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
