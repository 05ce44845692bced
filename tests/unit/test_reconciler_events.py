"""Which watch events make work, and how urgent it is; terminal Jobs at rest.

With the same fake API as the ordering tests: no Kubernetes here, only the reconciler's own
bookkeeping between events and passes."""

from __future__ import annotations

import asyncio
import copy

import pytest

from tests.unit.factories import NOW
from tests.unit.fakes import FakeKube
from tests.unit.test_reconciler_order import NS, _ended, _job, _pod, _reconciler

pytestmark = pytest.mark.unit

KEY = (NS, "j")


async def test_the_event_of_ferrys_own_status_write_makes_no_pass() -> None:
    kube = FakeKube(_job({}), [])
    rec = _reconciler(kube)
    try:
        rec.job_event(None, copy.deepcopy(kube.job))
        assert rec.queue.queued() == {KEY: False}, "a new Job's first pass is routine"
        rec.queue.clear()
        await rec.reconcile(KEY)  # writes a status (Queued): resourceVersion 11
        rec.job_event("MODIFIED", copy.deepcopy(kube.job))  # the watch brings that write back
        assert rec.queue.queued() == {}
        # Somebody else's change (a newer version) is news, and urgent for a known Job.
        changed = copy.deepcopy(kube.job)
        changed["metadata"]["resourceVersion"] = "12"
        changed["spec"]["suspend"] = True
        rec.job_event("MODIFIED", changed)
        assert rec.queue.queued() == {KEY: True}
    finally:
        await rec.stop()


async def test_pod_events_that_change_nothing_the_lifecycle_reads_make_no_pass() -> None:
    rec = _reconciler(FakeKube(_job({}), []))
    try:
        pod = _pod("Running", {"running": {"startedAt": NOW.isoformat()}})
        pod["metadata"]["resourceVersion"] = "20"
        rec.pod_event("ADDED", copy.deepcopy(pod))
        assert rec.queue.queued() == {KEY: True}
        rec.queue.clear()
        pod["metadata"]["resourceVersion"] = "21"
        pod["metadata"]["annotations"] = {"unrelated": "x"}
        rec.pod_event("MODIFIED", copy.deepcopy(pod))
        assert rec.queue.queued() == {}
        pod["metadata"]["resourceVersion"] = "22"
        pod["status"] = {
            "phase": "Succeeded",
            "containerStatuses": [{"name": "app", "state": {"terminated": {"exitCode": 0}}}],
        }
        rec.pod_event("MODIFIED", copy.deepcopy(pod))
        assert rec.queue.queued() == {KEY: True}
        rec.queue.clear()
        # A pod seen by a (re)listing always brings a look: it may be a stray after a restart.
        rec.pod_event(None, copy.deepcopy(pod))
        assert rec.queue.queued() == {KEY: True}
    finally:
        await rec.stop()


async def test_a_finished_pod_overtakes_new_jobs_in_the_queue() -> None:
    rec = _reconciler(FakeKube(_job({}), []))
    try:
        for i in range(3):
            new = _job({})
            new["metadata"]["name"] = f"new-{i}"
            rec.job_event("ADDED", new)
        rec.pod_event("ADDED", _pod("Succeeded", {"terminated": {"exitCode": 0}}))
        order = []
        while rec.queue.queued():
            key = await rec.queue.get()
            rec.queue.done(key)
            order.append(key[1])
        assert order == ["j", "new-0", "new-1", "new-2"]
    finally:
        await rec.stop()


