"""The reconciler's ordering of writes, with a fake API: what a killed operator relies on.

Creates come before the status write (a child is never recorded before it exists); deletes
come after it (the evidence a decision rested on is never gone before the decision is
recorded); a terminal Job with a pod still standing is looked at again to release it."""

from __future__ import annotations

import asyncio
import copy
import itertools
from datetime import timedelta
from typing import Any

import pytest

from ferry.config import OperatorConfig
from ferry.handlers.reconciler import Reconciler
from tests.unit.factories import NOW, app_dict
from tests.unit.fakes import FakeKube, job_object

pytestmark = pytest.mark.unit

NS = "ns"


def _job(status: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return job_object(status, NS, **spec)


def _ended(state: str, reason: str) -> dict[str, Any]:
    """The status of a Job that ended (attempt 1) and recorded its App."""
    return {
        "state": state,
        "reason": reason,
        "attempt": 1,
        "completionTime": NOW.isoformat(),
        "app": {"name": "solver", "version": "1.0", "image": "i", "specHash": "h"},
    }


def _pod(phase: str, state: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "j-1",
            "namespace": NS,
            "uid": "pod-uid-1",
            "labels": {"ferry.dev/job": "j", "ferry.dev/attempt": "1", "ferry.dev/role": "run"},
            "ownerReferences": [{"uid": "u-1", "controller": True}],
        },
        "spec": {"nodeName": "n"},
        "status": {"phase": phase, "containerStatuses": [{"name": "app", "state": state}]},
    }


#: Every change written at once: these tests follow the status writes themselves (holding
#: routine progress is tests/unit/test_holding.py's).
AT_ONCE = OperatorConfig(status_hold_seconds=0)


def _reconciler(kube: FakeKube) -> Reconciler:
    rec = Reconciler(kube, AT_ONCE, clock=lambda: NOW)
    rec.apps[(NS, "solver")] = {
        "metadata": {"name": "solver", "namespace": NS},
        "spec": app_dict(),
    }
    return rec


async def test_a_timed_out_run_is_recorded_before_its_pod_is_deleted() -> None:
    started = NOW - timedelta(seconds=30)
    status = {
        "state": "Running",
        "reason": "AppRunning",
        "attempt": 1,
        "podName": "j-1",
        "startTime": started.isoformat(),
        "app": {"name": "solver", "version": "1.0", "image": "i", "specHash": "h"},
    }
    running = _pod("Running", {"running": {"startedAt": started.isoformat()}})
    kube = FakeKube(_job(status, maxRunSeconds=10), [running])
    rec = _reconciler(kube)
    try:
        await rec.reconcile((NS, "j"))
    finally:
        await rec.stop()
    order = [entry for entry in kube.log if entry[0] in ("status", "delete Pod")]
    # Killed between the two, the next operator still knows the run timed out.
    assert order == [("status", "Archiving"), ("delete Pod", "j-1")]
    assert kube.job["status"]["runOutcome"] == "TimedOut"


async def test_terminal_job_with_a_standing_pod_is_released() -> None:
    status = _ended("Finished", "Succeeded")
    done = _pod("Succeeded", {"terminated": {"exitCode": 0}})
    kube = FakeKube(_job(status), [done])
    rec = _reconciler(kube)
    try:
        # Without a pod event, a terminal Job's children are not listed.
        await rec.reconcile((NS, "j"))
        assert [e for e in kube.log if e[0] != "status"] == []
        # A pod still standing (seen by the watch, e.g. after a restart) brings a release.
        rec.pod_event(None, done)
        rec.queue.clear()
        await rec.reconcile((NS, "j"))
    finally:
        await rec.stop()
    # The standing pod is known from the watch: no LIST is needed to release it.
    assert [e for e in kube.log if e[0] != "status"] == [
        # A workspace is not watched: its controller is read before it is deleted.
        ("get PersistentVolumeClaim", "j-1"),
        ("delete PersistentVolumeClaim", "j-1"),
        ("delete Pod", "j-1"),
    ]


