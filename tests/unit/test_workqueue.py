"""The reconciler's work queue: deduplication, three priorities, requeue after work, delays."""

from __future__ import annotations

import asyncio

import pytest

from ferry.handlers.workqueue import IDLE_EVERY, ROUTINE_EVERY, WorkQueue, routine_limit_for

pytestmark = pytest.mark.unit


async def _drain(q: WorkQueue[str]) -> list[str]:
    out = []
    while len(q):
        key = await q.get()
        q.done(key)
        out.append(key)
    return out


async def test_keys_are_served_once_first_in_first_out() -> None:
    q: WorkQueue[str] = WorkQueue()
    for key in ("a", "b", "a", "c", "b"):
        q.add(key)
    assert await _drain(q) == ["a", "b", "c"]


async def test_urgent_keys_overtake_routine_ones() -> None:
    q: WorkQueue[str] = WorkQueue()
    for key in ("new-1", "new-2", "new-3"):
        q.add(key)
    q.add("progress-1", urgent=True)
    q.add("progress-2", urgent=True)
    assert await _drain(q) == ["progress-1", "progress-2", "new-1", "new-2", "new-3"]


async def test_routine_keys_are_not_starved_by_a_stream_of_urgent_ones() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add("new-1")
    q.add("new-2")
    for i in range(10):
        q.add(f"progress-{i}", urgent=True)
    order = await _drain(q)
    assert order.index("new-1") == ROUTINE_EVERY - 1
    assert order.index("new-2") == 2 * ROUTINE_EVERY - 1
    assert order[-1] == "progress-9"


async def test_a_routine_key_made_urgent_moves_up_once() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add("a")
    q.add("b")
    q.add("b", urgent=True)
    q.add("b")  # already queued (urgent): not demoted, not doubled
    assert q.queued() == {"a": False, "b": True}
    assert await _drain(q) == ["b", "a"]


async def test_a_key_added_while_worked_on_comes_back_after_done_never_twice_at_once() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add("a")
    key = await q.get()
    q.add("a")
    q.add("a", urgent=True)
    assert q.queued() == {}, "an active key must not be handed to a second worker"
    q.done(key)
    assert q.queued() == {"a": True}


async def test_done_without_new_adds_leaves_nothing_queued() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add("a")
    q.done(await q.get())
    assert q.queued() == {}
    assert not q.is_active("a")


async def test_get_waits_for_an_add() -> None:
    q: WorkQueue[str] = WorkQueue()
    waiter = asyncio.create_task(q.get())
    await asyncio.sleep(0.01)
    assert not waiter.done()
    q.add("a")
    assert await asyncio.wait_for(waiter, 1) == "a"


async def test_delayed_adds_keep_the_earliest_due_time_and_can_be_forgotten() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add_after("a", 0.05)
    q.add_after("a", 10)  # later: ignored
    q.add_after("b", 10)
    q.add_after("b", 0.05)  # sooner: replaces
    q.add_after("c", 0.05)
    q.forget("c")
    await asyncio.sleep(0.2)
    assert q.queued() == {"a": False, "b": False}
    q.close()


async def test_a_zero_delay_is_an_add() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add_after("a", 0)
    assert q.queued() == {"a": False}


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_each_key_handed_out_reports_how_long_it_waited() -> None:
    clock = FakeClock()
    q: WorkQueue[str] = WorkQueue(clock=clock)
    waits: list[tuple[float, bool]] = []
    q.on_wait = lambda seconds, urgent: waits.append((seconds, urgent))
    q.add("a")
    clock.now += 2
    q.add("b", urgent=True)
    q.add("a")  # already queued: its wait goes on from the first add
    clock.now += 3
    assert await q.get() == "b"
    assert await q.get() == "a"
    assert waits == [(3.0, True), (5.0, False)]


async def test_a_promoted_key_waits_from_when_it_was_first_queued() -> None:
    clock = FakeClock()
    q: WorkQueue[str] = WorkQueue(clock=clock)
    waits: list[tuple[float, bool]] = []
    q.on_wait = lambda seconds, urgent: waits.append((seconds, urgent))
    q.add("a")
    clock.now += 1
    q.add("a", urgent=True)
    clock.now += 1
    await q.get()
    assert waits == [(2.0, True)]