async def test_a_terminal_job_with_nothing_left_to_do_rests_and_is_read_again_when_needed() -> None:
    status = _ended("Finished", "Succeeded")
    kube = FakeKube(_job(status), [])
    rec = _reconciler(kube)
    gets = []
    real_get = kube.get_job

    def counting_get(namespace: str, name: str) -> dict[str, object]:
        gets.append(name)
        return real_get(namespace, name)

    kube.get_job = counting_get  # type: ignore[method-assign]
    try:
        rec.job_event(None, copy.deepcopy(kube.job))
        await rec.reconcile(KEY)  # may correct the status; nothing is left to do after it
        assert rec.jobs.is_rested(KEY)
        assert rec.jobs.get(KEY) is None
        assert rec.jobs.state(KEY) == "Finished"
        # The write's own watch event, arriving before the write returned, queued one more
        # pass: at rest with no pod standing, it reads nothing.
        await rec.reconcile(KEY)
        assert gets == []
        # A pod still standing shows up: the Job is read afresh and its pod released.
        rec.pod_event(None, _pod("Running", {"running": {"startedAt": NOW.isoformat()}}))
        await rec.reconcile(KEY)
        assert gets == ["j"]
        assert ("delete Pod", "j-1") in kube.log
        assert not rec.jobs.is_rested(KEY), "a pass that released something does not rest"
    finally:
        await rec.stop()


async def test_a_terminal_job_with_a_ttl_does_not_rest() -> None:
    status = _ended("Failed", "AppFailed")
    kube = FakeKube(_job(status, ttlSecondsAfterFinished=600), [])
    rec = _reconciler(kube)
    try:
        rec.job_event(None, copy.deepcopy(kube.job))
        await rec.reconcile(KEY)
        await rec.reconcile(KEY)
        assert rec.jobs.get(KEY) is not None, "its TTL timer needs the whole Job"
    finally:
        await rec.stop()


async def test_pod_progress_is_batched_and_its_end_is_looked_at_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ferry.handlers import reconciler

    monkeypatch.setattr(reconciler, "PROGRESS_BATCH_SECONDS", 0.05)
    rec = _reconciler(FakeKube(_job({}), []))
    try:
        pod = _pod("Pending", {"waiting": {"reason": "ContainerCreating"}})
        pod["metadata"]["resourceVersion"] = "20"
        rec.pod_event("ADDED", copy.deepcopy(pod))
        rec.queue.clear()
        pod["metadata"]["resourceVersion"] = "21"
        pod["status"] = {
            "phase": "Running",
            "containerStatuses": [
                {"name": "app", "state": {"running": {"startedAt": NOW.isoformat()}}}
            ],
        }
        rec.pod_event("MODIFIED", copy.deepcopy(pod))
        assert rec.queue.queued() == {}, "progress waits a moment for more"
        await asyncio.sleep(0.2)
        assert rec.queue.queued() == {KEY: True}
        rec.queue.clear()
        pod["metadata"]["resourceVersion"] = "22"
        pod["status"] = {
            "phase": "Succeeded",
            "containerStatuses": [{"name": "app", "state": {"terminated": {"exitCode": 0}}}],
        }
        rec.pod_event("MODIFIED", copy.deepcopy(pod))
        assert rec.queue.queued() == {KEY: True}, "an ended pod is looked at at once"
    finally:
        await rec.stop()


async def test_the_added_event_of_a_pod_ferry_created_is_batched_with_what_follows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ferry.handlers import reconciler

    monkeypatch.setattr(reconciler, "PROGRESS_BATCH_SECONDS", 0.05)
    kube = FakeKube(_job({}), [])
    rec = _reconciler(kube)
    try:
        await rec.reconcile(KEY)  # creates j-1 and expects its event
        rec.queue.clear()
        rec.pod_event("ADDED", _pod("Pending", {"waiting": {"reason": "ContainerCreating"}}))
        assert rec.queue.queued() == {}, "our own creation is no news by itself"
        await asyncio.sleep(0.2)
        assert rec.queue.queued() == {KEY: True}
        # Somebody else's pod for the Job (or one seen after a restart) is looked at at once.
        rec.queue.clear()
        other = _pod("Pending", {"waiting": {"reason": "ContainerCreating"}})
        other["metadata"]["name"] = "j-2"
        rec.pod_event("ADDED", other)
        assert rec.queue.queued() == {KEY: True}
    finally:
        await rec.stop()
