"""Handoff: items from a watch thread reach the loop whole and in order, many deliveries per
loop wakeup when the loop is busy, and the thread waits while `limit` items are pending."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence

import pytest

from ferry.handlers.handoff import Handoff

pytestmark = pytest.mark.unit


async def test_every_item_arrives_once_in_order_from_another_thread() -> None:
    got: list[int] = []
    handoff: Handoff[int] = Handoff(asyncio.get_running_loop(), got.extend, limit=50)

    def informer() -> None:
        for start in range(0, 10_000, 7):
            handoff.deliver(list(range(start, min(start + 7, 10_000))))

    await asyncio.to_thread(informer)
    while len(got) < 10_000:
        await asyncio.sleep(0.01)
    assert got == list(range(10_000))


async def test_a_busy_loop_is_woken_once_for_many_deliveries() -> None:
    # The loop is blocked while the thread delivers 100 batches: they all wait in one drain,
    # where the old hand-off scheduled (and woke the loop for) each batch on its own.
    batches: list[Sequence[int]] = []
    handoff: Handoff[int] = Handoff(asyncio.get_running_loop(), batches.append, limit=1_000)
    thread = threading.Thread(target=lambda: [handoff.deliver([i]) for i in range(100)])
    thread.start()
    thread.join()  # the loop is not running meanwhile: nothing is drained yet
    await asyncio.sleep(0.05)
    assert handoff.wakeups == 1
    assert [list(b) for b in batches] == [list(range(100))]


async def test_the_thread_waits_while_the_limit_is_pending() -> None:
    got: list[int] = []
    handoff: Handoff[int] = Handoff(asyncio.get_running_loop(), got.extend, limit=10)
    done = threading.Event()

    def informer() -> None:
        handoff.deliver(list(range(10)))  # fills the limit
        handoff.deliver([10])  # must wait for the loop to take the first ten
        done.set()

    thread = threading.Thread(target=informer)
    thread.start()
    time.sleep(0.2)  # the loop is blocked: nothing taken, so the second deliver waits
    assert not done.is_set()
    await asyncio.sleep(0.05)  # the loop drains; the thread goes on
    await asyncio.to_thread(done.wait, 5)
    await asyncio.sleep(0.05)
    thread.join(5)
    assert got == list(range(11))


def test_a_thread_waiting_on_a_stopped_loop_returns() -> None:
    loop = asyncio.new_event_loop()
    handoff: Handoff[int] = Handoff(loop, lambda items: None, limit=1)
    handoff.deliver([1])  # pending; the loop never runs
    loop.close()
    thread = threading.Thread(target=handoff.deliver, args=([2],))
    thread.start()
    thread.join(5)
    assert not thread.is_alive()
