"""Parents: the gate before the first attempt, what a Job remembers of its parents (so a
parent deleted after it finished still counts), missing parents after the grace, and
dependency cycles; with the handlers' parts (deleted parents' last views, the confirming
read, the cycle search over the Job cache)."""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from typing import Any

import pytest

from ferry.api.common import S3Location
from ferry.api.job import JobStatus, State
from ferry.api.job_status import ParentRecord
from ferry.clients.protocol import NotFoundError
from ferry.config import OperatorConfig
from ferry.decisions import parse
from ferry.decisions.expected import parents_overdue
from ferry.decisions.observation import ParentView
from ferry.decisions.parents import cycle_through
from ferry.decisions.plan import CreateObject, Plan
from ferry.handlers.departed import KEEP_SECONDS, Departed
from ferry.handlers.jobcache import JobCache
from ferry.handlers.metrics import Metrics
from ferry.handlers.observe import Observed, Observer
from ferry.handlers.podcache import PodCache
from ferry.handlers.reconciler import Reconciler
from ferry.handlers.threads import ApiThreads

from .factories import CREATED, NOW, app_dict, decide, job_spec, job_view, observe, with_status
from .fakes import FakeKube, job_object

pytestmark = pytest.mark.unit

#: Within the default grace (300 s after the Job's creation) and past it.
EARLY = CREATED + timedelta(seconds=60)
LATE = CREATED + timedelta(seconds=300)
URI = "s3://ferry/bridge/mesh/uid/attempt-1/"


def finished(name: str, uri: str = URI, deleted: bool = False) -> ParentView:
    return ParentView(name=name, state=State.FINISHED, outputs_uri=uri, deleted=deleted)


def view(name: str, state: State | None, deleted: bool = False, reason: str = "") -> ParentView:
    return ParentView(name=name, state=state, reason=reason, deleted=deleted)


def child(*parents: str, **spec: Any) -> Any:
    return job_view(job_spec(parents=list(parents), **spec))


def pods(plan: Plan) -> list[dict[str, Any]]:
    return [a.manifest for a in plan.actions if isinstance(a, CreateObject) and a.kind == "Pod"]


# --------------------------------------------------------------------------- the gate


@pytest.mark.parametrize(
    ("parents", "now", "state", "reason", "needles"),
    [
        ({"a": None}, EARLY, State.AWAITING_PARENTS, "AwaitingParents", ["a (not found)"]),
        ({"a": None}, LATE, State.FAILED, "ParentNotFound", ["a (not found)", "5m0s"]),
        (
            {"a": view("a", State.RUNNING, deleted=True)},
            EARLY,
            State.AWAITING_PARENTS,
            "AwaitingParents",
            ["a (deleted while Running)"],
        ),
        (
            {"a": view("a", State.RUNNING, deleted=True)},
            LATE,
            State.FAILED,
            "ParentNotFound",
            ["a (deleted while Running)"],
        ),
        (
            {"a": view("a", None, deleted=True)},
            LATE,
            State.FAILED,
            "ParentNotFound",
            ["a (deleted while Pending)"],
        ),
        ({"a": finished("a", deleted=True)}, LATE, State.QUEUED, "PodCreated", []),
        ({"a": finished("a")}, LATE, State.QUEUED, "PodCreated", []),
        ({"a": view("a", State.RUNNING)}, LATE, State.AWAITING_PARENTS, "AwaitingParents", []),
        (
            {"a": view("a", State.FAILED, reason="AppFailed")},
            EARLY,
            State.FAILED,
            "ParentFailed",
            ["a (Failed: AppFailed)"],
        ),
    ],
    ids=[
        "missing-within-grace",
        "missing-past-grace",
        "deleted-running-within-grace",
        "deleted-running-past-grace",
        "deleted-pending-past-grace",
        "deleted-after-finishing",
        "finished",
        "running-past-grace",
        "failed",
    ],
)
def test_the_gate(
    parents: dict[str, ParentView | None],
    now: Any,
    state: State,
    reason: str,
    needles: list[str],
) -> None:
    plan = decide(observe(child("a"), parents=parents, now=now))
    assert (plan.state, plan.status.reason) == (state, reason), plan.status.message
    for needle in needles:
        assert needle in (plan.status.message or "")


