"""Observing one Job: when there is nothing to look at, when to come back later, what is read
from the API and how often."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from typing import Any

import pytest

from ferry.clients.protocol import NotFoundError
from ferry.config import OperatorConfig
from ferry.handlers.jobcache import JobCache
from ferry.handlers.metrics import Metrics
from ferry.handlers.observe import Later, Observed, Observer
from ferry.handlers.podcache import EXPECTATION_SECONDS, PodCache
from ferry.handlers.threads import ApiThreads
from tests.unit.factories import NOW, app_dict
from tests.unit.fakes import FakeKube, job_object

pytestmark = pytest.mark.unit

NS = "ns"
KEY = (NS, "j")


def _job(status: dict[str, Any]) -> dict[str, Any]:
    return job_object(status, NS)


def _app(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "solver", "namespace": NS}, "spec": app_dict(**spec)}


def _pod(name: str = "j-1") -> dict[str, Any]:
    labels = {"ferry.dev/job": "j", "ferry.dev/attempt": "1", "ferry.dev/role": "run"}
    meta = {
        "name": name,
        "namespace": NS,
        "resourceVersion": "20",
        "labels": labels,
        "ownerReferences": [{"uid": "u-1", "controller": True}],
    }
    return {"metadata": meta, "status": {"phase": "Running"}}


class Bed:
    def __init__(self, threads: ApiThreads, job: dict[str, Any]) -> None:
        self.kube = FakeKube(job, [])
        self.jobs = JobCache()
        self.pods = PodCache()
        self.apps = {(NS, "solver"): _app()}
        self.observer = Observer(
            self.kube,
            OperatorConfig(),
            lambda: NOW,
            self.jobs,
            self.pods,
            self.apps,
            threads,
            Metrics(),
        )


@pytest.fixture
async def threads() -> AsyncIterator[ApiThreads]:
    pool = ApiThreads(2)
    yield pool
    pool.shutdown()


async def test_a_job_at_rest_without_a_standing_pod_needs_no_look(threads: ApiThreads) -> None:
    bed = Bed(threads, _job({"state": "Finished", "attempt": 1}))
    bed.jobs.put(KEY, copy.deepcopy(bed.kube.job))
    assert bed.jobs.rest(KEY)
    assert await bed.observer.observe(KEY) is None
    assert bed.kube.log == []


async def test_a_job_at_rest_with_a_standing_pod_is_read_and_its_pods_seen(
    threads: ApiThreads,
) -> None:
    bed = Bed(threads, _job({"state": "Finished", "attempt": 1}))
    bed.jobs.put(KEY, copy.deepcopy(bed.kube.job))
    bed.jobs.rest(KEY)
    bed.pods.put(None, _pod())
    bed.pods.mark_stray(KEY)
    observed = await bed.observer.observe(KEY)
    assert isinstance(observed, Observed)
    assert [p.name for p in observed.observation.pods] == ["j-1"]
    assert observed.observation.pvcs == {"j-1"}
    assert bed.jobs.get(KEY) is not None, "read afresh, whole again"
    assert not bed.pods.is_stray(KEY), "one pass looks"


async def test_a_terminal_job_without_a_stray_pod_has_no_children_looked_at(
    threads: ApiThreads,
) -> None:
    bed = Bed(threads, _job({"state": "Failed", "attempt": 1}))
    bed.pods.put(None, _pod())  # cached, but not marked as standing since the last pass
    observed = await bed.observer.observe(KEY)
    assert isinstance(observed, Observed)
    assert observed.observation.pods == ()
    assert observed.observation.pvcs == frozenset()


async def test_a_job_gone_needs_no_look(threads: ApiThreads) -> None:
    bed = Bed(threads, _job({}))

    def gone(namespace: str, name: str) -> dict[str, Any]:
        raise NotFoundError(f"Job {namespace}/{name}")

    bed.kube.get_job = gone  # type: ignore[method-assign]
    assert await bed.observer.observe(KEY) is None


async def test_a_pod_this_process_created_and_not_seen_yet_makes_the_pass_wait(
    threads: ApiThreads,
) -> None:
    bed = Bed(threads, _job({"state": "Queued", "attempt": 1, "podName": "j-1"}))
    bed.pods.expect_created(KEY, "j-1")
    assert await bed.observer.observe(KEY) == Later(EXPECTATION_SECONDS)
    assert bed.kube.log == [], "no LIST: the watch event is awaited"
    bed.pods.put("ADDED", _pod())
    observed = await bed.observer.observe(KEY)
    assert isinstance(observed, Observed)
    assert [p.name for p in observed.observation.pods] == ["j-1"]


async def test_a_run_pod_that_looks_lost_is_confirmed_with_a_listing(
    threads: ApiThreads,
) -> None:
    bed = Bed(threads, _job({"state": "Running", "attempt": 1, "podName": "j-1"}))
    bed.kube.pods = [_pod()]
    observed = await bed.observer.observe(KEY)
    assert isinstance(observed, Observed)
    assert bed.kube.log == [("list", "j")]
    assert [p.name for p in observed.observation.pods] == ["j-1"]
    assert [p.name for p in bed.pods.views(KEY)] == ["j-1"], "the listing is believed"


async def test_a_pod_this_process_deleted_is_seen_as_deleting(threads: ApiThreads) -> None:
    bed = Bed(threads, _job({"state": "Running", "attempt": 1, "podName": "j-1"}))
    bed.pods.put(None, _pod())
    bed.pods.expect_deleted(KEY, "j-1")
    observed = await bed.observer.observe(KEY)
    assert isinstance(observed, Observed)
    assert [(p.name, p.deleting) for p in observed.observation.pods] == [("j-1", True)]


async def test_the_mpi_operator_is_asked_for_at_most_every_30_seconds(
    threads: ApiThreads,
) -> None:
    bed = Bed(threads, _job({}))
    bed.apps[(NS, "solver")] = _app(runtime={"type": "MPI", "mpi": {"workers": 2}})
    asked: list[str] = []

    def crd_exists(name: str) -> bool:
        asked.append(name)
        return False

    bed.kube.crd_exists = crd_exists  # type: ignore[method-assign]
    for _ in range(2):
        observed = await bed.observer.observe(KEY)
        assert isinstance(observed, Observed)
        assert not observed.observation.mpi_available
    assert asked == ["mpijobs.kubeflow.org"]


async def test_a_pod_app_never_asks_for_the_mpi_operator(threads: ApiThreads) -> None:
    bed = Bed(threads, _job({}))
    bed.kube.crd_exists = lambda name: pytest.fail("asked")  # type: ignore[method-assign]
    observed = await bed.observer.observe(KEY)
    assert isinstance(observed, Observed)
    assert observed.observation.mpi_available


async def test_kueues_workload_is_read_only_for_a_gated_run_pod(threads: ApiThreads) -> None:
    bed = Bed(threads, _job({"state": "Queued", "attempt": 1, "podName": "j-1"}))
    bed.jobs.put(KEY, copy.deepcopy(bed.kube.job))
    bed.pods.put(None, _pod())
    observed = await bed.observer.observe(KEY)
    assert isinstance(observed, Observed)
    assert ("list workloads", "pod-uid") not in bed.kube.log, "an ungated pod: no read"
    gated = _pod()
    gated["metadata"]["uid"] = "pod-uid"
    gated["spec"] = {"schedulingGates": [{"name": "kueue.x-k8s.io/admission"}]}
    gated["status"] = {"phase": "Pending"}
    bed.pods.put(None, gated)
    bed.kube.workloads = [
        {
            "metadata": {"creationTimestamp": "2026-03-01T11:00:00Z"},
            "status": {
                "conditions": [{"type": "QuotaReserved", "status": "False", "message": "no quota"}]
            },
        }
    ]
    observed = await bed.observer.observe(KEY)
    assert isinstance(observed, Observed)
    assert bed.kube.log.count(("list workloads", "pod-uid")) == 1
    assert [p.admission for p in observed.observation.pods] == ["no quota"]
    bed.kube.workloads = None  # Kueue not installed
    observed = await bed.observer.observe(KEY)
    assert isinstance(observed, Observed)
    assert observed.observation.pods[0].admission.startswith("Kueue is not installed")


async def test_an_app_is_parsed_again_only_when_its_cached_dict_changes(
    threads: ApiThreads, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Passes reuse the last parse of the Job's App while the cache holds the same dict; a
    new App is seen at once. The Job itself is parsed on every pass (a kept parse per live
    Job cost 130 MB at 5,000 and no CPU a benchmark could tell): a held status too."""
    from ferry.decisions import parse

    parsed: list[str] = []
    real_job, real_app = parse.job_view, parse.app_view
    monkeypatch.setattr(parse, "job_view", lambda o: parsed.append("job") or real_job(o))
    monkeypatch.setattr(parse, "app_view", lambda o: parsed.append("app") or real_app(o))
    bed = Bed(threads, _job({"state": "Pending"}))
    bed.jobs.put(KEY, copy.deepcopy(bed.kube.job))
    first = await bed.observer.observe(KEY)
    again = await bed.observer.observe(KEY)
    assert isinstance(first, Observed)
    assert isinstance(again, Observed)
    assert parsed == ["job", "app", "job"]
    assert again.observation.app is first.observation.app
    assert bed.jobs.hold(KEY, {"state": "Blocked", "reason": "AppNotFound"}, {}, 0.0)
    held = await bed.observer.observe(KEY)
    assert isinstance(held, Observed)
    assert held.observation.job.status.state is not None
    assert held.observation.job.status.state.value == "Blocked"
    assert parsed == ["job", "app", "job", "job"]
    bed.apps[(NS, "solver")] = _app(image="example.org/solver:2")
    changed = await bed.observer.observe(KEY)
    assert isinstance(changed, Observed)
    assert changed.observation.app is not None
    assert changed.observation.app.spec is not None
    assert changed.observation.app.spec.image == "example.org/solver:2"
    assert parsed == ["job", "app", "job", "job", "job", "app"]