async def test_a_pass_before_our_own_pod_is_seen_waits_for_it() -> None:
    """After creating attempt 1's pod, a pass that runs before the pod's watch event must not
    decide (the cache would say the pod is missing); the event then lets the next pass go."""
    kube = FakeKube(_job({}), [])
    rec = _reconciler(kube)
    try:
        await rec.reconcile((NS, "j"))  # creates the workspace and the run pod
        created = [e for e in kube.log if e[0] == "create"]
        assert created == [("create", "j-1"), ("create", "j-1")]  # PVC and pod share the name
        rec.jobs.put((NS, "j"), copy.deepcopy(kube.job), refresh=True)
        before = list(kube.log)
        await rec.reconcile((NS, "j"))  # the pod's ADDED event has not arrived
        assert kube.log == before, "a pass acted on a cache that lacks our own pod"
        rec.pod_event("ADDED", _pod("Pending", {"waiting": {"reason": "ContainerCreating"}}))
        rec.queue.clear()
        await rec.reconcile((NS, "j"))
        assert [e for e in kube.log[len(before) :] if e[0] == "create"] == []
        assert kube.job["status"]["state"] in ("Queued", "StagingInputs")
    finally:
        await rec.stop()


async def test_an_event_before_the_create_returns_does_not_stall_the_next_pass() -> None:
    kube = FakeKube(_job({}), [])
    rec = _reconciler(kube)
    try:
        # The watch delivered the pod before the create call returned.
        rec.pod_event("ADDED", _pod("Pending", {"waiting": {"reason": "ContainerCreating"}}))
        await rec.reconcile((NS, "j"))
        rec.jobs.put((NS, "j"), copy.deepcopy(kube.job), refresh=True)
        rec.pod_event("MODIFIED", _pod("Running", {"running": {"startedAt": NOW.isoformat()}}))
        rec.queue.clear()
        await rec.reconcile((NS, "j"))
        assert kube.job["status"]["state"] == "Running"
    finally:
        await rec.stop()


async def test_a_parents_event_wakes_its_waiting_children_only() -> None:
    rec = _reconciler(FakeKube(_job({}), []))
    try:
        child = _job({"state": "AwaitingParents"}, parents=["p"])
        child["metadata"]["name"] = "c"
        other = _job({"state": "AwaitingParents"})
        other["metadata"]["name"] = "o"
        rec.job_event("ADDED", child)
        rec.job_event("ADDED", other)
        rec.queue.clear()
        parent = _job({"state": "Finished"})
        parent["metadata"]["name"] = "p"
        rec.job_event("MODIFIED", parent)
        assert set(rec.queue.queued()) == {(NS, "p"), (NS, "c")}
    finally:
        await rec.stop()


async def test_a_new_job_is_served_before_the_finished_jobs_a_listing_brought() -> None:
    rec = _reconciler(FakeKube(_job({}), []))
    try:
        for i in range(3):
            listed = _job(_ended("Finished", "Succeeded"))
            listed["metadata"].update(name=f"old-{i}", uid=f"u-old-{i}")
            rec.job_event(None, listed)  # a listing: no kind
        assert rec.jobs.is_packed((NS, "old-0"))
        new = _job({})
        new["metadata"].update(name="new", uid="u-new")
        rec.job_event("ADDED", new)
        first = await rec.queue.get()
        assert first == (NS, "new"), "a new Job does not wait behind the listed finished ones"
        # The listed ones still get their pass: a packed Job is not at rest yet.
        assert set(rec.queue.queued()) == {(NS, f"old-{i}") for i in range(3)}
        await rec.reconcile((NS, "old-0"))
        assert rec.jobs.is_rested((NS, "old-0"))
    finally:
        await rec.stop()


async def test_passes_that_call_no_api_leave_the_loop_to_watch_events_between_them() -> None:
    """A pass that needs no API call never suspends by itself: the workers must hand the loop
    back between passes, or a listing's 50,000 first passes keep every watch event (a new
    Job's ADDED), Event and Lease renewal waiting until the last of them."""
    kube = FakeKube(_job(_ended("Finished", "Succeeded")), [])
    rec = _reconciler(kube)
    keys = [(NS, f"old-{i}") for i in range(100)]
    try:
        # A finished Job's status as Ferry wrote it: its pass finds nothing to write.
        await rec.reconcile((NS, "j"))
        settled = kube.job["status"]
        for key in keys:
            listed = _job(settled)
            listed["metadata"].update(name=key[1], uid=f"u-{key[1]}")
            rec.job_event(None, listed)
        rec.apps[(NS, "solver")]["metadata"]["resourceVersion"] = "1"  # start() records it
        writes = len(kube.log)
        # Stands for the informer's hand-offs of watch events: a task that looks at every
        # turn of the loop how many passes are done.
        done: list[int] = []

        async def look() -> None:
            while not done or done[-1] < len(keys):
                done.append(sum(rec.jobs.is_rested(k) for k in keys))
                await asyncio.sleep(0)

        looking = asyncio.create_task(look())
        await rec.start()
        await asyncio.wait_for(looking, 10)
        assert kube.log[writes:] == [("status", "None")], "only the App's status was written"
        between = max(b - a for a, b in itertools.pairwise(done))
        assert between <= rec.config.workers, f"{between} passes in one turn of the loop"
    finally:
        await rec.stop()