def test_a_missing_parent_is_waited_for_until_the_grace_ends() -> None:
    plan = decide(observe(child("a"), parents={"a": None}, now=EARLY))
    assert "fails at 2026-03-01T12:00:00Z if a parent is still missing" in (
        plan.status.message or ""
    )
    # Looked at again when the grace ends (sooner than the resync).
    config = OperatorConfig(resync_seconds=600)
    plan = decide(observe(child("a"), parents={"a": None}, now=EARLY, config=config))
    assert plan.requeue_after == 240


def test_the_grace_is_a_setting() -> None:
    config = OperatorConfig(parent_grace_seconds=3600)
    plan = decide(observe(child("a"), parents={"a": None}, now=LATE, config=config))
    assert plan.state == State.AWAITING_PARENTS


def test_a_parent_seen_finished_is_remembered_so_its_deletion_does_not_matter() -> None:
    store = S3Location(bucket="results", endpoint="https://s3.example.org")
    a = ParentView(name="a", state=State.FINISHED, outputs_uri=URI, store=store)
    spec = {"inputs": [{"name": "model", "source": {"jobOutput": {"job": "a", "path": "m.tcl"}}}]}
    obs = observe(child("a", "b", **spec), parents={"a": a, "b": view("b", State.RUNNING)})
    first = decide(obs)
    assert first.state == State.AWAITING_PARENTS
    assert first.status.parents == [ParentRecord(name="a", outputs_uri=URI, store=store)]
    assert "a (" not in (first.status.message or "")
    # a is deleted (its TTL) long after the grace; b finishes: the Job starts, and stages a's
    # outputs from what it remembered.
    later = with_status(obs, first.status, parents={"a": None, "b": finished("b")}, now=LATE)
    plan = decide(later)
    assert (plan.state, plan.status.attempt) == (State.QUEUED, 1)
    assert [r.name for r in plan.status.parents] == ["a", "b"]
    (pod,) = pods(plan)
    staged = json.dumps(pod["spec"]["initContainers"])
    assert "bridge/mesh/uid/attempt-1/outputs/m.tcl" in staged
    assert "https://s3.example.org" in staged


def test_a_remembered_parent_is_staged_from_at_a_retry_after_its_deletion() -> None:
    spec = {
        "inputs": [{"name": "model", "source": {"jobOutput": {"job": "a", "path": "m.tcl"}}}],
        "retry": {"infraFailures": 1},
    }
    status = JobStatus(parents=[ParentRecord(name="a", outputs_uri=URI)])
    plan = decide(observe(job_view(job_spec(parents=["a"], **spec), status), parents={"a": None}))
    assert plan.state == State.QUEUED, plan.status.message


def test_remembering_adds_no_write() -> None:
    """A parent's record goes with the write the Job makes anyway (its message changed); a
    pass that sees nothing new writes nothing."""
    obs = observe(child("a", "b"), parents={"a": finished("a"), "b": view("b", State.RUNNING)})
    first = decide(obs)
    again = decide(
        with_status(obs, first.status, parents={"a": None, "b": view("b", State.RUNNING)})
    )
    assert again.changed is False


def test_a_job_without_parents_records_none() -> None:
    plan = decide(observe(job_view()))
    assert plan.status.parents == []


