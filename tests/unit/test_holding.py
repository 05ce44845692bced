"""Holding routine progress: which statuses may wait (`ferry.decisions.holding`), and the
executor and Job cache holding them (a Job that starts and ends within the hold is written
once, with its whole history; nothing but routine progress waits; a held status survives a
watch event that did not touch the status and is given up for one that did; an operator that
lost it decides it again from the API)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from ferry.api.job import JobStatus, State
from ferry.api.job_status import AttemptRecord, Outage
from ferry.decisions import holding
from ferry.decisions.lifecycle import CreateObject, DeleteObject, Event, Plan
from ferry.handlers.reconciler import Reconciler
from tests.unit.factories import NOW
from tests.unit.fakes import FakeKube
from tests.unit.test_reconciler_order import NS, _job, _pod, _reconciler

pytestmark = pytest.mark.unit

KEY = (NS, "j")
OUTAGE = Outage(phase="Archive", attempt=1, since=NOW, counted=0, retry_time=NOW)
POD = CreateObject({"kind": "Pod", "metadata": {"name": "j-1", "namespace": NS}})


def _plan(state: State, *actions: Any, attempt: int = 1, **status: Any) -> Plan:
    events = status.pop("events", ())
    return Plan(
        status=JobStatus(state=state, reason="Why", attempt=attempt, **status),
        changed=True,
        actions=actions,
        events=events,
    )


@pytest.mark.parametrize(
    ("written", "plan", "routine"),
    [
        (JobStatus(), _plan(State.QUEUED, POD), True),
        # The status the CRD gives a new Job.
        (JobStatus(state=State.PENDING), _plan(State.QUEUED, POD), True),
        (JobStatus(state=State.QUEUED, attempt=1), _plan(State.RUNNING), True),
        (JobStatus(state=State.QUEUED, attempt=1), _plan(State.STAGING_INPUTS), True),
        (JobStatus(state=State.RUNNING, attempt=1), _plan(State.FINISHED), False),
        (JobStatus(state=State.RUNNING, attempt=1), _plan(State.FAILED), False),
        (JobStatus(state=State.RUNNING, attempt=1), _plan(State.ARCHIVING), False),
        (JobStatus(state=State.BLOCKED), _plan(State.QUEUED, POD), False),
        (JobStatus(state=State.AWAITING_PARENTS), _plan(State.QUEUED, POD), False),
        (JobStatus(state=State.SUSPENDED, attempt=1), _plan(State.QUEUED, POD, attempt=2), False),
        # A new attempt (a retry, a requeue after preemption) is written at once.
        (JobStatus(state=State.RUNNING, attempt=1), _plan(State.QUEUED, POD, attempt=2), False),
        (
            JobStatus(state=State.RUNNING, attempt=1),
            _plan(State.RUNNING, attempts=[AttemptRecord(attempt=1, outcome="Failed")]),
            False,
        ),
        # Anything that deletes or tells is written at once.
        (
            JobStatus(state=State.QUEUED, attempt=1),
            _plan(State.RUNNING, DeleteObject("Pod", "x", "u")),
            False,
        ),
        (
            JobStatus(state=State.QUEUED, attempt=1),
            _plan(State.RUNNING, events=(Event("Warning", "W", "w"),)),
            False,
        ),
        # An outage, or the end of one, is written at once.
        (
            JobStatus(state=State.RUNNING, attempt=1, outage=OUTAGE),
            _plan(State.RUNNING),
            False,
        ),
    ],
)
def test_only_routine_progress_may_wait(written: JobStatus, plan: Plan, routine: bool) -> None:
    assert holding.routine(written, plan) is routine


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _holding(kube: FakeKube, seconds: float = 2.0) -> tuple[Reconciler, Clock]:
    rec = _reconciler(kube)
    rec.config = rec.executor.config = rec.config.model_copy(
        update={"status_hold_seconds": seconds}
    )
    clock = Clock()
    rec.executor.monotonic = clock
    return rec, clock


def _writes(kube: FakeKube) -> list[str]:
    return [what for verb, what in kube.log if verb == "status"]


async def _pass(rec: Reconciler) -> None:
    rec.queue.clear()
    await rec.reconcile(KEY)


@pytest.mark.parametrize("new", [{}, {"state": "Pending"}], ids=["no status", "CRD default"])
async def test_a_job_that_starts_and_ends_within_the_hold_is_written_once(
    new: dict[str, Any],
) -> None:
    kube = FakeKube(_job(new), [])
    rec, clock = _holding(kube)
    try:
        rec.pod_event("ADDED", _pod("Pending", {"waiting": {"reason": "ContainerCreating"}}))
        await _pass(rec)  # creates the run pod: Queued, held
        assert _writes(kube) == []
        held = rec.jobs.get(KEY)
        assert held is not None
        assert held["status"]["state"] == "Queued"
        assert held["metadata"]["resourceVersion"] == "10", "the lock is the API's version"
        clock.now += 1.0
        rec.pod_event("MODIFIED", _pod("Running", {"running": {"startedAt": NOW.isoformat()}}))
        await _pass(rec)
        assert _writes(kube) == []
        assert rec.jobs.get(KEY)["status"]["state"] == "Running"  # type: ignore[index]
        clock.now += 0.5
        rec.pod_event("MODIFIED", _pod("Failed", {"terminated": {"exitCode": 3}}))
        await _pass(rec)
    finally:
        await rec.stop()
    assert len(_writes(kube)) == 1, kube.log
    status = kube.job["status"]
    assert status["state"] not in ("Queued", "Running")
    # The one write carries the whole way there, each step at the time it was seen.
    assert [h["state"] for h in status["history"]][:2] == ["Queued", "Running"]
    assert rec.jobs.held(KEY) is None


async def test_a_held_status_is_written_when_its_time_is_up() -> None:
    kube = FakeKube(_job({}), [])
    rec, clock = _holding(kube)
    try:
        rec.pod_event("ADDED", _pod("Pending", {"waiting": {"reason": "ContainerCreating"}}))
        rec.queue.clear()
        await rec.reconcile(KEY)
        # The pass asks to be looked at again when the hold is up.
        assert rec.queue.due_in(KEY) == pytest.approx(2.0, abs=0.01)
        clock.now += 1.0
        rec.pod_event("MODIFIED", _pod("Running", {"running": {"startedAt": NOW.isoformat()}}))
        await _pass(rec)
        assert _writes(kube) == []
        assert rec.queue.due_in(KEY) == pytest.approx(1.0, abs=0.01)
        clock.now += 1.0
        await _pass(rec)  # nothing new, but the hold is up
        assert _writes(kube) == ["Running"]
        await _pass(rec)
        assert _writes(kube) == ["Running"], "written once"
        # Every step is counted once, held or written.
        assert _transitions(rec) == {"Queued": 1, "Running": 1}
    finally:
        await rec.stop()


def _transitions(rec: Reconciler) -> dict[str, float]:
    out: dict[str, float] = {}
    for family in rec.metrics.transitions.collect():
        for sample in family.samples:
            if sample.name.endswith("_total") and sample.value:
                state = sample.labels["state"]
                out[state] = out.get(state, 0) + sample.value
    return out


async def test_with_no_hold_every_change_is_written_at_once() -> None:
    kube = FakeKube(_job({}), [])
    rec, _ = _holding(kube, seconds=0)
    try:
        rec.pod_event("ADDED", _pod("Pending", {"waiting": {"reason": "ContainerCreating"}}))
        await _pass(rec)
        assert _writes(kube) == ["Queued"]
    finally:
        await rec.stop()


async def test_a_held_status_survives_a_label_and_yields_to_a_status_written_by_another() -> None:
    kube = FakeKube(_job({}), [])
    rec, _ = _holding(kube)
    try:
        rec.pod_event("ADDED", _pod("Pending", {"waiting": {"reason": "ContainerCreating"}}))
        await _pass(rec)
        labelled = copy.deepcopy(kube.job)
        labelled["metadata"]["resourceVersion"] = "11"
        labelled["metadata"]["labels"] = {"team": "a"}
        rec.job_event("MODIFIED", labelled)
        assert rec.jobs.get(KEY)["status"]["state"] == "Queued"  # type: ignore[index]
        assert rec.jobs.get(KEY)["metadata"]["resourceVersion"] == "11"  # type: ignore[index]
        other = copy.deepcopy(labelled)
        other["metadata"]["resourceVersion"] = "12"
        other["status"] = {"state": "Blocked", "reason": "Elsewhere"}
        rec.job_event("MODIFIED", other)
        assert rec.jobs.held(KEY) is None
        assert rec.jobs.get(KEY)["status"]["state"] == "Blocked"  # type: ignore[index]
    finally:
        await rec.stop()


async def test_an_operator_that_lost_a_held_status_finds_its_pod_and_goes_on() -> None:
    """The first operator created the run pod and held Queued when it was killed: the next
    one sees no status, creates nothing new (the pod's name is taken by the Job's own pod)
    and records what the pod shows."""
    running = _pod("Running", {"running": {"startedAt": NOW.isoformat()}})
    kube = FakeKube(_job({}), [running])
    first, _ = _holding(kube)
    try:
        await _pass(first)
    finally:
        await first.stop()
    assert _writes(kube) == []
    kube.create = lambda manifest: kube.log.append(("exists", "")) or False  # type: ignore[method-assign,func-returns-value]
    second, clock = _holding(kube)
    try:
        second.pod_event(None, running)
        second.jobs.put(KEY, copy.deepcopy(kube.job))
        await _pass(second)
        clock.now += 2.5
        await _pass(second)
    finally:
        await second.stop()
    assert _writes(kube) == ["Running"]
    assert kube.job["status"]["attempt"] == 1
    assert kube.job["status"]["podName"] == "j-1"


async def test_while_the_client_is_throttled_routine_progress_waits_longer() -> None:
    """In a burst every write waits its turn behind the rate limit: routine progress waits up
    to status_hold_busy_seconds (10) and is looked at again only then (a pass in between would
    find the client busy and write nothing), or at the Job's next change, which writes it
    once the client is no longer busy."""
    kube = FakeKube(_job({}), [])
    rec, clock = _holding(kube)
    kube.throttled = True
    try:
        rec.pod_event("ADDED", _pod("Pending", {"waiting": {"reason": "ContainerCreating"}}))
        await _pass(rec)
        clock.now += 2.5
        rec.queue.forget(KEY)  # the look-again timer fired
        await _pass(rec)
        assert _writes(kube) == [], "held past status_hold_seconds while throttled"
        assert rec.queue.due_in(KEY) == pytest.approx(7.5, abs=0.01)
        clock.now += 2.0
        kube.throttled = False
        rec.pod_event("MODIFIED", _pod("Pending", {"waiting": {"reason": "PodInitializing"}}))
        await _pass(rec)
        assert len(_writes(kube)) == 1, kube.log
    finally:
        await rec.stop()


async def test_no_status_waits_longer_than_status_hold_busy_seconds() -> None:
    kube = FakeKube(_job({}), [])
    rec, clock = _holding(kube)
    kube.throttled = True
    try:
        rec.pod_event("ADDED", _pod("Pending", {"waiting": {"reason": "ContainerCreating"}}))
        await _pass(rec)
        clock.now += 9.0
        await _pass(rec)
        assert _writes(kube) == []
        assert rec.queue.due_in(KEY) == pytest.approx(1.0, abs=0.01)
        clock.now += 1.0
        await _pass(rec)
        assert len(_writes(kube)) == 1, kube.log
    finally:
        await rec.stop()


def test_the_client_is_busy_when_its_rate_limit_held_a_call_back() -> None:
    from ferry.clients.kube import RateLimiter

    limiter = RateLimiter(qps=200, burst=2)
    limiter.acquire()
    limiter.acquire()
    assert not limiter.throttled_within(1.0), "the burst is not a wait"
    limiter.acquire()  # waits ~5 ms for a token
    assert limiter.throttled_within(1.0)
    assert not limiter.throttled_within(-1.0)


async def test_while_more_jobs_wait_than_there_are_workers_routine_progress_waits_longer() -> None:
    kube = FakeKube(_job({}), [])
    rec, clock = _holding(kube)
    try:
        rec.pod_event("ADDED", _pod("Pending", {"waiting": {"reason": "ContainerCreating"}}))
        await _pass(rec)
        clock.now += 2.5
        for i in range(rec.config.workers):
            rec.queue.add((NS, f"other-{i}"))
        await rec.reconcile(KEY)
        assert _writes(kube) == [], "held past status_hold_seconds with a backlog"
        await _pass(rec)  # the backlog is gone
        assert len(_writes(kube)) == 1, kube.log
    finally:
        await rec.stop()
