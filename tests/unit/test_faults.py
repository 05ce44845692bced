"""Faults that used to lose or re-run a Job (issue #17's defects, each with the test that
failed before its fix)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from ferry.api.job import State
from ferry.decisions import parse
from ferry.decisions.plan import CreateObject, DeleteJob

from .factories import (
    JOB,
    NS,
    UID,
    app_view,
    archive_pod,
    decide,
    job_dict,
    observe,
)
from .test_lifecycle import SUMMARY, succeeded_then

pytestmark = pytest.mark.unit


def _job_obj(status: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {"name": JOB, "namespace": NS, "uid": UID, "generation": 1},
        "spec": job_dict(),
        "status": status,
    }


@pytest.mark.parametrize(
    "status",
    [
        # Written by a newer Ferry (a state this one does not know), before a rollback.
        {"state": "Preempted", "attempt": 3, "retries": {"appFailures": 2}},
        # A field of the wrong type, written by someone else.
        {"state": "Finished", "attempt": "three"},
    ],
    ids=["newer-state", "foreign-field"],
)
def test_a_status_that_cannot_be_read_never_restarts_the_job(status: dict[str, Any]) -> None:
    view = parse.job_view(_job_obj(status))
    assert view.status_error
    plan = decide(observe(view, app=app_view()))
    assert not plan.changed  # what a newer Ferry wrote is not overwritten
    assert plan.actions == ()  # attempt 1 is not started again
    assert [(e.type, e.reason) for e in plan.notices] == [("Warning", "StatusUnreadable")]
    assert "cannot be read" in plan.notices[0].message
    assert plan.requeue_after is not None


def test_ttl_zero_records_the_end_before_deleting_the_job() -> None:
    """ttlSecondsAfterFinished: 0 deleted the Job in the very pass that ended it, so its
    terminal state was never written (watchers and children never saw it)."""
    obs, ending = succeeded_then(
        [archive_pod(phase="Succeeded", summary=SUMMARY)], ttlSecondsAfterFinished=0
    )
    assert ending.state == State.FINISHED
    assert ending.changed
    assert DeleteJob() not in ending.actions
    assert ending.requeue_after == 0.0
    # The next pass, with the terminal state recorded, deletes it.
    recorded = dataclasses.replace(
        obs, job=dataclasses.replace(obs.job, status=ending.status), pods=()
    )
    after = decide(recorded)
    assert DeleteJob() in after.actions
    assert not [a for a in after.actions if isinstance(a, CreateObject)]


async def test_a_notice_is_posted_without_writing_the_status() -> None:
    import copy

    from ferry.api.job import JobStatus
    from ferry.config import OperatorConfig
    from ferry.decisions.plan import Event, Plan
    from ferry.handlers.execute import Executor
    from ferry.handlers.jobcache import JobCache
    from ferry.handlers.metrics import Metrics
    from ferry.handlers.podcache import PodCache
    from ferry.handlers.tell import Teller
    from ferry.handlers.threads import ApiThreads

    from .fakes import FakeKube, job_object

    obj = job_object({"state": "Preempted"})
    kube = FakeKube(obj, [])
    jobs = JobCache()
    jobs.put(("ns", "j"), obj)
    threads = ApiThreads(1)
    try:
        teller = Teller(kube, threads)
        executor = Executor(
            kube, OperatorConfig(), jobs, PodCache(), threads, Metrics(), teller=teller
        )
        plan = Plan(
            status=JobStatus(state=State.BLOCKED),
            changed=False,
            notices=(Event("Warning", "StatusUnreadable", "status cannot be read"),),
        )
        view = parse.job_view(copy.deepcopy(obj))
        await executor.execute(("ns", "j"), copy.deepcopy(obj), view, plan)
        await teller.drain()
    finally:
        threads.shutdown()
    assert kube.log == [("event", "StatusUnreadable")]


def test_a_create_the_apiserver_refuses_blocks_with_its_words() -> None:
    from .factories import job_view

    words = (
        'pods "solver-job-1" is forbidden: exceeded quota: q, requested: pods=1, limited: pods=0'
    )
    obs = dataclasses.replace(observe(job_view(), app=app_view()), refused={f"Pod/{JOB}-1": words})
    plan = decide(obs)
    assert (plan.state, plan.status.reason) == (State.BLOCKED, "CreateRefused")
    assert words in (plan.status.message or "")
    assert plan.actions == ()
    assert plan.status.attempt is None
    assert plan.requeue_after is not None


async def test_a_refused_create_records_nothing_and_backs_off() -> None:
    import copy

    from ferry.api.job import JobStatus
    from ferry.clients.protocol import RefusedError
    from ferry.config import OperatorConfig
    from ferry.decisions.plan import Plan
    from ferry.handlers.execute import Executor
    from ferry.handlers.jobcache import JobCache
    from ferry.handlers.metrics import Metrics
    from ferry.handlers.podcache import PodCache
    from ferry.handlers.tell import Teller
    from ferry.handlers.threads import ApiThreads

    from .fakes import FakeKube, job_object

    obj = job_object({})
    kube = FakeKube(obj, [])
    now = [0.0]
    pods = PodCache(monotonic=lambda: now[0])

    def refuse(manifest: dict[str, Any]) -> bool:
        kube.log.append(("create", manifest["metadata"]["name"]))
        if manifest["kind"] == "Pod":
            raise RefusedError("exceeded quota: q, limited: pods=0")
        return True

    kube.create = refuse  # type: ignore[method-assign]
    jobs = JobCache()
    jobs.put(("ns", "j"), obj)
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "j-1", "namespace": "ns"}}
    pvc = {**pod, "kind": "PersistentVolumeClaim"}
    plan = Plan(
        status=JobStatus(state=State.QUEUED, attempt=1),
        changed=True,
        actions=(CreateObject(pvc), CreateObject(pod)),
    )
    threads = ApiThreads(1)
    try:
        teller = Teller(kube, threads)
        executor = Executor(kube, OperatorConfig(), jobs, pods, threads, Metrics(), teller=teller)
        for _ in range(3):
            view = parse.job_view(copy.deepcopy(obj))
            await executor.execute(("ns", "j"), copy.deepcopy(obj), view, plan)
        await teller.drain()
    finally:
        threads.shutdown()
    assert not [e for e in kube.log if e[0] == "status"]
    assert pods.refused(("ns", "j")) == {"Pod/j-1": "exceeded quota: q, limited: pods=0"}
    # Three refusals in a row: reported for 10 s, 20 s, then 40 s.
    now[0] = 39.0
    assert pods.refused(("ns", "j"))
    now[0] = 41.0
    assert not pods.refused(("ns", "j"))


@pytest.mark.parametrize("words", ["not found", "is being deleted"])
def test_a_workspace_deleted_under_the_job_fails_archiving_instead_of_waiting(words: str) -> None:
    """The archive pod of an attempt whose workspace PVC was deleted can never be scheduled:
    it used to wait in Archiving forever."""
    obs, plan = succeeded_then()
    assert plan.state == State.ARCHIVING
    stuck = dataclasses.replace(
        archive_pod(phase="Pending"),
        scheduled=False,
        schedule_message=f'0/1 nodes are available: persistentvolumeclaim "{JOB}-1" {words}.',
    )
    after = decide(
        dataclasses.replace(
            obs, job=dataclasses.replace(obs.job, status=plan.status), pods=(stuck,)
        )
    )
    assert (after.state, after.status.reason) == (State.FAILED, "ArchiveFailed")
    assert f"PersistentVolumeClaim {JOB}-1 was deleted" in (after.status.message or "")


def test_inline_inputs_are_bounded_in_bytes_and_fit_one_environment_string() -> None:
    """64 KiB of characters could be 256 KiB of UTF-8 (and six bytes a character as JSON
    escapes): past the kernel's 128 KiB for one environment string, the pod failed at run time.
    Inline data is bounded in bytes, and staged as UTF-8."""
    from pydantic import ValidationError

    from ferry.api.job import JobSpec
    from ferry.config import OperatorConfig
    from ferry.decisions.builders import JobMeta
    from ferry.decisions.run_pod import run_pod

    from .factories import app_spec

    def spec(*texts: str) -> JobSpec:
        inputs = [{"name": f"i{n}", "source": {"inline": t}} for n, t in enumerate(texts)]
        return JobSpec.model_validate({"appRef": {"name": "a"}, "inputs": inputs})

    with pytest.raises(ValidationError, match="bytes of UTF-8"):
        spec("€" * 30000)  # 30,000 characters, 90,000 bytes
    with pytest.raises(ValidationError, match="together"):
        spec(*["x" * 60000] * 5)
    fits = spec("€" * 21845)  # 65,535 bytes
    app = app_spec(inputs=[{"name": "i0"}], args=[])
    pod = run_pod(JobMeta(JOB, NS, UID), app, fits, {}, 1, OperatorConfig())
    (stage,) = [c for c in pod["spec"]["initContainers"] if c["name"] == "stage-i0"]
    value = next(e["value"] for e in stage["env"] if e["name"] == "FERRY_INPUT")
    assert len(f"FERRY_INPUT={value}".encode()) < 128 * 1024
