"""The operator's client-side rate limit: a token bucket in which status writes go first."""

from __future__ import annotations

import threading
import time

import pytest

from ferry.clients.kube import URGENT_CALLS, RateLimiter

pytestmark = pytest.mark.unit


def test_an_urgent_call_takes_the_next_token_before_routine_calls_that_waited_longer() -> None:
    limiter = RateLimiter(qps=5, burst=1)
    limiter.acquire()  # the burst is spent: the next token is due in 200 ms
    order: list[str] = []

    def call(name: str, urgent: bool) -> None:
        limiter.acquire(urgent=urgent)
        order.append(name)

    routine = [threading.Thread(target=call, args=(f"pod-{i}", False)) for i in range(3)]
    for t in routine:
        t.start()
    time.sleep(0.03)  # the routine calls wait first
    urgent = threading.Thread(target=call, args=("status", True))
    urgent.start()
    for t in [*routine, urgent]:
        t.join(timeout=5)
    assert order[0] == "status", order
    assert sorted(order[1:]) == ["pod-0", "pod-1", "pod-2"]


def test_routine_calls_keep_the_rate_when_no_urgent_call_waits() -> None:
    limiter = RateLimiter(qps=50, burst=1)
    started = time.monotonic()
    for _ in range(6):
        limiter.acquire()
    elapsed = time.monotonic() - started
    # One token from the burst, five more at 20 ms each: the rate, not a stall.
    assert 0.08 <= elapsed < 0.5, elapsed


def test_only_status_writes_are_urgent() -> None:
    assert ("update", "jobs/status") in URGENT_CALLS
    assert ("create", "pods") not in URGENT_CALLS
    assert ("create", "events") not in URGENT_CALLS
