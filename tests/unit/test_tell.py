"""The Teller: Events posted after the pass that owes them, in order, best effort."""

from __future__ import annotations

import asyncio
import copy
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest

from ferry.api.job import JobStatus, State
from ferry.config import OperatorConfig
from ferry.decisions import parse
from ferry.decisions.plan import Event, Plan
from ferry.handlers.execute import Executor
from ferry.handlers.jobcache import JobCache
from ferry.handlers.metrics import Metrics
from ferry.handlers.podcache import PodCache
from ferry.handlers.tell import Teller
from ferry.handlers.threads import ApiThreads

from .fakes import FakeKube, job_object

pytestmark = pytest.mark.unit

KEY = ("ns", "j")


class SlowEvents(FakeKube):
    """Posting an Event waits until `release` is set (a call waiting for its rate-limit turn)."""

    def __init__(self) -> None:
        super().__init__(job_object({"state": "Running", "attempt": 1}), [])
        self.release = threading.Event()

    def post_event(self, obj: Any, type_: str, reason: str, message: str, component: str) -> None:
        assert self.release.wait(10)
        super().post_event(obj, type_, reason, message, component)


@pytest.fixture
async def threads() -> AsyncIterator[ApiThreads]:
    pool = ApiThreads(2)
    yield pool
    pool.shutdown()


def _finished(*reasons: str) -> Plan:
    return Plan(
        status=JobStatus(state=State.FINISHED, reason="Succeeded", attempt=1),
        changed=True,
        events=tuple(Event("Normal", r, r) for r in reasons),
    )


async def test_a_pass_ends_before_its_events_are_posted_and_they_follow_in_order(
    threads: ApiThreads,
) -> None:
    kube = SlowEvents()
    jobs = JobCache()
    jobs.put(KEY, kube.job)
    teller = Teller(kube, threads)
    executor = Executor(
        kube, OperatorConfig(status_hold_seconds=0), jobs, PodCache(), threads, Metrics(),
        teller=teller,
    )  # fmt: skip
    obj = copy.deepcopy(kube.job)
    # The worker is free again while the Event still waits for its turn.
    await asyncio.wait_for(
        executor.execute(KEY, obj, parse.job_view(obj), _finished("Finished", "Archived")), 5
    )
    assert kube.log == [("status", "Finished")]
    assert len(teller) == 2
    kube.release.set()
    await asyncio.wait_for(teller.drain(), 5)
    assert kube.log == [("status", "Finished"), ("event", "Finished"), ("event", "Archived")]
    assert len(teller) == 0
    await teller.stop()


async def test_stopping_drops_what_still_waits_and_what_comes_after(threads: ApiThreads) -> None:
    kube = SlowEvents()
    dropped: list[int] = []
    teller = Teller(kube, threads, on_drop=dropped.append)
    for reason in ("A", "B", "C"):
        teller.tell(kube.job, "Normal", reason, "m")
    await asyncio.sleep(0.05)  # A is being posted, B and C wait
    await teller.stop()
    teller.tell(kube.job, "Normal", "D", "m")
    kube.release.set()
    await asyncio.sleep(0.1)
    assert sum(dropped) == 3  # B, C, then D
    assert ("event", "B") not in kube.log
    assert ("event", "D") not in kube.log
    assert len(teller) == 0


async def test_at_most_max_pending_wait(threads: ApiThreads) -> None:
    kube = SlowEvents()
    dropped: list[int] = []
    teller = Teller(kube, threads, on_drop=dropped.append, max_pending=2)
    for reason in ("A", "B", "C", "D"):
        teller.tell(kube.job, "Normal", reason, "m")
        await asyncio.sleep(0.02)
    # A is being posted; B and C wait; D found two waiting and was dropped.
    assert dropped == [1]
    kube.release.set()
    await asyncio.wait_for(teller.drain(), 5)
    assert [e for e in kube.log if e[0] == "event"] == [("event", r) for r in "ABC"]
    await teller.stop()


async def test_an_event_that_raises_does_not_stop_the_ones_after_it(threads: ApiThreads) -> None:
    kube = FakeKube(job_object({"state": "Running", "attempt": 1}), [])
    posted: list[str] = []

    def flaky(obj: Any, type_: str, reason: str, message: str, component: str) -> None:
        if reason == "A":
            raise RuntimeError("connection reset")
        posted.append(reason)

    kube.post_event = flaky  # type: ignore[method-assign]
    dropped: list[int] = []
    teller = Teller(kube, threads, on_drop=dropped.append)
    teller.tell(kube.job, "Normal", "A", "m")
    teller.tell(kube.job, "Normal", "B", "m")
    await asyncio.wait_for(teller.drain(), 5)
    assert posted == ["B"]
    assert dropped == [1]
    await teller.stop()


async def test_an_owed_event_keeps_a_reference_to_its_object_not_the_object(
    threads: ApiThreads,
) -> None:
    kube = FakeKube(job_object({"state": "Running", "attempt": 1}), [])
    about: list[Any] = []

    def record(obj: Any, type_: str, reason: str, message: str, component: str) -> None:
        about.append(obj)

    kube.post_event = record  # type: ignore[method-assign]
    written = copy.deepcopy(kube.job)
    written["metadata"].update(uid="u-1", resourceVersion="42", managedFields=[{"m": "x" * 4000}])
    written["status"]["history"] = [{"state": "Queued", "message": "y" * 4000}]
    teller = Teller(kube, threads)
    teller.tell(written, "Normal", "Finished", "m")
    await asyncio.wait_for(teller.drain(), 5)
    # What the Event's involvedObject is made of, and nothing else (no status, no managedFields).
    assert about == [
        {
            "apiVersion": written["apiVersion"],
            "kind": written["kind"],
            "metadata": {
                "name": written["metadata"]["name"],
                "namespace": written["metadata"]["namespace"],
                "uid": "u-1",
                "resourceVersion": "42",
            },
        }
    ]
    await teller.stop()
