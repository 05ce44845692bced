"""The dead-watch detector behind the liveness probe."""

from __future__ import annotations

import pytest

from ferry.handlers.metrics import WatchFreshness

pytestmark = pytest.mark.unit


def test_idle_cluster_is_healthy() -> None:
    fresh = WatchFreshness(grace=60)
    assert fresh.check({("ns", "a"): 5}, {("ns", "a"): 5}, now=0) == []
    assert fresh.check({("ns", "a"): 5}, {("ns", "a"): 5}, now=1000) == []


def test_briefly_behind_is_healthy() -> None:
    fresh = WatchFreshness(grace=60)
    assert fresh.check({("ns", "a"): 9}, {("ns", "a"): 5}, now=0) == []
    # The watch caught up before the grace period ended.
    assert fresh.check({("ns", "a"): 9}, {("ns", "a"): 9}, now=30) == []
    assert fresh.check({("ns", "a"): 9}, {("ns", "a"): 9}, now=120) == []


def test_stale_past_grace_is_reported() -> None:
    fresh = WatchFreshness(grace=60)
    assert (
        fresh.check({("ns", "a"): 9, ("ns", "b"): 3}, {("ns", "a"): 5, ("ns", "b"): 3}, now=0) == []
    )
    assert fresh.check(
        {("ns", "a"): 9, ("ns", "b"): 3}, {("ns", "a"): 5, ("ns", "b"): 3}, now=61
    ) == [("ns", "a")]


def test_object_missing_from_cache_counts_as_stale() -> None:
    fresh = WatchFreshness(grace=10)
    fresh.check({("ns", "new"): 4}, {}, now=0)
    assert fresh.check({("ns", "new"): 4}, {}, now=11) == [("ns", "new")]