def test_cached_jobs_drop_managed_fields_and_last_applied() -> None:
    from ferry.handlers import jobcache
    from ferry.handlers.jobcache import LAST_APPLIED

    obj = _job({})
    obj["metadata"]["managedFields"] = [{"manager": "kubectl"}]
    obj["metadata"]["annotations"] = {LAST_APPLIED: "{...}", "keep": "me"}
    slim = jobcache.slim(obj)
    assert "managedFields" not in slim["metadata"]
    assert slim["metadata"]["annotations"] == {"keep": "me"}
    assert slim["spec"] == obj["spec"]
    assert obj["metadata"]["managedFields"]  # the original is not changed


async def test_an_app_missing_from_the_cache_is_asked_for_before_blocking() -> None:
    """Just after a start the App's watch event may not have arrived: the reconciler asks the
    apiserver instead of blocking the Job (a Running Job going Blocked would go backwards)."""
    kube = FakeKube(_job({}), [])
    app = {"metadata": {"name": "solver", "namespace": NS}, "spec": app_dict()}
    kube.get_app = lambda namespace, name: app  # type: ignore[method-assign]
    rec = _reconciler(kube)
    rec.apps.clear()
    try:
        await rec.reconcile((NS, "j"))
        assert kube.job["status"]["state"] == "Queued"
        assert (NS, "solver") in rec.apps
    finally:
        await rec.stop()


async def test_after_an_expectation_is_met_the_pass_still_works_on_its_own_job() -> None:
    """Regression: clearing a met expectation must not change which Job the pass is about
    (a loop variable once shadowed the Job's name, so a fresh LIST asked for a pod's name)."""
    kube = FakeKube(_job({}), [])
    rec = _reconciler(kube)
    try:
        await rec.reconcile((NS, "j"))  # creates j-1 and expects it
        rec.jobs.put((NS, "j"), copy.deepcopy(kube.job), refresh=True)
        # The archive pod is expected too, and seen; the run pod's event is lost, so the
        # cache lacks it and the pass must confirm with a LIST for Job "j".
        rec.pods.forget_created((NS, "j"), "j-1")
        rec.pods.expect_created((NS, "j"), "j-1-archive-1")
        archive = _pod("Running", {"running": {"startedAt": NOW.isoformat()}})
        archive["metadata"]["name"] = "j-1-archive-1"
        archive["metadata"]["labels"]["ferry.dev/role"] = "archive"
        rec.pods.put("ADDED", archive)
        rec.pods.expect_created((NS, "j"), "j-1-archive-1")
        kube.pods = [_pod("Running", {"running": {"startedAt": NOW.isoformat()}})]
        await rec.reconcile((NS, "j"))
        assert ("list", "j") in kube.log
        assert not [e for e in kube.log if e[0] == "list" and e[1] not in ("j", "*")]
    finally:
        await rec.stop()


def _not_starting(scheduled_seconds_ago: float) -> dict[str, Any]:
    pod = _pod("Pending", {"waiting": {"reason": "ContainerCreating"}})
    when = (NOW - timedelta(seconds=scheduled_seconds_ago)).isoformat()
    pod["status"]["conditions"] = [
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": when}
    ]
    return pod


@pytest.mark.parametrize(("ago", "asked"), [(30, False), (90, True)])
async def test_only_a_pod_slow_to_start_has_its_warnings_read(ago: float, asked: bool) -> None:
    status = {
        "state": "StagingInputs",
        "reason": "StartingApp",
        "attempt": 1,
        "podName": "j-1",
        "app": {"name": "solver", "version": "1.0", "image": "i", "specHash": "h"},
    }
    kube = FakeKube(_job(status), [_not_starting(ago)])
    kube.warnings = [
        {
            "type": "Warning",
            "reason": "FailedMount",
            "message": 'MountVolume.SetUp failed for volume "in-model" : configmap "m" not found',
            "lastTimestamp": NOW.isoformat(),
        }
    ]
    rec = _reconciler(kube)
    try:
        rec.pod_event(None, _not_starting(ago))
        rec.queue.clear()
        await rec.reconcile((NS, "j"))
    finally:
        await rec.stop()
    assert (("list events", "j-1") in kube.log) is asked
    state = kube.job["status"]["state"]
    assert state == ("Blocked" if asked else "StagingInputs")
    if asked:
        assert kube.job["status"]["reason"] == "PodNotStarting"
        assert "input 'model'" in kube.job["status"]["message"]
