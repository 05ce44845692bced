"""Ferry never reads outcomes from, mounts or deletes an object it did not make for this Job.

Decisions: pods whose controller is not the Job's UID are not looked at; a name held by
another object blocks the Job with NameTaken, naming it. Execution: a create that finds the
name taken by another object records nothing and makes nothing after it; a workspace is
deleted only when the Job is its controller, and a pod only on a UID precondition."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest

from ferry.api.job import JobStatus, RunOutcome, State
from ferry.config import OperatorConfig
from ferry.decisions import parse
from ferry.decisions.plan import CreateObject, DeleteObject, Plan
from ferry.handlers.execute import Executor
from ferry.handlers.jobcache import JobCache
from ferry.handlers.metrics import Metrics
from ferry.handlers.podcache import PodCache
from ferry.handlers.tell import Teller
from ferry.handlers.threads import ApiThreads

from .factories import JOB, archive_pod, decide, exited, job_spec, job_view, observe
from .fakes import FakeKube

pytestmark = pytest.mark.unit

STRANGER = "99999999-0000-0000-0000-000000000000"


def _started(attempt: int = 1, **status: Any) -> JobStatus:
    return JobStatus.model_validate(
        {
            "state": "Running",
            "reason": "AppRunning",
            "attempt": attempt,
            "podName": f"{JOB}-{attempt}",
            "app": {"name": "solver", "version": "1", "image": "x", "specHash": "h"},
            **status,
        }
    )


def test_a_forged_run_pod_that_exited_0_does_not_finish_the_job() -> None:
    """A pod with Ferry's labels and the run pod's name, but not made for this Job (another
    controller, or none), is not the Job's run: the Job does not take its exit code."""
    forged = dataclasses.replace(exited(1, code=0), owner_uid=STRANGER)
    plan = decide(observe(job_view(status=_started()), pods=[forged]))
    assert plan.state != State.FINISHED
    assert plan.status.exit_code is None
    # Its own run pod is gone as far as this Job can tell: counted as an infrastructure
    # failure and retried, and the forged pod is never deleted by Ferry.
    assert plan.status.reason == "InfraFailure"
    assert not [a for a in plan.actions if isinstance(a, DeleteObject) and a.name == forged.name]


def test_an_old_jobs_archive_pod_does_not_archive_a_new_job_of_the_same_name() -> None:
    """After `kubectl delete fjob x; kubectl apply x`, the old x's archive pod that Succeeded
    is not the new x's: the new Job archives with its own pod."""
    stale = dataclasses.replace(
        archive_pod(1, 1, phase="Succeeded", summary={"files": 9, "bytes": 9, "uri": "s3://old/"}),
        owner_uid=STRANGER,
    )
    status = _started(runOutcome=RunOutcome.SUCCEEDED.value, exitCode=0, archiveTry=1)
    plan = decide(observe(job_view(status=status), pods=[stale]))
    assert plan.state == State.ARCHIVING
    assert plan.status.outputs is None
    made = [a.name for a in plan.actions if isinstance(a, CreateObject)]
    assert made == [f"{JOB}-1-archive-1"]


@pytest.mark.parametrize(
    ("foreign", "needle"),
    [
        (f"PersistentVolumeClaim/{JOB}-1", f"PersistentVolumeClaim {JOB}-1"),
        (f"Pod/{JOB}-1", f"Pod {JOB}-1"),
    ],
)
def test_a_child_name_held_by_another_object_blocks_the_job(foreign: str, needle: str) -> None:
    obs = dataclasses.replace(observe(job_view()), foreign=frozenset({foreign}))
    plan = decide(obs)
    assert (plan.state, plan.status.reason) == (State.BLOCKED, "NameTaken")
    assert needle in (plan.status.message or "")
    assert plan.actions == ()
    assert plan.status.attempt is None  # nothing was started
    assert plan.requeue_after is not None


def test_an_archive_pod_name_held_by_another_object_blocks_archiving() -> None:
    status = _started(runOutcome=RunOutcome.SUCCEEDED.value, exitCode=0)
    obs = dataclasses.replace(
        observe(job_view(status=status)), foreign=frozenset({f"Pod/{JOB}-1-archive-1"})
    )
    plan = decide(obs)
    assert (plan.state, plan.status.reason) == (State.BLOCKED, "NameTaken")
    assert not [a for a in plan.actions if isinstance(a, CreateObject)]


