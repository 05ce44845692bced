"""Kueue: which child carries the queue label (the run pod or the MPIJob, nothing else), what a
gated pod or a suspended MPIJob means (Queued/AwaitingAdmission with Kueue's words), what
Kueue's Workloads say, and a preemption (requeued without cost)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from ferry.api import names
from ferry.api.job import JobSpec, State
from ferry.api.reasons import Reason
from ferry.decisions import builders, kueue, mpi_job
from ferry.decisions.context import job_meta
from ferry.decisions.mpiview import MPICondition, MPIJobView, mpijob_view
from ferry.decisions.observation import Observation, PodView, pod_view
from ferry.decisions.plan import CreateObject, DeleteObject, Plan

from .factories import (
    CONFIG,
    JOB,
    NOW,
    UID,
    app_spec,
    app_view,
    container,
    decide,
    job_spec,
    job_view,
    observe,
    running,
    with_status,
)

pytestmark = pytest.mark.unit

MPI_APP = {"type": "MPI", "mpi": {"workers": 2}}
USER_LABELS = {
    "project": "bridge",
    names.LABEL_KUEUE_QUEUE: "from-label",
    "kueue.x-k8s.io/priority-class": "high",
}


def _obs(spec: JobSpec, labels: dict[str, str], **kw: Any) -> Observation:
    job = dataclasses.replace(job_view(spec), labels=labels)
    return observe(job, **kw)


def _created(plan: Plan) -> dict[str, dict[str, Any]]:
    return {a.kind: a.manifest for a in plan.actions if isinstance(a, CreateObject)}


def _kueue_keys(meta: dict[str, Any]) -> list[str]:
    keys = [*(meta.get("labels") or {}), *(meta.get("annotations") or {})]
    return [k for k in keys if k.startswith(names.KUEUE_PREFIX)]


# --------------------------------------------------------------------------- labels


def test_only_the_run_pod_carries_the_queue_label_and_spec_wins_over_the_jobs_label() -> None:
    obs = _obs(job_spec(queueName="small"), USER_LABELS)
    created = _created(decide(obs))
    pod, pvc = created["Pod"], created["PersistentVolumeClaim"]
    assert pod["metadata"]["labels"][names.LABEL_KUEUE_QUEUE] == "small"
    assert sorted(_kueue_keys(pod["metadata"])) == [
        names.LABEL_KUEUE_PRIORITY_CLASS,
        names.LABEL_KUEUE_QUEUE,
    ]
    assert pod["metadata"]["labels"][names.LABEL_KUEUE_PRIORITY_CLASS] == "high"
    assert pod["metadata"]["labels"]["project"] == "bridge", "the user's own labels still go"
    assert "schedulingGates" not in pod["spec"], "Kueue's webhook gates it, never Ferry"
    assert _kueue_keys(pvc["metadata"]) == []
    meta = job_meta(obs)
    archive = builders.archive_pod(meta, app_spec(), job_spec(), 1, 1, {}, CONFIG)
    assert _kueue_keys(archive["metadata"]) == []


def test_the_jobs_own_queue_label_queues_its_run_pod() -> None:
    pod = _created(decide(_obs(job_spec(), USER_LABELS)))["Pod"]
    assert pod["metadata"]["labels"][names.LABEL_KUEUE_QUEUE] == "from-label"


def test_a_job_without_a_queue_puts_no_kueue_label_anywhere() -> None:
    labels = {"project": "bridge", names.LABEL_KUEUE_PRIORITY_CLASS: "high"}
    created = _created(decide(_obs(job_spec(), labels)))
    assert all(_kueue_keys(m["metadata"]) == [] for m in created.values())


def test_a_queued_mpijob_is_suspended_and_labelled_its_pod_templates_are_not() -> None:
    app = app_view(app_spec(runtime=MPI_APP))
    created = _created(decide(_obs(job_spec(queueName="small"), USER_LABELS, app=app)))
    job = created["MPIJob"]
    assert job["metadata"]["labels"][names.LABEL_KUEUE_QUEUE] == "small"
    assert job["spec"]["runPolicy"]["suspend"] is True
    for replica in job["spec"]["mpiReplicaSpecs"].values():
        assert _kueue_keys(replica["template"]["metadata"]) == []
    assert _kueue_keys(created["PersistentVolumeClaim"]["metadata"]) == []
    unqueued = mpi_job.mpijob(
        builders.JobMeta(JOB, "bridge", UID),
        app_spec(runtime=MPI_APP),
        job_spec(),
        {"steps": 5},
        1,
        CONFIG,
    )
    assert unqueued["spec"]["runPolicy"]["suspend"] is False
    assert names.LABEL_KUEUE_QUEUE not in unqueued["metadata"]["labels"]


def test_queue_name_is_a_dns_label() -> None:
    with pytest.raises(ValueError, match="queueName"):
        job_spec(queueName="Not_A_Label")
    assert job_spec(queueName="team-a").queue_name == "team-a"


# --------------------------------------------------------------------------- reading


def _pod_dict(**extra: Any) -> dict[str, Any]:
    labels = {
        names.LABEL_JOB: JOB,
        names.LABEL_ATTEMPT: "1",
        names.LABEL_ROLE: names.ROLE_RUN,
        names.LABEL_KUEUE_QUEUE: "small",
    }
    pod: dict[str, Any] = {
        "metadata": {"name": f"{JOB}-1", "uid": "pod-uid", "labels": labels},
        "spec": {"schedulingGates": [{"name": names.KUEUE_ADMISSION_GATE}]},
        "status": {
            "phase": "Pending",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "SchedulingGated",
                    "message": "Scheduling is blocked due to non-empty scheduling gates",
                }
            ],
        },
    }
    pod.update(extra)
    return pod


def test_pod_view_reads_kueues_gate_queue_and_stop_condition() -> None:
    view = pod_view(_pod_dict())
    assert view is not None
    assert (view.gated, view.queue, view.stopped) == (True, "small", "")
    stopped = _pod_dict(
        spec={},
        status={
            "phase": "Running",
            "conditions": [
                {
                    "type": names.KUEUE_STOP_CONDITION,
                    "status": "True",
                    "reason": "Preempted",
                    "message": "Preempted to accommodate a workload (UID: x)",
                }
            ],
        },
    )
    view = pod_view(stopped)
    assert view is not None
    assert not view.gated
    assert view.stopped == "Preempted: Preempted to accommodate a workload (UID: x)"
    other_gate = _pod_dict(spec={"schedulingGates": [{"name": "example.org/other"}]})
    assert pod_view(other_gate).gated is False  # type: ignore[union-attr]


def _workload(created: str, *conds: tuple[str, str, str]) -> dict[str, Any]:
    return {
        "metadata": {"name": f"pod-{JOB}-1-abc", "creationTimestamp": created},
        "status": {
            "conditions": [{"type": t, "status": s, "message": m} for t, s, m in conds],
        },
    }


QUOTA = (
    "couldn't assign flavors to pod set main: insufficient unused quota for cpu in flavor "
    "default-flavor, 1 more needed"
)


def test_admission_words_are_kueues_own() -> None:
    assert kueue.admission_words(None) == kueue.KUEUE_MISSING
    assert kueue.admission_words([]) == kueue.NO_WORKLOAD
    pending = _workload("2026-03-01T11:00:00Z", ("QuotaReserved", "False", QUOTA))
    assert kueue.admission_words([pending]) == QUOTA
    checks = _workload(
        "2026-03-01T11:30:00Z",
        ("QuotaReserved", "True", "Quota reserved in ClusterQueue cq"),
        ("Admitted", "False", "The workload has not all checks ready"),
    )
    assert kueue.admission_words([pending, checks]) == "The workload has not all checks ready"
    assert kueue.admission_words([_workload("2026-03-01T11:00:00Z")]).startswith("queued")


# --------------------------------------------------------------------------- lifecycle


def _gated(admission: str = QUOTA) -> PodView:
    view = pod_view(_pod_dict())
    assert view is not None
    return dataclasses.replace(view, owner_uid=UID, admission=admission)


def _started(**kw: Any) -> tuple[Observation, Plan]:
    obs = _obs(job_spec(queueName="small"), {}, **kw)
    plan = decide(obs)
    assert plan.state == State.QUEUED
    return obs, plan


def test_a_gated_run_pod_is_awaiting_admission_with_kueues_words_not_unschedulable() -> None:
    obs, plan = _started()
    seen = with_status(obs, plan.status, pods=[_gated()])
    plan = decide(seen)
    assert (plan.state, plan.status.reason) == (State.QUEUED, Reason.AWAITING_ADMISSION)
    assert plan.status.message == (
        f"pod {JOB}-1 waits for Kueue to admit it (queue small): {QUOTA}"
    )
    assert plan.requeue_after == kueue.ADMISSION_RECHECK_SECONDS
    undecided = decide(with_status(seen, plan.status, pods=[_gated(kueue.NO_WORKLOAD)]))
    assert undecided.requeue_after == kueue.UNDECIDED_RECHECK_SECONDS
    assert plan.changed
    # The same words again: nothing to write.
    again = decide(with_status(seen, plan.status))
    assert not again.changed
    # Kueue's words changed: one write.
    moved = decide(with_status(seen, plan.status, pods=[_gated("another message")]))
    assert moved.changed
    assert (moved.status.message or "").endswith(": another message")


def test_an_admitted_pod_runs() -> None:
    obs, plan = _started()
    gated = with_status(obs, plan.status, pods=[_gated()])
    plan = decide(gated)
    plan = decide(with_status(gated, plan.status, pods=[running()]))
    assert (plan.state, plan.status.reason) == (State.RUNNING, Reason.APP_RUNNING)


def test_a_pod_stopped_by_kueue_is_requeued_without_cost() -> None:
    obs, plan = _started()
    run = with_status(obs, plan.status, pods=[running()])
    plan = decide(run)
    assert plan.state == State.RUNNING
    stopped = dataclasses.replace(
        running(),
        deleting=True,
        stopped="Preempted: Preempted to accommodate a workload (UID: w2)",
    )
    plan = decide(with_status(run, plan.status, pods=[stopped], pvcs={f"{JOB}-1"}))
    assert (plan.state, plan.status.reason) == (State.QUEUED, Reason.PREEMPTED)
    assert plan.status.attempt == 2
    assert plan.status.retries is None or plan.status.retries.infra_failures == 0
    assert "not counted against retry.infraFailures" in (plan.status.message or "")
    created = [(a.kind, a.name) for a in plan.actions if isinstance(a, CreateObject)]
    assert ("Pod", f"{JOB}-2") in created
    deleted = [(a.kind, a.name) for a in plan.actions if isinstance(a, DeleteObject)]
    assert ("PersistentVolumeClaim", f"{JOB}-1") in deleted
    record = next(r for r in plan.status.attempts if r.attempt == 1)
    assert record.outcome == Reason.PREEMPTED
    assert any(e.type == "Warning" and e.reason == Reason.PREEMPTED for e in plan.events)
    # Its new pod is queued again in the same queue.
    pod = next(a.manifest for a in plan.actions if isinstance(a, CreateObject) and a.kind == "Pod")
    assert pod["metadata"]["labels"][names.LABEL_KUEUE_QUEUE] == "small"


def test_a_pod_that_succeeded_is_not_preempted() -> None:
    obs, plan = _started()
    done = dataclasses.replace(
        running(),
        phase="Succeeded",
        stopped="Preempted: late",
        main=container("app", "terminated", exit_code=0, started_at=NOW, finished_at=NOW),
    )
    plan = decide(with_status(obs, plan.status, pods=[done]))
    assert plan.status.reason != Reason.PREEMPTED


def _mpijob(suspended: bool, *conditions: tuple[str, str]) -> MPIJobView:
    return MPIJobView(
        name=f"{JOB}-1",
        attempt=1,
        uid="mpi-uid",
        owner_uid=UID,
        created_at=NOW,
        workers=2,
        conditions={t: MPICondition("True", r) for t, r in conditions},
        launcher_uid="launcher-uid",
        queue="small",
        suspended=suspended,
        admission=QUOTA,
    )


def test_a_suspended_queued_mpijob_awaits_admission_and_a_resuspended_one_is_no_failure() -> None:
    app = app_view(app_spec(runtime=MPI_APP))
    obs, plan = _started(app=app)
    held = dataclasses.replace(with_status(obs, plan.status), mpijobs=(_mpijob(True),))
    plan = decide(held)
    assert (plan.state, plan.status.reason) == (State.QUEUED, Reason.AWAITING_ADMISSION)
    assert plan.status.message == (
        f"MPIJob {JOB}-1 waits for Kueue to admit it (queue small): {QUOTA}"
    )
    # Preempted while running: Kueue suspends it again, its worker pods go.
    worker = PodView(
        name=f"{JOB}-1-worker-0",
        attempt=1,
        role="worker",
        phase="Running",
        deleting=True,
        scheduled=True,
        owner_uid="mpi-uid",
        created_at=NOW,
        main=container("worker", "running", started_at=NOW),
    )
    again = dataclasses.replace(
        with_status(held, plan.status),
        mpijobs=(_mpijob(True, ("Suspended", "MPIJobSuspended")),),
        pods=(worker,),
    )
    plan = decide(again)
    assert (plan.state, plan.status.reason) == (State.QUEUED, Reason.AWAITING_ADMISSION)
    assert plan.status.retries is None or plan.status.retries.infra_failures == 0
    assert not [a for a in plan.actions if isinstance(a, DeleteObject)]


def test_mpijob_view_reads_queue_and_suspension() -> None:
    obj = {
        "metadata": {
            "name": f"{JOB}-1",
            "labels": {names.LABEL_ATTEMPT: "1", names.LABEL_KUEUE_QUEUE: "small"},
        },
        "spec": {"runPolicy": {"suspend": True}, "mpiReplicaSpecs": {"Worker": {"replicas": 2}}},
    }
    view = mpijob_view(obj)
    assert view is not None
    assert (view.queue, view.suspended, view.awaiting_admission) == ("small", True, True)
    obj["spec"]["runPolicy"]["suspend"] = False
    view = mpijob_view(obj)
    assert view is not None
    assert not view.awaiting_admission
