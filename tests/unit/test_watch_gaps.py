"""Watch gaps: what a listing lacks is deleted (tombstones), an older view never replaces a
newer one, and a deleted Job or pod never comes back, whatever answer raced its deletion.

The caches and the reconciler's bookkeeping over the fake API: no Kubernetes here (the real
watch expiry is tests/integration/test_watch_gaps.py)."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

from ferry.api.job import JobStatus, State
from ferry.clients.protocol import NotFoundError, Relisted, WatchEvent
from ferry.decisions import parse
from ferry.decisions.lifecycle import Plan
from ferry.handlers.jobcache import JobCache, Tombstones
from ferry.handlers.podcache import PodCache
from tests.unit.fakes import FakeKube, job_object
from tests.unit.test_reconciler_order import NS, _reconciler

pytestmark = pytest.mark.unit

KEY = (NS, "j")


def _job(name: str = "j", rv: int = 10, uid: str = "u-1", ns: str = NS) -> dict[str, Any]:
    obj = job_object({"state": "Running", "attempt": 1, "podName": f"{name}-1"}, ns)
    obj["metadata"].update(name=name, resourceVersion=str(rv), uid=uid)
    return obj


def _pod(
    name: str = "j-1", rv: int = 20, uid: str = "pod-uid-1", job: str = "j", phase: str = "Running"
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": NS,
            "uid": uid,
            "resourceVersion": str(rv),
            "labels": {"ferry.dev/job": job, "ferry.dev/attempt": "1", "ferry.dev/role": "run"},
            "ownerReferences": [{"uid": "u-1", "controller": True}],
        },
        "spec": {"nodeName": "n"},
        "status": {
            "phase": phase,
            "containerStatuses": [{"name": "app", "state": {"running": {}}}],
        },
    }


def _gone(namespace: str, name: str) -> dict[str, Any]:
    raise NotFoundError(f"Job {namespace}/{name}")


# ---------------------------------------------------------------- the Job cache


def test_a_listing_drops_the_jobs_it_lacks_that_were_known_at_its_version_or_older() -> None:
    jobs = JobCache()
    jobs.put(KEY, _job(rv=10))
    jobs.put((NS, "rested"), {**_job("rested", rv=11, uid="u-r"), "status": {"state": "Failed"}})
    assert jobs.rest((NS, "rested"))
    jobs.put((NS, "newer"), _job("newer", rv=40, uid="u-n"))  # made after the listing
    jobs.put(("other", "j"), _job(rv=5, uid="u-o", ns="other"))  # not in the listing's namespace
    gone = jobs.relisted(30, frozenset({(NS, "kept")}), NS)
    assert sorted(k for k, _ in gone) == [KEY, (NS, "rested")]
    assert dict(gone)[KEY] is not None, "the Job as it was known goes with its tombstone"
    assert KEY not in jobs
    assert (NS, "rested") not in jobs
    assert (NS, "newer") in jobs
    assert ("other", "j") in jobs
    # The listing (a stale event alike) never brings a deleted Job back.
    assert not jobs.put(KEY, _job(rv=10))
    assert not jobs.put((NS, "rested"), _job("rested", rv=11, uid="u-r"), refresh=True)


def test_a_job_made_again_under_a_deleted_jobs_name_is_kept() -> None:
    jobs = JobCache()
    jobs.put(KEY, _job(rv=10))
    jobs.delete(KEY, _job(rv=12))
    assert jobs.put(KEY, _job(rv=50, uid="u-2"))
    assert jobs.get(KEY) is not None


def test_tombstones_are_forgotten_after_their_time() -> None:
    now = [0.0]
    stones = Tombstones(seconds=10, monotonic=lambda: now[0])
    stones.add("a")
    now[0] = 5
    stones.add("b")
    assert "a" in stones
    assert "b" in stones
    now[0] = 12
    stones.add("c")
    assert "a" not in stones
    assert "b" in stones
    assert len(stones) == 2


# ---------------------------------------------------------------- the pod cache


def test_a_listing_drops_the_pods_it_lacks_as_deletions() -> None:
    pods = PodCache()
    pods.put(None, _pod("j-1", rv=20))
    pods.put(None, _pod("j-2", rv=45, uid="pod-uid-2"))  # made after the listing
    pods.expect_deleted(KEY, "j-1")
    changes = pods.relisted(30, frozenset(), NS)
    assert [(c.job, c.before.name if c.before else None, c.after) for c in changes] == [
        (KEY, "j-1", None)
    ]
    assert [v.name for v in pods.views(KEY)] == ["j-2"]
    assert pods.deleting(KEY) == set(), "its deletion was seen"
    # A later event or listing of the pod from before its deletion does not bring it back.
    assert pods.put(None, _pod("j-1", rv=20)) is None
    assert pods.put("MODIFIED", _pod("j-1", rv=25)) is None
    assert [v.name for v in pods.views(KEY)] == ["j-2"]


def test_a_listing_of_another_namespace_drops_nothing_here() -> None:
    pods = PodCache()
    pods.put(None, _pod(rv=20))
    assert pods.relisted(30, frozenset(), "elsewhere") == []
    assert [v.name for v in pods.views(KEY)] == ["j-1"]


def test_the_confirmation_listing_brings_back_no_deleted_pod_and_no_older_view() -> None:
    pods = PodCache()
    pods.put(None, _pod("j-1", rv=20))
    pods.put(None, _pod("j-2", rv=21, uid="pod-uid-2", phase="Pending"))
    pods.put("MODIFIED", _pod("j-2", rv=30, uid="pod-uid-2", phase="Running"))
    pods.put("DELETED", _pod("j-1", rv=31))
    # A LIST answered from before both events arrives after them.
    views = pods.replace(
        KEY, [_pod("j-1", rv=20), _pod("j-2", rv=21, uid="pod-uid-2", phase="Pending")]
    )
    assert [(v.name, v.phase) for v in views] == [("j-2", "Running")]


def test_the_deletion_of_an_older_pod_of_a_name_leaves_the_newer_one() -> None:
    pods = PodCache()
    pods.put("ADDED", _pod("j-1", rv=40, uid="pod-uid-new"))
    change = pods.put("DELETED", _pod("j-1", rv=41, uid="pod-uid-old"))
    assert change is not None
    assert change.before == change.after
    assert [v.uid for v in pods.views(KEY)] == ["pod-uid-new"]


# ---------------------------------------------------------------- the reconciler


async def test_pods_deleted_in_a_watch_gap_bring_their_job_back() -> None:
    kube = FakeKube(_job(), [])
    rec = _reconciler(kube)
    try:
        rec.job_items([WatchEvent(None, _job()), Relisted(10, frozenset({KEY}), None, "start")])
        rec.pod_items(
            [WatchEvent(None, _pod()), Relisted(20, frozenset({(NS, "j-1")}), None, "start")]
        )
        assert rec.synced["jobs"].is_set()
        assert rec.synced["pods"].is_set()
        rec.queue.clear()
        # The watch expired; the pod was deleted meanwhile: the next listing lacks it.
        rec.pod_items([Relisted(30, frozenset(), None, "expired")])
        assert rec.pods.views(KEY) == []
        assert rec.queue.queued() == {KEY: True}, "its Job looks at once"
        samples = {
            tuple(s.labels.values()): s.value
            for m in rec.metrics.registry.collect()
            if m.name.startswith("ferry_watch")
            for s in m.samples
            if s.name.endswith("_total")
        }
        assert samples[("pods", "expired")] == 1
        assert samples[("pods",)] == 1
    finally:
        await rec.stop()


async def test_a_job_deleted_in_a_watch_gap_is_forgotten_and_nothing_is_made_for_it() -> None:
    kube = FakeKube(_job(), [])
    rec = _reconciler(kube)
    try:
        rec.job_items([WatchEvent(None, _job()), Relisted(10, frozenset({KEY}), None, "start")])
        rec.pod_items(
            [WatchEvent(None, _pod()), Relisted(20, frozenset({(NS, "j-1")}), None, "start")]
        )
        kube.get_job = _gone  # type: ignore[method-assign]
        # The pods' listing comes first: the run pod looks lost while the Job is still known.
        rec.pod_items([Relisted(30, frozenset(), None, "expired")])
        await rec.reconcile(KEY)
        assert not [c for c in kube.log if c[0] in ("create", "status")], kube.log
        assert KEY not in rec.jobs, "found gone when the lost run pod was confirmed"
        # And when the Jobs' listing comes first.
        rec2 = _reconciler(FakeKube(_job(), []))
        rec2.job_items([WatchEvent(None, _job()), Relisted(10, frozenset({KEY}), None, "start")])
        rec2.job_items([Relisted(30, frozenset(), None, "expired")])
        assert KEY not in rec2.jobs
        rec2.job_event(None, _job())  # a stale view of it
        assert KEY not in rec2.jobs
        # A read of it answered from before its deletion is no reason to work on it either.
        assert await rec2.observer.observe(KEY) is None
        await rec2.stop()
    finally:
        await rec.stop()


async def test_a_status_write_racing_the_jobs_deletion_does_not_bring_it_back() -> None:
    kube = FakeKube(_job(), [_pod()])
    rec = _reconciler(kube)
    write = kube.replace_status

    def racing(kind_plural: str, obj: dict[str, Any], status: dict[str, Any]) -> Any:
        written = write(kind_plural, obj, status)
        # The Job is deleted right after the write; its DELETED event beats the write's return.
        deleted = copy.deepcopy(written)
        deleted["metadata"]["resourceVersion"] = "99"
        rec.job_event("DELETED", deleted)
        return written

    kube.replace_status = racing  # type: ignore[method-assign]
    try:
        obj = _job()
        rec.jobs.put(KEY, obj)
        plan = Plan(
            status=JobStatus(state=State.RUNNING, reason="Why", attempt=1),
            changed=True,
            actions=(),
            events=(),
            requeue_after=None,
        )
        await rec.executor.execute(KEY, obj, parse.job_view(obj), plan)
        assert KEY not in rec.jobs
    finally:
        await rec.stop()


async def test_a_job_gone_at_its_status_write_is_deleted_and_not_retried() -> None:
    kube = FakeKube(_job(), [_pod()])
    rec = _reconciler(kube)

    def gone(kind_plural: str, obj: dict[str, Any], status: dict[str, Any]) -> Any:
        raise NotFoundError("jobs ns/j")

    kube.replace_status = gone  # type: ignore[method-assign]
    try:
        obj = _job()
        rec.jobs.put(KEY, obj)
        plan = Plan(
            status=JobStatus(state=State.RUNNING, reason="Why", attempt=1),
            changed=True,
            actions=(),
            events=(),
            requeue_after=None,
        )
        assert await rec.executor.execute(KEY, obj, parse.job_view(obj), plan) is None
        assert KEY not in rec.jobs
        rec.job_event("MODIFIED", _job(rv=10))
        assert KEY not in rec.jobs
    finally:
        await rec.stop()


class FakeWatch:
    def __init__(self, resource: str) -> None:
        self.resource = resource
        self.started = False
        self.relists = 0

    def start(self) -> None:
        self.started = True

    def relist(self) -> None:
        self.relists += 1

    def stop(self) -> None:
        self.started = False


async def test_acting_starts_once_jobs_and_pods_are_listed_and_relist_asks_every_watch() -> None:
    rec = _reconciler(FakeKube(_job(), []))
    rec.apps.clear()
    watches = [FakeWatch("jobs"), FakeWatch("pods")]
    rec.watch(watches)
    assert all(w.started for w in watches)
    starting = asyncio.create_task(rec.start())
    try:
        await asyncio.sleep(0.05)
        assert not starting.done()
        assert not rec.active
        rec.job_items([Relisted(10, frozenset(), None, "start")])
        await asyncio.sleep(0.05)
        assert not starting.done(), "the pods are not listed yet"
        deliver = rec.feed("pods")
        # As from the informer's thread: handed over to the loop, waiting until taken in.
        await asyncio.to_thread(deliver, [Relisted(10, frozenset(), None, "start")])
        await asyncio.wait_for(starting, 1)
        assert rec.active
        rec.relist()
        assert [w.relists for w in watches] == [1, 1]
    finally:
        await rec.stop()
    assert not any(w.started for w in watches)
