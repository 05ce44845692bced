"""The dead-watch detector behind the liveness probe: judged from what this process learned
outside the Job watch (its own status writes, Jobs read afresh) against what the watch
delivered, over every Job, from memory."""

from __future__ import annotations

import pytest

from ferry.handlers.metrics import WatchFreshness

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def fresh(grace: float = 60) -> tuple[WatchFreshness, Clock]:
    clock = Clock()
    return WatchFreshness(grace=grace, clock=clock), clock


def test_idle_cluster_is_healthy() -> None:
    watch, clock = fresh()
    watch.delivered(("ns", "a"), 5)
    clock.now = 1000
    assert watch.stale() == []


def test_an_own_write_the_watch_delivers_is_healthy() -> None:
    watch, clock = fresh()
    watch.delivered(("ns", "a"), 5)
    watch.learned(("ns", "a"), 6)
    clock.now = 30
    watch.delivered(("ns", "a"), 6)
    clock.now = 1000
    assert watch.stale() == []


def test_a_watch_event_that_beat_the_write_s_answer_is_healthy() -> None:
    watch, clock = fresh()
    watch.delivered(("ns", "a"), 6)
    watch.learned(("ns", "a"), 6)
    clock.now = 1000
    assert watch.stale() == []


def test_a_learned_version_not_delivered_past_grace_is_stale() -> None:
    watch, clock = fresh()
    watch.learned(("ns", "a"), 9)
    watch.learned(("ns", "b"), 3)
    watch.delivered(("ns", "b"), 3)
    clock.now = 59
    assert watch.stale() == []
    clock.now = 61
    assert watch.stale() == [("ns", "a")]
    watch.delivered(("ns", "a"), 8)  # an older version: still behind
    assert watch.stale() == [("ns", "a")]
    watch.delivered(("ns", "a"), 10)
    assert watch.stale() == []


def test_later_writes_keep_the_first_wait() -> None:
    watch, clock = fresh()
    watch.learned(("ns", "a"), 9)
    clock.now = 50
    watch.learned(("ns", "a"), 12)
    clock.now = 61
    assert watch.stale() == [("ns", "a")]


def test_a_deletion_ends_the_wait() -> None:
    watch, clock = fresh()
    watch.learned(("ns", "a"), 9)
    watch.deleted(("ns", "a"))
    clock.now = 1000
    assert watch.stale() == []


def test_every_job_counts_not_a_sample() -> None:
    """The old probe listed 200 Jobs; a stale Job past them went unseen."""
    watch, clock = fresh()
    keys = [("ns", f"j{i:05d}") for i in range(5000)]
    for i, key in enumerate(keys):
        watch.learned(key, i + 1)
        if key != keys[4321]:
            watch.delivered(key, i + 1)
    clock.now = 61
    assert watch.stale() == [keys[4321]]