@pytest.mark.parametrize(
    ("parent", "cycle"),
    [("frame-001", ("frame-001", "frame-001")), ("b", ("frame-001", "b", "frame-001"))],
    ids=["self", "two"],
)
def test_a_dependency_cycle_fails_the_job_listing_it(parent: str, cycle: tuple[str, ...]) -> None:
    obs = observe(child(parent), parents={parent: view(parent, State.AWAITING_PARENTS)}, now=EARLY)
    plan = decide(with_status(obs, JobStatus(), cycle=cycle))
    assert (plan.state, plan.status.reason) == (State.FAILED, "DependencyCycle")
    assert " → ".join(cycle) in (plan.status.message or "")
    assert plan.actions == ()


# --------------------------------------------------------------------------- cycle search


def edges(graph: dict[str, Sequence[str]]) -> Any:
    return lambda name: graph.get(name, ())


@pytest.mark.parametrize(
    ("graph", "start", "cycle"),
    [
        ({"a": ["b"], "b": []}, "a", ()),
        ({"a": ["a"]}, "a", ("a", "a")),
        ({"a": ["b"], "b": ["a"]}, "a", ("a", "b", "a")),
        ({"a": ["b"], "b": ["c"], "c": ["a"]}, "a", ("a", "b", "c", "a")),
        ({"a": ["b"], "b": ["c"], "c": ["b"]}, "a", ()),  # a only waits on a cycle
        ({"a": ["b", "c"], "b": ["d"], "c": ["d"], "d": []}, "a", ()),  # a diamond
        ({"a": ["x", "b"], "b": ["c", "a"], "c": ["a"]}, "a", ("a", "b", "a")),  # the shortest
    ],
    ids=["none", "self", "two", "three", "behind-a-cycle", "diamond", "shortest"],
)
def test_cycle_through(graph: dict[str, Sequence[str]], start: str, cycle: tuple[str, ...]) -> None:
    assert cycle_through(start, edges(graph)) == cycle


def test_the_search_is_bounded() -> None:
    chain = {f"j{i}": [f"j{i + 1}"] for i in range(100)}
    chain["j100"] = ["j0"]
    assert cycle_through("j0", edges(chain)) != ()
    assert cycle_through("j0", edges(chain), limit=50) == ()


def _obj(status: dict[str, Any], parents: list[str]) -> dict[str, Any]:
    return {"metadata": {"name": "x"}, "spec": {"parents": parents}, "status": status}


@pytest.mark.parametrize(
    ("status", "waits"),
    [
        ({}, ("a", "b")),
        ({"state": "AwaitingParents"}, ("a", "b")),
        ({"state": "AwaitingParents", "parents": [{"name": "a"}]}, ("b",)),
        ({"state": "Queued", "attempt": 1}, ()),
        ({"state": "Failed", "reason": "ParentFailed"}, ()),
        ({"state": "Failed", "reason": "DependencyCycle"}, ("a", "b")),
        ({"state": "Suspended"}, ("a", "b")),
    ],
    ids=["new", "waiting", "one-remembered", "started", "failed", "in-a-cycle", "suspended"],
)
def test_what_a_job_waits_on(status: dict[str, Any], waits: tuple[str, ...]) -> None:
    assert parse.waits_on(_obj(status, ["a", "b"])) == waits
    assert parse.parent_view(_obj(status, ["a", "b"])).waits_on == waits


def test_what_a_job_with_a_broken_spec_waits_on() -> None:
    assert parse.waits_on({"spec": {"parents": "a"}, "status": {}}) == ()
    assert parse.waits_on({"spec": None, "status": None}) == ()


@pytest.mark.parametrize(
    ("parents", "status", "now", "overdue"),
    [
        (["a"], JobStatus(), LATE, True),
        (["a"], JobStatus(), EARLY, False),
        ([], JobStatus(), LATE, False),
        (["a"], JobStatus(attempt=1, state=State.RUNNING), LATE, False),
        (["a"], JobStatus(state=State.FAILED), LATE, False),
    ],
    ids=["past-grace", "within-grace", "no-parents", "started", "terminal"],
)
def test_when_a_missing_parent_is_read_afresh(
    parents: list[str], status: JobStatus, now: Any, overdue: bool
) -> None:
    job = job_view(job_spec(parents=parents), status)
    assert parents_overdue(job, now, 300) is overdue


