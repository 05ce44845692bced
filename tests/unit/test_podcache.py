"""The pod cache: newest pod version wins, the expectations of this process's own creates and
deletes (with their deadlines), a fresh LIST believed over the watch, strays."""

from __future__ import annotations

from typing import Any

import pytest

from ferry.handlers.podcache import EXPECTATION_SECONDS, STOPPED_SECONDS, PodCache

pytestmark = pytest.mark.unit

KEY = ("ns", "j")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _pod(
    name: str = "j-1", rv: int = 10, phase: str = "Pending", job: str = "j", **meta: Any
) -> dict[str, Any]:
    labels = {"ferry.dev/attempt": "1", "ferry.dev/role": "run"}
    if job:
        labels["ferry.dev/job"] = job
    return {
        "metadata": {
            "name": name,
            "namespace": "ns",
            "resourceVersion": str(rv),
            "labels": labels,
            **meta,
        },
        "status": {"phase": phase},
    }


def test_a_pod_of_no_job_is_not_kept() -> None:
    pods = PodCache()
    assert pods.put("ADDED", _pod(job="")) is None
    assert pods.views(KEY) == []


def test_pods_are_kept_by_job_and_only_newer_versions_replace_them() -> None:
    pods = PodCache()
    change = pods.put("ADDED", _pod(rv=10))
    assert change is not None
    assert change.job == KEY
    assert change.before is None
    assert change.after is not None
    assert change.after.phase == "Pending"
    assert not change.expected
    change = pods.put("MODIFIED", _pod(rv=12, phase="Running"))
    assert change is not None
    assert change.before is not None
    assert change.before.phase == "Pending"
    assert change.after is not None
    assert change.after.phase == "Running"
    # A late event of an older version changes nothing.
    change = pods.put("MODIFIED", _pod(rv=11, phase="Pending"))
    assert change is not None
    assert change.before == change.after
    assert [v.phase for v in pods.views(KEY)] == ["Running"]
    other = pods.put("ADDED", _pod("j-1-archive-1", rv=13))
    assert other is not None
    assert [v.name for v in pods.views(KEY)] == ["j-1", "j-1-archive-1"]
    assert pods.views(("ns", "other")) == []


def test_a_deleted_pod_is_gone() -> None:
    pods = PodCache()
    pods.put("ADDED", _pod())
    change = pods.put("DELETED", _pod(rv=11))
    assert change is not None
    assert change.before is not None
    assert change.after is None
    assert pods.views(KEY) == []


def test_a_created_pod_is_awaited_until_the_watch_shows_it() -> None:
    pods = PodCache()
    pods.expect_created(KEY, "j-1")
    assert pods.unseen_created(KEY) == {"j-1"}
    change = pods.put("ADDED", _pod())
    assert change is not None
    assert change.expected, "the first event of a pod this process created"
    assert pods.unseen_created(KEY) == set()
    change = pods.put("MODIFIED", _pod(rv=11))
    assert change is not None
    assert not change.expected, "only the first event is"


def test_an_event_that_beats_the_create_call_meets_the_expectation() -> None:
    pods = PodCache()
    pods.put("ADDED", _pod())  # the watch was faster than the create call's return
    pods.expect_created(KEY, "j-1")
    assert pods.unseen_created(KEY) == set()
    change = pods.put("MODIFIED", _pod(rv=11))
    assert change is not None
    assert not change.expected, "the expectation met in the cache is no longer held"


def test_expectations_run_out_after_their_deadline() -> None:
    clock = Clock()
    pods = PodCache(monotonic=clock)
    pods.expect_created(KEY, "j-1")
    pods.expect_deleted(KEY, "j-2")
    clock.now += EXPECTATION_SECONDS - 0.1
    assert pods.unseen_created(KEY) == {"j-1"}
    assert pods.deleting(KEY) == {"j-2"}
    clock.now += 0.2
    assert pods.unseen_created(KEY) == set(), "a lost event does not block the Job for ever"
    assert pods.deleting(KEY) == set()


def test_a_forgotten_expectation_is_no_longer_awaited() -> None:
    pods = PodCache()
    pods.expect_created(KEY, "j-1")
    assert pods.forget_created(KEY, "j-1")
    assert not pods.forget_created(KEY, "j-1")
    assert pods.unseen_created(KEY) == set()


@pytest.mark.parametrize(
    ("kind", "meta"),
    [("DELETED", {}), ("MODIFIED", {"deletionTimestamp": "2026-03-01T12:00:00Z"})],
)
def test_a_deleted_pod_is_deleting_until_the_watch_says_so(kind: str, meta: dict[str, Any]) -> None:
    pods = PodCache()
    pods.put("ADDED", _pod())
    pods.expect_deleted(KEY, "j-1")
    assert pods.deleting(KEY) == {"j-1"}
    pods.put("MODIFIED", _pod(rv=11, phase="Running"))
    assert pods.deleting(KEY) == {"j-1"}, "an unrelated update does not end it"
    pods.put(kind, _pod(rv=12, **meta))
    assert pods.deleting(KEY) == set()


def test_a_fresh_listing_replaces_what_the_watch_showed() -> None:
    pods = PodCache()
    pods.put("ADDED", _pod("j-1-archive-1"))
    foreign = _pod("x")
    del foreign["metadata"]["labels"]["ferry.dev/role"]  # no view: not one of Ferry's pods
    views = pods.replace(KEY, [_pod("j-1", rv=20, phase="Running"), foreign])
    assert [(v.name, v.phase) for v in views] == [("j-1", "Running")]
    assert pods.views(KEY) == views
    assert pods.replace(KEY, []) == []
    assert pods.views(KEY) == []


def test_a_stray_mark_is_taken_once() -> None:
    pods = PodCache()
    assert not pods.is_stray(KEY)
    pods.mark_stray(KEY)
    assert pods.is_stray(KEY)
    assert pods.take_stray(KEY)
    assert not pods.is_stray(KEY)
    assert not pods.take_stray(KEY)


def test_a_run_pod_kueue_stopped_is_remembered_as_ended_a_while_after_its_deletion() -> None:
    clock = Clock()
    pods = PodCache(monotonic=clock)
    stopped = _pod(uid="u-stopped", phase="Running")
    stopped["status"]["conditions"] = [
        {"type": "TerminationTarget", "status": "True", "reason": "Preempted", "message": "m"}
    ]
    pods.put("MODIFIED", stopped)
    pods.put("DELETED", stopped)
    (view,) = pods.views(KEY)
    assert (view.name, view.stopped, view.phase, view.deleting, view.live) == (
        "j-1",
        "Preempted: m",
        "Failed",
        True,
        False,
    )
    clock.now += STOPPED_SECONDS
    assert pods.views(KEY) == []
    # A pod deleted without Kueue's mark is simply gone.
    pods.put("DELETED", _pod(name="j-2", uid="u-2", phase="Running"))
    assert pods.views(KEY) == []
