"""Applying a plan: creates, one status write, deletes, Events, in that order whatever the
order of the plan's actions; what is expected in the pod cache; when to look again."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from typing import Any

import pytest

from ferry.api.job import JobStatus, State
from ferry.clients.protocol import ConflictError
from ferry.config import OperatorConfig
from ferry.decisions import parse
from ferry.decisions.lifecycle import CreateObject, DeleteJob, DeleteObject, Event, Plan
from ferry.handlers.execute import Executor, look_again_in
from ferry.handlers.jobcache import JobCache
from ferry.handlers.metrics import Metrics
from ferry.handlers.podcache import PodCache
from ferry.handlers.tell import Teller
from ferry.handlers.threads import ApiThreads
from tests.unit.factories import job_dict
from tests.unit.fakes import FakeKube

pytestmark = pytest.mark.unit

NS = "ns"
KEY = (NS, "j")
#: Every change written at once: these tests follow the status writes themselves (holding
#: routine progress is tests/unit/test_holding.py's).
CONFIG = OperatorConfig(status_hold_seconds=0)


def _job(state: str | None = "Queued") -> dict[str, Any]:
    return {
        "apiVersion": "ferry.dev/v1alpha1",
        "kind": "Job",
        "metadata": {"name": "j", "namespace": NS, "uid": "u-1", "resourceVersion": "10"},
        "spec": job_dict(),
        "status": {"state": state, "attempt": 1} if state else {},
    }


def _create(kind: str, name: str) -> CreateObject:
    return CreateObject({"kind": kind, "metadata": {"name": name, "namespace": NS}})


def _plan(
    state: State,
    *actions: CreateObject | DeleteObject | DeleteJob,
    changed: bool = True,
    requeue_after: float | None = None,
    events: tuple[Event, ...] = (),
) -> Plan:
    return Plan(
        status=JobStatus(state=state, reason="Why", attempt=1),
        changed=changed,
        actions=actions,
        events=events,
        requeue_after=requeue_after,
    )


class Bed:
    """An executor over a fake API and fresh caches."""

    def __init__(self, threads: ApiThreads, obj: dict[str, Any]) -> None:
        self.kube = FakeKube(obj, [])
        self.jobs = JobCache()
        self.jobs.put(KEY, obj)
        self.pods = PodCache()
        self.teller = Teller(self.kube, threads)
        self.executor = Executor(
            self.kube, CONFIG, self.jobs, self.pods, threads, Metrics(), teller=self.teller
        )

    async def run(self, plan: Plan, drain: bool = True) -> float | None:
        """One pass; with `drain`, returns once the Events it handed over are posted."""
        obj = self.jobs.get(KEY)
        assert obj is not None
        delay = await self.executor.execute(KEY, copy.deepcopy(obj), parse.job_view(obj), plan)
        if drain:
            await self.teller.drain()
        return delay


@pytest.fixture
async def threads() -> AsyncIterator[ApiThreads]:
    pool = ApiThreads(2)
    yield pool
    pool.shutdown()


async def test_creates_then_the_status_write_then_deletes_then_events(
    threads: ApiThreads,
) -> None:
    bed = Bed(threads, _job())
    plan = _plan(
        State.ARCHIVING,
        DeleteObject("Pod", "j-1", "uid-j-1"),
        _create("Pod", "j-1-archive-1"),
        DeleteObject("PersistentVolumeClaim", "j-1"),
        _create("PersistentVolumeClaim", "j-2"),
        events=(Event("Normal", "Archiving", "archiving"),),
    )
    await bed.run(plan)
    assert bed.kube.log == [
        ("create", "j-1-archive-1"),
        ("create", "j-2"),
        ("status", "Archiving"),
        ("delete Pod", "j-1"),
        # A workspace is not watched: its controller is read before it is deleted.
        ("get PersistentVolumeClaim", "j-1"),
        ("delete PersistentVolumeClaim", "j-1"),
        ("event", "Archiving"),
    ]


async def test_the_pods_made_and_deleted_are_expected_in_the_pod_cache(
    threads: ApiThreads,
) -> None:
    bed = Bed(threads, _job())
    plan = _plan(
        State.RUNNING,
        _create("Pod", "j-2"),
        _create("PersistentVolumeClaim", "j-2"),
        DeleteObject("Pod", "j-1", "uid-j-1"),
        DeleteObject("PersistentVolumeClaim", "j-1"),
    )
    await bed.run(plan)
    assert bed.pods.unseen_created(KEY) == {"j-2"}
    assert bed.pods.deleting(KEY) == {"j-1"}


async def test_a_pod_already_gone_is_not_expected_to_go(threads: ApiThreads) -> None:
    bed = Bed(threads, _job())
    bed.kube.delete = lambda kind, namespace, name, uid: False  # type: ignore[method-assign]
    await bed.run(_plan(State.RUNNING, DeleteObject("Pod", "j-1", "uid-j-1")))
    assert bed.pods.deleting(KEY) == set()


async def test_the_written_version_is_kept_so_its_watch_event_is_no_news(
    threads: ApiThreads,
) -> None:
    bed = Bed(threads, _job())
    await bed.run(_plan(State.RUNNING))
    assert bed.jobs.rv(KEY) == 11
    assert not bed.jobs.put(KEY, copy.deepcopy(bed.kube.job))


async def test_an_unchanged_status_is_not_written_and_tells_nothing(
    threads: ApiThreads,
) -> None:
    bed = Bed(threads, _job())
    plan = _plan(
        State.RUNNING,
        DeleteObject("Pod", "j-0", "uid-j-0"),
        changed=False,
        events=(Event("Normal", "Running", "running"),),
    )
    await bed.run(plan)
    assert bed.kube.log == [("delete Pod", "j-0")]


async def test_a_lost_lock_leaves_the_deletes_and_events_undone(threads: ApiThreads) -> None:
    bed = Bed(threads, _job())

    def conflict(kind_plural: str, obj: dict[str, Any], status: dict[str, Any]) -> Any:
        bed.kube.log.append(("status", "conflict"))
        raise ConflictError("jobs ns/j")

    bed.kube.replace_status = conflict  # type: ignore[method-assign]
    plan = _plan(
        State.ARCHIVING,
        _create("Pod", "j-1-archive-1"),
        DeleteObject("Pod", "j-1", "uid-j-1"),
        events=(Event("Normal", "Archiving", "archiving"),),
    )
    with pytest.raises(ConflictError):
        await bed.run(plan)
    await bed.teller.drain()
    assert bed.kube.log == [("create", "j-1-archive-1"), ("status", "conflict")]


async def test_deleting_the_job_ends_the_pass(threads: ApiThreads) -> None:
    bed = Bed(threads, _job("Finished"))
    plan = _plan(
        State.FINISHED,
        _create("PersistentVolumeClaim", "j-1"),
        DeleteJob(),
        DeleteObject("Pod", "j-1", "uid-j-1"),
        events=(Event("Normal", "Finished", "done"),),
    )
    assert await bed.run(plan) is None
    assert bed.kube.log == [("create", "j-1"), ("delete Job", "j")]
    assert not bed.jobs.is_rested(KEY)


async def test_a_terminal_job_with_nothing_left_rests(threads: ApiThreads) -> None:
    bed = Bed(threads, _job("Running"))
    assert await bed.run(_plan(State.FINISHED)) is None
    assert bed.jobs.is_rested(KEY)


async def test_a_terminal_job_releasing_something_does_not_rest(threads: ApiThreads) -> None:
    bed = Bed(threads, _job("Finished"))
    assert (
        await bed.run(_plan(State.FINISHED, DeleteObject("Pod", "j-1", "uid-j-1"), changed=False))
        is None
    )
    assert not bed.jobs.is_rested(KEY)


async def test_a_terminal_job_with_a_timer_does_not_rest(threads: ApiThreads) -> None:
    bed = Bed(threads, _job("Failed"))
    assert await bed.run(_plan(State.FAILED, changed=False, requeue_after=600)) == 600
    assert not bed.jobs.is_rested(KEY)


@pytest.mark.parametrize(
    ("state", "requeue_after", "expected"),
    [
        (State.RUNNING, None, CONFIG.resync_seconds),
        (State.RUNNING, 5.0, 5.0),
        (State.RUNNING, CONFIG.resync_seconds + 100, CONFIG.resync_seconds),
        (State.RUNNING, -3.0, 0.05),
        (State.RUNNING, 0.0, 0.05),
        (State.FINISHED, None, None),
        (State.FINISHED, 30.0, 30.0),
        (State.CANCELLED, -1.0, 0.05),
    ],
)
def test_when_to_look_again(state: State, requeue_after: float | None, expected: float) -> None:
    assert look_again_in(_plan(state, requeue_after=requeue_after), CONFIG.resync_seconds) == (
        expected
    )