# --------------------------------------------------------------------------- handlers


def test_departed_parents_are_kept_a_while() -> None:
    clock = [0.0]
    departed = Departed(clock=lambda: clock[0])
    departed.remember(("ns", "a"), finished("a"))
    kept = departed.get(("ns", "a"))
    assert kept is not None
    assert kept.deleted
    assert kept.state == State.FINISHED
    clock[0] = KEEP_SECONDS + 1
    assert departed.get(("ns", "a")) is None
    departed.remember(("ns", "b"), finished("b"))
    departed.forget(("ns", "b"))
    assert departed.get(("ns", "b")) is None


def _job(name: str, status: dict[str, Any], **spec: Any) -> dict[str, Any]:
    obj = job_object(status, "ns", **spec)
    obj["metadata"]["name"] = name
    obj["metadata"]["uid"] = f"uid-{name}"
    return obj


def test_the_reconciler_keeps_a_deleted_parent_s_last_view_for_its_children() -> None:
    rec = Reconciler(FakeKube(_job("c", {}, parents=["p"]), []), OperatorConfig())
    rec.job_event("ADDED", _job("p", {"state": "Running"}))
    rec.job_event("ADDED", _job("c", {}, parents=["p"]))
    done = _job("p", {"state": "Finished", "outputs": {"uri": URI}})
    done["metadata"]["resourceVersion"] = "11"
    rec.job_event("MODIFIED", done)
    rec.job_event("DELETED", done)
    kept = rec.departed.get(("ns", "p"))
    assert kept is not None
    assert (kept.state, kept.deleted, kept.outputs_uri) == (
        State.FINISHED,
        True,
        URI,
    )
    # A Job nobody names as a parent leaves nothing behind.
    rec.job_event("DELETED", _job("lonely", {"state": "Finished"}))
    assert rec.departed.get(("ns", "lonely")) is None
    # A new Job of the name (a new UID) is the parent from then on.
    again = _job("p", {})
    again["metadata"]["uid"] = "uid-p-2"
    again["metadata"]["resourceVersion"] = "12"
    rec.job_event("ADDED", again)
    assert rec.departed.get(("ns", "p")) is None


@pytest.fixture
async def threads() -> AsyncIterator[ApiThreads]:
    pool = ApiThreads(2)
    yield pool
    pool.shutdown()


class Missing(FakeKube):
    """An apiserver that knows the child and, maybe, a parent the cache has not seen yet."""

    def __init__(self, job: dict[str, Any], parent: dict[str, Any] | None) -> None:
        super().__init__(job, [])
        self.parent = parent
        self.reads: list[str] = []

    def get_job(self, namespace: str, name: str) -> dict[str, Any]:
        self.reads.append(name)
        if name == self.job["metadata"]["name"]:
            return copy.deepcopy(self.job)
        if self.parent is not None and name == self.parent["metadata"]["name"]:
            return copy.deepcopy(self.parent)
        raise NotFoundError(name)


def _observer(kube: FakeKube, threads: ApiThreads, jobs: JobCache, now: Any) -> Observer:
    apps = {("ns", "solver"): {"metadata": {"name": "solver"}, "spec": app_dict()}}
    return Observer(kube, OperatorConfig(), lambda: now, jobs, PodCache(), apps, threads, Metrics())


