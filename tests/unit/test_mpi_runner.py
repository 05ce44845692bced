"""The MPI runner: what it reads from the MPIJob and the launcher and worker pods the MPI
Operator made (every cause, table by table), whose pods those are, and the lifecycle of an MPI
Job (the builder's tests: test_mpi_job.py)."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Any

import pytest

from ferry.api import names
from ferry.api.job import JobStatus, State
from ferry.config import OperatorConfig
from ferry.decisions import builders, mpi_job
from ferry.decisions.expected import run_pod_looks_lost
from ferry.decisions.mpiview import MPICondition, MPIJobView, mpijob_view
from ferry.decisions.observation import ContainerView, Observation, PodView, owned
from ferry.decisions.plan import CreateObject, DeleteObject, Plan
from ferry.runners import mpi

from .factories import (
    CONFIG,
    JOB,
    NOW,
    UID,
    app_dict,
    app_spec,
    app_view,
    at,
    container,
    decide,
    job_spec,
    job_view,
    observe,
    with_status,
)

pytestmark = pytest.mark.unit

MPI_UID = "mpijob-uid-1"
LAUNCHER_UID = "launcher-job-uid-1"
MPI_APP = {"type": "MPI", "mpi": {"workers": 2, "slotsPerWorker": 4}}
META = builders.JobMeta(JOB, "bridge", UID)
#: When the MPI Operator made the launcher (after the workers, made at NOW).
LAUNCHED = NOW + timedelta(seconds=5)


def build(config: OperatorConfig = CONFIG, **app: Any) -> dict[str, Any]:
    spec = app_spec(**{"runtime": MPI_APP, **app})
    return mpi_job.mpijob(META, spec, job_spec(), {"steps": 5}, 1, config)


def dig(obj: Any, path: str) -> Any:
    for part in path.split("."):
        obj = obj[int(part)] if isinstance(obj, list) else obj[part]
    return obj


# --------------------------------------------------------------------------- reading a run


def mpijob(
    attempt: int = 1,
    *conditions: tuple[str, str, str],
    deleting: bool = False,
    owner: str = UID,
    uid: str = MPI_UID,
    launcher_uid: str = LAUNCHER_UID,
) -> MPIJobView:
    return MPIJobView(
        name=f"{JOB}-{attempt}",
        attempt=attempt,
        uid=uid,
        owner_uid=owner,
        deleting=deleting,
        created_at=NOW,
        workers=2,
        conditions={t: MPICondition("True", r, m) for t, r, m in conditions},
        launcher_uid=launcher_uid,
    )


def launcher(
    main: ContainerView | None = None,
    *,
    phase: str = "Running",
    reason: str = "",
    init_code: int = 0,
    created: datetime = LAUNCHED,
    attempt: int = 1,
) -> PodView:
    return PodView(
        name=f"{JOB}-{attempt}-launcher-x7k2p",
        attempt=attempt,
        role="run",
        phase=phase,  # type: ignore[arg-type]
        reason=reason,
        scheduled=True,
        owner_uid=LAUNCHER_UID,
        created_at=created,
        init=(
            container("ferry-setup", "terminated", exit_code=0),
            container("stage-model", "terminated", exit_code=init_code, message="404 Not Found"),
        ),
        main=main or container("app", "running", started_at=at(10)),
    )


def worker(
    index: int = 0,
    *,
    phase: str = "Running",
    reason: str = "",
    disruption: str = "",
    deleting: bool = False,
    scheduled: bool = True,
    schedule_message: str = "",
    main: ContainerView | None = None,
    created: datetime = NOW,
    attempt: int = 1,
) -> PodView:
    return PodView(
        name=f"{JOB}-{attempt}-worker-{index}",
        attempt=attempt,
        role="worker",
        phase=phase,  # type: ignore[arg-type]
        reason=reason,
        disruption=disruption,
        deleting=deleting,
        scheduled=scheduled,
        schedule_message=schedule_message,
        owner_uid=MPI_UID,
        created_at=created,
        main=main or container("worker", "running", started_at=at(1)),
    )


def ended(code: int) -> ContainerView:
    return container("app", "terminated", exit_code=code, started_at=at(10), finished_at=at(100))


WORKERS = (worker(0), worker(1))
FAILED_EVICT = ("Failed", "MPIJobEvict", "1/2 workers are evicted")


@pytest.mark.parametrize(
    ("job", "pods", "status", "needle"),
    [
        # Waiting for the MPI Operator and the scheduler.
        (mpijob(), (), "pending", "has not taken it up"),
        (mpijob(1, ("Created", "", "")), WORKERS, "pending", "2/2 worker(s) running"),
        (
            mpijob(1, ("Created", "", "")),
            (worker(0, phase="Pending", scheduled=False, schedule_message="0/1 nodes"),),
            "pending",
            "0/1 nodes",
        ),
        (
            mpijob(1, ("Created", "", "")),
            (
                worker(
                    0,
                    phase="Pending",
                    main=container("worker", "waiting", reason="ErrImageNeverPull"),
                ),
            ),
            "blocked",
            "ErrImageNeverPull",
        ),
        # The launcher: staging, running, ended.
        (mpijob(), (*WORKERS, launcher(container("app", "waiting"))), "staging", ""),
        (
            mpijob(),
            (*WORKERS, launcher(phase="Failed", init_code=2, main=container("app", "waiting"))),
            "stage-failed",
            "404 Not Found",
        ),
        (mpijob(1, ("Running", "", "")), (*WORKERS, launcher()), "running", ""),
        (mpijob(), (*WORKERS, launcher(ended(0), phase="Succeeded")), "succeeded", ""),
        # Success stands while the MPI Operator deletes the workers (cleanPodPolicy).
        (
            mpijob(1, ("Succeeded", "", "")),
            (worker(0, deleting=True), launcher(ended(0), phase="Succeeded")),
            "succeeded",
            "",
        ),
        (mpijob(1, ("Succeeded", "", "")), (), "succeeded", ""),
        # The app's failure: the launcher's exit code, even while workers are cleaned up.
        (mpijob(), (*WORKERS, launcher(ended(3), phase="Failed")), "app-failed", ""),
        (
            mpijob(1, ("Failed", "BackoffLimitExceeded", "")),
            (worker(0, deleting=True), launcher(ended(3), phase="Failed")),
            "app-failed",
            "",
        ),
        # The platform's failures.
        (
            mpijob(),
            (worker(0, phase="Failed", reason="Evicted"), worker(1), launcher()),
            "infra-failed",
            "worker frame-001-1-worker-0 failed: Evicted",
        ),
        (
            mpijob(),
            (worker(0, disruption="DeletionByTaintManager"), worker(1), launcher()),
            "infra-failed",
            "DeletionByTaintManager",
        ),
        (
            mpijob(),
            (worker(0, deleting=True), worker(1), launcher()),
            "infra-failed",
            "worker frame-001-1-worker-0 was deleted",
        ),
        (
            mpijob(),
            (worker(0, created=at(60)), worker(1), launcher(ended(1), phase="Failed")),
            "infra-failed",
            "worker frame-001-1-worker-0 was replaced",
        ),
        # A worker deleted, and the launcher failed for it before the MPI Operator judged:
        # the MPI Operator deletes workers only once the MPIJob is Failed or Succeeded.
        (
            mpijob(),
            (worker(0, deleting=True), worker(1), launcher(ended(1), phase="Failed")),
            "infra-failed",
            "worker frame-001-1-worker-0 was deleted",
        ),
        # A worker gone without a trace (force-deleted, not made again yet).
        (
            mpijob(),
            (worker(1), launcher()),
            "infra-failed",
            "1 of 2 worker(s) of frame-001-1 are gone",
        ),
        (
            mpijob(1, FAILED_EVICT),
            (worker(1), launcher()),
            "infra-failed",
            "1/2 workers are evicted",
        ),
        (
            mpijob(),
            (
                *WORKERS,
                launcher(phase="Failed", reason="Evicted", main=container("app", "running")),
            ),
            "infra-failed",
            "launcher: pod frame-001-1-launcher-x7k2p failed: Evicted",
        ),
        (
            mpijob(1, ("Failed", "BackoffLimitExceeded", "Job has reached the backoff limit")),
            WORKERS,
            "infra-failed",
            "failed without a launcher pod: BackoffLimitExceeded",
        ),
        # A worker's setup failed: nothing can run.
        (
            mpijob(1, ("Created", "", "")),
            (
                dataclasses.replace(
                    worker(0, phase="Failed", main=container("worker", "waiting")),
                    init=(
                        container(
                            "ferry-setup", "terminated", exit_code=1, message="cannot create"
                        ),
                    ),
                ),
            ),
            "stage-failed",
            "setup: cannot create",
        ),
        # Being deleted (a stop, or someone else's delete).
        (mpijob(deleting=True), (*WORKERS, launcher()), "terminating", "being deleted"),
    ],
)
def test_the_run_view_of_an_mpijob(
    job: MPIJobView, pods: tuple[PodView, ...], status: str, needle: str
) -> None:
    lead, workers = mpi.made_by(job, pods)
    view = mpi.read(job, lead, workers, job_spec(), at(120), CONFIG.pod_start_grace_seconds)
    assert view.status == status, view
    assert view.name == f"{JOB}-1"
    assert needle in view.message
    if status == "app-failed":
        assert view.exit_code == 3
    if status == "succeeded":
        assert view.exit_code == 0


def test_an_mpijob_holds_resources_while_any_of_its_pods_runs() -> None:
    done = launcher(ended(0), phase="Succeeded")
    assert mpi._live(mpijob(), done, [worker(0)])
    assert not mpi._live(mpijob(1, ("Succeeded", "", "")), done, [])
    assert mpi._live(mpijob(), None, [])  # not taken up yet: it may still start pods
    assert not mpi._live(mpijob(1, FAILED_EVICT), None, [])


# --------------------------------------------------------------------------- ownership


def test_mpijob_view_parses_the_apiserver_object() -> None:
    obj = {
        "metadata": {
            "name": f"{JOB}-2",
            "uid": MPI_UID,
            "labels": {names.LABEL_ATTEMPT: "2"},
            "ownerReferences": [{"uid": UID, "controller": True}],
            "deletionTimestamp": "2026-03-01T12:00:00Z",
        },
        "spec": {"mpiReplicaSpecs": {"Worker": {"replicas": 3}}},
        "status": {
            "conditions": [{"type": "Running", "status": "True", "reason": "MPIJobRunning"}]
        },
    }
    view = mpijob_view(obj, LAUNCHER_UID)
    assert view is not None
    assert (view.attempt, view.owner_uid, view.deleting, view.workers) == (2, UID, True, 3)
    assert view.holds("Running") == MPICondition("True", "MPIJobRunning", "")
    assert not view.finished
    assert mpijob_view({"metadata": {"name": "x"}}) is None


def _obs(*mpijobs: MPIJobView, pods: tuple[PodView, ...] = ()) -> Observation:
    return dataclasses.replace(observe(job_view()), mpijobs=mpijobs, pods=pods)


def test_only_the_jobs_own_mpijobs_and_the_pods_they_made_are_seen() -> None:
    foreign = mpijob(2, owner="someone-else", uid="foreign-mpi", launcher_uid="foreign-l")
    stray_worker = dataclasses.replace(worker(0, attempt=2), owner_uid="foreign-mpi")
    kept = (worker(0), launcher())
    obs = owned(_obs(mpijob(), foreign, pods=(*kept, stray_worker)))
    assert obs.mpijobs == (mpijob(),)
    assert obs.pods == kept
    # Without its launcher Job known, the launcher pod is nobody's.
    obs = owned(_obs(mpijob(launcher_uid=""), pods=kept))
    assert obs.pods == (worker(0),)


def test_an_mpi_jobs_run_object_is_never_looked_for_among_pods() -> None:
    status = JobStatus.model_validate(
        {
            "state": "Running",
            "attempt": 1,
            "app": {
                "name": "solver",
                "version": "1",
                "image": "x",
                "specHash": "0",
                "spec": app_dict(runtime=MPI_APP),
            },
        }
    )
    assert not run_pod_looks_lost(job_view(status=status), [])


# --------------------------------------------------------------------------- the lifecycle


def _start() -> tuple[Observation, Plan]:
    obs = observe(job_view(), app=app_view(app_spec(runtime=MPI_APP, maxRunSeconds=600)))
    plan = decide(obs)
    assert plan.state == State.QUEUED
    kinds = [(a.kind, a.name) for a in plan.actions if isinstance(a, CreateObject)]
    assert kinds == [("PersistentVolumeClaim", f"{JOB}-1"), ("MPIJob", f"{JOB}-1")]
    assert "created MPIJob" in (plan.status.message or "")
    return obs, plan


def _deletes(plan: Plan) -> list[tuple[str, str]]:
    return [(a.kind, a.name) for a in plan.actions if isinstance(a, DeleteObject)]


def test_an_mpijob_deleted_under_the_job_is_an_infrastructure_retry() -> None:
    obs, plan = _start()
    running = with_status(
        obs, plan.status, mpijobs=(mpijob(1, ("Running", "", "")),), pods=(*WORKERS, launcher())
    )
    plan = decide(running)
    assert (plan.state, plan.status.reason) == (State.RUNNING, "AppRunning")
    assert "MPIJob frame-001-1" in (plan.status.message or "")
    plan = decide(with_status(running, plan.status, mpijobs=(), pods=()))
    assert (plan.state, plan.status.reason) == (State.RETRYING, "InfraFailure")
    assert "MPIJob frame-001-1 disappeared" in (plan.status.message or "")
    assert plan.requeue_after == pytest.approx(10)
    # After the backoff between attempts, attempt 2: its workspace and MPIJob.
    later = with_status(running, plan.status, mpijobs=(), pods=(), now=at(10))
    plan = decide(later)
    assert plan.status.attempt == 2
    created = [a.name for a in plan.actions if isinstance(a, CreateObject)]
    assert created == [f"{JOB}-2", f"{JOB}-2"]


def test_a_deleted_worker_stops_the_mpijob_and_retries() -> None:
    obs, plan = _start()
    seen = with_status(
        obs,
        plan.status,
        mpijobs=(mpijob(),),
        pods=(worker(0, deleting=True), worker(1), launcher()),
    )
    plan = decide(seen)
    assert (plan.state, plan.status.reason) == (State.RETRYING, "InfraFailure")
    assert ("MPIJob", f"{JOB}-1") in _deletes(plan)
    assert plan.status.retries is not None
    assert plan.status.retries.infra_failures == 1


def test_the_launchers_exit_code_is_the_apps_failure() -> None:
    obs, plan = _start()
    seen = with_status(
        obs, plan.status, mpijobs=(mpijob(),), pods=(*WORKERS, launcher(ended(3), phase="Failed"))
    )
    plan = decide(seen)
    assert plan.state == State.ARCHIVING
    assert plan.status.exit_code == 3
    assert plan.status.run_outcome is not None
    assert plan.status.run_outcome.value == "AppFailed"
    # The workers still run: the MPIJob is stopped before the archive pod reads the workspace.
    assert _deletes(plan) == [("MPIJob", f"{JOB}-1")]


def test_cancel_deletes_the_mpijob_and_waits_for_it_to_go() -> None:
    obs, plan = _start()
    cancel = job_spec(cancel=True)
    standing = with_status(
        obs, plan.status, spec=cancel, mpijobs=(mpijob(),), pods=(*WORKERS, launcher())
    )
    plan = decide(standing)
    assert plan.state == State.CANCELLING
    assert _deletes(plan) == [("MPIJob", f"{JOB}-1")]  # its pods go with it
    going = with_status(standing, plan.status, mpijobs=(mpijob(deleting=True),))
    plan = decide(going)
    assert plan.state == State.CANCELLING
    assert _deletes(plan) == []
    plan = decide(with_status(going, plan.status, mpijobs=(), pods=()))
    assert plan.state == State.CANCELLED
    assert ("MPIJob", f"{JOB}-1") not in _deletes(plan)


def test_suspend_deletes_the_mpijob_and_resume_starts_the_next_attempt() -> None:
    obs, plan = _start()
    running = with_status(obs, plan.status, mpijobs=(mpijob(),), pods=(*WORKERS, launcher()))
    plan = decide(with_status(running, plan.status, spec=job_spec(suspend=True)))
    assert plan.state == State.SUSPENDED
    assert _deletes(plan) == [("MPIJob", f"{JOB}-1")]
    gone = with_status(running, plan.status, spec=job_spec(suspend=False), mpijobs=(), pods=())
    plan = decide(gone)
    assert (plan.state, plan.status.reason, plan.status.attempt) == (State.QUEUED, "Resumed", 2)


def test_max_run_seconds_stops_the_mpijob() -> None:
    obs, plan = _start()
    running = with_status(obs, plan.status, mpijobs=(mpijob(),), pods=(*WORKERS, launcher()))
    plan = decide(running)
    assert plan.state == State.RUNNING
    plan = decide(with_status(running, plan.status, now=NOW + timedelta(seconds=700)))
    assert plan.status.run_outcome is not None
    assert plan.status.run_outcome.value == "TimedOut"
    assert _deletes(plan) == [("MPIJob", f"{JOB}-1")]


def test_a_terminal_job_releases_its_mpijob_not_the_pods_it_made() -> None:
    obs, plan = _start()
    status = plan.status.model_copy(update={"state": State.FAILED, "reason": "AppFailed"})
    plan = decide(
        with_status(
            obs, status, mpijobs=(mpijob(),), pods=(*WORKERS, launcher()), pvcs=[f"{JOB}-1"]
        )
    )
    assert _deletes(plan) == [("PersistentVolumeClaim", f"{JOB}-1"), ("MPIJob", f"{JOB}-1")]