async def test_a_key_requeued_after_its_work_waits_from_the_end_of_that_work() -> None:
    clock = FakeClock()
    q: WorkQueue[str] = WorkQueue(clock=clock)
    waits: list[float] = []
    q.on_wait = lambda seconds, urgent: waits.append(seconds)
    q.add("a")
    await q.get()
    clock.now += 10
    q.add("a")  # while active: queued again when done
    clock.now += 5
    q.done("a")
    clock.now += 1
    await q.get()
    assert waits == [0.0, 1.0]


async def test_workers_beyond_the_routine_limit_are_kept_for_urgent_keys() -> None:
    q: WorkQueue[str] = WorkQueue(routine_limit=2)
    for key in ("new-1", "new-2", "new-3"):
        q.add(key)
    # Two first passes are worked on (each waiting for its create's turn, say).
    assert [await q.get(), await q.get()] == ["new-1", "new-2"]
    # A third worker does not take new-3: it waits, and takes the ended pod's Job at once.
    third = asyncio.create_task(q.get())
    await asyncio.sleep(0.01)
    assert not third.done()
    q.add("ended", urgent=True)
    assert await asyncio.wait_for(third, 1) == "ended"
    q.done("ended")
    # new-3 waits until a routine key is done.
    fourth = asyncio.create_task(q.get())
    await asyncio.sleep(0.01)
    assert not fourth.done()
    q.done("new-1")
    assert await asyncio.wait_for(fourth, 1) == "new-3"


async def test_at_the_routine_limit_urgent_keys_are_served_without_a_routine_turn() -> None:
    q: WorkQueue[str] = WorkQueue(routine_limit=1)
    q.add("new-1")
    q.add("new-2")
    assert await q.get() == "new-1"
    urgent = [f"progress-{i}" for i in range(ROUTINE_EVERY + 2)]
    for key in urgent:
        q.add(key, urgent=True)
    # While new-1 is worked on, new-2 never takes the routine turn from an urgent key.
    got = [await q.get() for _ in urgent]
    assert got == urgent


@pytest.mark.parametrize(("workers", "limit"), [(1, 1), (2, 1), (4, 1), (8, 2), (16, 4)])
def test_routine_keys_get_a_quarter_of_the_workers(workers: int, limit: int) -> None:
    assert routine_limit_for(workers) == limit


async def test_idle_keys_come_after_urgent_and_routine_ones() -> None:
    q: WorkQueue[str] = WorkQueue()
    for key in ("listed-1", "listed-2"):
        q.add_idle(key)
    q.add("new-1")
    q.add("progress-1", urgent=True)
    q.add_idle("new-1")  # already queued routine: not demoted
    assert await _drain(q) == ["progress-1", "new-1", "listed-1", "listed-2"]


async def test_an_idle_key_added_again_with_a_higher_priority_is_served_once_there() -> None:
    q: WorkQueue[str] = WorkQueue()
    for key in ("listed-1", "listed-2", "listed-3"):
        q.add_idle(key)
    q.add("listed-3", urgent=True)  # a pod of it turned up
    q.add("listed-2")
    assert q.queued() == {"listed-1": False, "listed-2": False, "listed-3": True}
    assert await _drain(q) == ["listed-3", "listed-2", "listed-1"]
    # Served, then queued idle again: served once more, not twice.
    q.add_idle("listed-3")
    assert await _drain(q) == ["listed-3"]


async def test_idle_keys_are_not_starved_by_a_stream_of_routine_ones() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add_idle("listed-1")
    for i in range(2 * IDLE_EVERY):
        q.add(f"new-{i}")
    order = await _drain(q)
    assert order.index("listed-1") == IDLE_EVERY - 1


async def test_idle_keys_count_against_the_routine_limit() -> None:
    q: WorkQueue[str] = WorkQueue(routine_limit=1)
    q.add_idle("listed-1")
    q.add_idle("listed-2")
    first = await q.get()
    assert first == "listed-1"
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(q.get(), 0.05)  # the one routine slot is taken
    q.add("progress-1", urgent=True)
    assert await asyncio.wait_for(q.get(), 1) == "progress-1"
    q.done(first)
    assert await asyncio.wait_for(q.get(), 1) == "listed-2"