@pytest.mark.parametrize(
    ("now", "on_server", "reads", "state"),
    [
        (EARLY, True, [], None),  # within the grace: the cache is believed
        (NOW, True, ["p"], State.RUNNING),  # past it: read, found (the watch had not listed it)
        (NOW, False, ["p"], None),  # past it: read, really missing
    ],
    ids=["within-grace", "listed-late", "missing"],
)
async def test_a_parent_missing_from_the_cache_is_read_when_it_would_fail_the_job(
    threads: ApiThreads, now: Any, on_server: bool, reads: list[str], state: State | None
) -> None:
    job = _job("c", {}, parents=["p"])
    parent = _job("p", {"state": "Running"}) if on_server else None
    kube = Missing(job, parent)
    jobs = JobCache()
    jobs.put(("ns", "c"), copy.deepcopy(job))
    observed = await _observer(kube, threads, jobs, now).observe(("ns", "c"))
    assert isinstance(observed, Observed)
    assert kube.reads == reads
    seen = observed.observation.parents["p"]
    assert (seen.state if seen is not None else None) == state


async def test_the_cycle_is_found_in_the_job_cache(threads: ApiThreads) -> None:
    a = _job("a", {"state": "AwaitingParents"}, parents=["b"])
    b = _job("b", {"state": "AwaitingParents"}, parents=["c"])
    c = _job("c", {}, parents=["a"])
    jobs = JobCache()
    for obj in (a, b, c):
        jobs.put(("ns", obj["metadata"]["name"]), copy.deepcopy(obj))
    observed = await _observer(FakeKube(a, []), threads, jobs, EARLY).observe(("ns", "a"))
    assert isinstance(observed, Observed)
    assert observed.observation.cycle == ("a", "b", "c", "a")
    plan = decide(observed.observation)
    assert (plan.state, plan.status.reason) == (State.FAILED, "DependencyCycle")
    assert "a → b → c → a" in (plan.status.message or "")
    # b, looked at after a failed in the cycle, fails the same way, not as ParentFailed.
    failed_a = {**copy.deepcopy(a), "status": plan.status.wire()}
    jobs.put(("ns", "a"), {**failed_a, "metadata": {**a["metadata"], "resourceVersion": "11"}})
    assert jobs.rest(("ns", "a"))
    observed = await _observer(FakeKube(b, []), threads, jobs, EARLY).observe(("ns", "b"))
    assert isinstance(observed, Observed)
    plan = decide(observed.observation)
    assert (plan.state, plan.status.reason) == (State.FAILED, "DependencyCycle")
    assert "b → c → a → b" in (plan.status.message or "")


async def test_a_started_parent_breaks_no_cycle(threads: ApiThreads) -> None:
    """a re-created naming b, which already started (it saw an earlier a finish): b will end,
    so a only waits."""
    a = _job("a", {}, parents=["b"])
    b = _job("b", {"state": "Running", "attempt": 1}, parents=["a"])
    jobs = JobCache()
    for obj in (a, b):
        jobs.put(("ns", obj["metadata"]["name"]), copy.deepcopy(obj))
    observed = await _observer(FakeKube(a, []), threads, jobs, EARLY).observe(("ns", "a"))
    assert isinstance(observed, Observed)
    assert observed.observation.cycle == ()
    assert decide(observed.observation).state == State.AWAITING_PARENTS


async def test_the_second_job_of_a_cycle_fails_with_the_cycle_not_its_parent_s_failure(
    threads: ApiThreads,
) -> None:
    """b failed first (DependencyCycle); a's parent b is then Failed, but a is in the cycle."""
    a = _job("a", {"state": "AwaitingParents"}, parents=["b"])
    b = _job("b", {"state": "Failed", "reason": "DependencyCycle"}, parents=["a"])
    jobs = JobCache()
    for obj in (a, b):
        jobs.put(("ns", obj["metadata"]["name"]), copy.deepcopy(obj))
    assert jobs.rest(("ns", "b"))
    observed = await _observer(FakeKube(a, []), threads, jobs, EARLY).observe(("ns", "a"))
    assert isinstance(observed, Observed)
    plan = decide(observed.observation)
    assert (plan.state, plan.status.reason) == (State.FAILED, "DependencyCycle")
    assert "a → b → a" in (plan.status.message or "")