def test_deletes_of_pods_name_their_uid() -> None:
    """Releasing a finished Job deletes its pods by UID (a precondition), never by name
    alone; a foreign pod of the same Job name is not among them."""
    status = _started(state="Finished", reason="Succeeded", runOutcome="Succeeded")
    mine = exited(1, code=0)
    mine = dataclasses.replace(mine, uid="uid-mine")
    stranger = dataclasses.replace(archive_pod(1, 1, phase="Succeeded"), owner_uid=STRANGER)
    spec = job_spec()
    plan = decide(observe(job_view(spec=spec, status=status), pods=[mine, stranger]))
    pods = [a for a in plan.actions if isinstance(a, DeleteObject) and a.kind == "Pod"]
    assert [(a.name, a.uid) for a in pods] == [(mine.name, "uid-mine")]


# --------------------------------------------------------------------------- execution


def _job() -> dict[str, Any]:
    return {
        "apiVersion": "ferry.dev/v1alpha1",
        "kind": "Job",
        "metadata": {"name": "j", "namespace": "ns", "uid": "u-1", "resourceVersion": "10"},
        "spec": {"appRef": {"name": "solver"}},
        "status": {},
    }


def _manifest(kind: str, name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": kind, "metadata": {"name": name, "namespace": "ns"}}


@pytest.fixture
async def threads() -> AsyncIterator[ApiThreads]:
    pool = ApiThreads(2)
    yield pool
    pool.shutdown()


def _executor(kube: FakeKube, pods: PodCache, threads: ApiThreads) -> Executor:
    jobs = JobCache()
    jobs.put(("ns", "j"), kube.job)
    teller = Teller(kube, threads)
    return Executor(kube, OperatorConfig(), jobs, pods, threads, Metrics(), teller=teller)


async def test_a_create_that_finds_a_users_pvc_records_nothing_and_mounts_nothing(
    threads: ApiThreads,
) -> None:
    kube = FakeKube(_job(), [])
    users_claim = {"metadata": {"name": "j-1", "uid": "pvc-user", "ownerReferences": []}}
    kube.pvcs = [users_claim]
    made: list[str] = []

    def create(manifest: dict[str, Any]) -> bool:
        """The apiserver's AlreadyExists for the claim's name; anything else is made."""
        made.append(f"{manifest['kind']}/{manifest['metadata']['name']}")
        return manifest["kind"] != "PersistentVolumeClaim"

    kube.create = create  # type: ignore[method-assign]
    pods = PodCache()
    plan = Plan(
        status=JobStatus(state=State.QUEUED, reason="PodCreated", attempt=1),
        changed=True,
        actions=(
            CreateObject(_manifest("PersistentVolumeClaim", "j-1")),
            CreateObject(_manifest("Pod", "j-1")),
        ),
    )
    obj = copy.deepcopy(kube.job)
    executor = _executor(kube, pods, threads)
    delay = await executor.execute(("ns", "j"), obj, parse.job_view(obj), plan)
    await executor.teller.drain()
    assert delay is not None
    assert delay < 1  # decided again at once, with the name known
    assert ("get PersistentVolumeClaim", "j-1") in kube.log
    assert not [e for e in kube.log if e[0] in ("status", "event")]
    # The run pod that would mount the user's claim is never made.
    assert made == ["PersistentVolumeClaim/j-1"]
    assert pods.foreign(("ns", "j")) == frozenset({"PersistentVolumeClaim/j-1"})


async def test_a_workspace_is_deleted_only_when_the_job_is_its_controller(
    threads: ApiThreads,
) -> None:
    kube = FakeKube(_job(), [])
    kube.pvcs = [
        {"metadata": {"name": "j-1", "uid": "pvc-user", "ownerReferences": []}},
        {
            "metadata": {
                "name": "j-2",
                "uid": "pvc-ours",
                "ownerReferences": [{"uid": "u-1", "controller": True}],
            }
        },
    ]
    plan = Plan(
        status=JobStatus(state=State.FINISHED, reason="Succeeded"),
        changed=False,
        actions=(
            DeleteObject("PersistentVolumeClaim", "j-1"),
            DeleteObject("PersistentVolumeClaim", "j-2"),
        ),
    )
    obj = copy.deepcopy(kube.job)
    executor = _executor(kube, PodCache(), threads)
    await executor.execute(("ns", "j"), obj, parse.job_view(obj), plan)
    deletes = [e for e in kube.log if e[0].startswith("delete")]
    assert deletes == [("delete PersistentVolumeClaim", "j-2")]
