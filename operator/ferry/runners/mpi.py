"""The MPI runner: an attempt is one workspace PVC and one Kubeflow MPIJob.

Owns: the children of an MPI attempt (the workspace, shared by the launcher and the workers,
and the MPIJob built by `ferry.decisions.mpi_job`), reading the MPIJob with the launcher and
worker pods the MPI Operator made for it into a `RunView`, and stopping it (deleting the
MPIJob, which takes its pods with it). The causes are kept apart as for a pod: the launcher's
app exiting non-zero is the app's failure, with its exit code; a worker evicted, disrupted
(node lost, preempted), deleted or replaced while the launcher runs, the MPI Operator's own
eviction verdict, or a launcher ended without an exit code is the platform's. An MPIJob queued
in Kueue and held suspended (before admission, or again after a preemption) waits
(AwaitingAdmission), whatever its pods do meanwhile. Must not:
judge the attempt (the lifecycle does from the RunView) or do I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from ferry.api import names
from ferry.api.job import JobSpec, S3Source
from ferry.api.reasons import Reason
from ferry.decisions import builders, kueue, mpi_job
from ferry.decisions.context import Ctx
from ferry.decisions.mpiview import MPIJobView
from ferry.decisions.observation import PodView
from ferry.decisions.plan import Action, DeleteObject
from ferry.decisions.runner import Manifest, RunView
from ferry.runners import pod as pod_runner

#: The MPI Operator's reason for an MPIJob failed because workers were evicted.
MPI_EVICTED = "MPIJobEvict"


class MPIRunner:
    """Runs an attempt as an MPIJob (`<job>-<attempt>`) on a workspace PVC of the same name."""

    runtime = "MPI"
    noun = "MPIJob"

    def run_name(self, job: str, attempt: int) -> str:
        return names.mpijob_name(job, attempt)

    def children(
        self, ctx: Ctx, attempt: int, resolved: Mapping[str, S3Source]
    ) -> tuple[Manifest, ...]:
        assert ctx.app is not None
        job = mpi_job.mpijob(ctx.meta, ctx.app, ctx.spec, ctx.params, attempt, ctx.config, resolved)
        if not ctx.spec.uses_workspace:
            return (job,)
        pvc = builders.workspace_pvc(ctx.meta, ctx.spec, attempt, ctx.config, shared=True)
        return (pvc, job)

    def view(self, ctx: Ctx, attempt: int) -> RunView | None:
        job = next((m for m in ctx.obs.mpijobs if m.attempt == attempt), None)
        if job is None:
            return None
        launcher, workers = made_by(job, ctx.obs.pods)
        return read(job, launcher, workers, ctx.spec, ctx.now, ctx.config.pod_start_grace_seconds)

    def live(self, ctx: Ctx, attempt: int | None) -> tuple[str, ...]:
        return tuple(
            m.name
            for m in ctx.obs.mpijobs
            if (attempt is None or m.attempt == attempt) and _live(m, *made_by(m, ctx.obs.pods))
        )

    def stop(self, ctx: Ctx, attempt: int | None) -> tuple[Action, ...]:
        return tuple(
            DeleteObject("MPIJob", m.name, m.uid)
            for m in ctx.obs.mpijobs
            if (attempt is None or m.attempt == attempt)
            and not m.deleting
            and _live(m, *made_by(m, ctx.obs.pods))
        )


def made_by(job: MPIJobView, pods: Sequence[PodView]) -> tuple[PodView | None, list[PodView]]:
    """The MPIJob's launcher pod (the newest its launcher Job made) and its worker pods."""
    launchers = [
        p
        for p in pods
        if job.launcher_uid and p.owner_uid == job.launcher_uid and p.role == names.ROLE_RUN
    ]
    launchers.sort(key=lambda p: (p.created_at is not None, p.created_at or datetime.min))
    workers = [p for p in pods if p.owner_uid == job.uid and p.role == names.ROLE_WORKER]
    return (launchers[-1] if launchers else None), workers


def _live(job: MPIJobView, launcher: PodView | None, workers: Sequence[PodView]) -> bool:
    """Whether the MPIJob still holds, or may still hold, resources."""
    if any(w.live for w in workers):
        return True
    if launcher is not None:
        return launcher.live
    return not job.finished


def read(
    job: MPIJobView,
    launcher: PodView | None,
    workers: Sequence[PodView],
    spec: JobSpec,
    now: datetime,
    grace: float,
) -> RunView:
    """The MPIJob's progress: success first (the MPI Operator then deletes the workers), then
    in the order of `RunStatus`."""
    base = RunView(name=job.name, status="staging", live=_live(job, launcher, workers))
    own = (
        replace(pod_runner.read(launcher, spec, now, grace), name=job.name, live=base.live)
        if launcher is not None
        else None
    )
    if own is not None and own.status == "succeeded":
        return own
    if own is None and job.holds("Succeeded") is not None:
        return replace(base, status="succeeded", exit_code=0)
    if job.deleting:
        return replace(
            base, status="terminating", deleting=True, message=f"MPIJob {job.name} is being deleted"
        )
    if job.awaiting_admission and not job.finished:
        # Held by Kueue: not admitted yet, or suspended again on preemption (its pods going
        # is then Kueue's doing, not a failure; it runs again once admitted).
        return replace(
            base,
            status="pending",
            reason=Reason.AWAITING_ADMISSION,
            message=kueue.waiting("MPIJob", job.name, job.queue, job.admission),
        )
    infra = _infra(job, launcher, workers, own)
    if infra is not None:
        return replace(own or base, status="infra-failed", message=infra)
    if own is not None and own.status in ("stage-failed", "terminating", "blocked"):
        return own
    views = [(w, pod_runner.read(w, spec, now, grace)) for w in workers]
    setup_failed = next((v for _, v in views if v.status == "stage-failed"), None)
    if setup_failed is not None:
        return replace(setup_failed, name=job.name, live=base.live)
    blocked = next((v for _, v in views if v.status == "blocked"), None)
    if blocked is not None:
        return replace(base, status="blocked", reason=blocked.reason, message=blocked.message)
    if own is None:
        pending = next((v for _, v in views if v.status == "pending"), None)
        if pending is not None:
            return replace(base, status="pending", reason=pending.reason, message=pending.message)
        running = sum(1 for _, v in views if v.status == "running")
        waiting = (
            f"waiting for the MPI Operator to start its launcher ({running}/{len(workers)} "
            "worker(s) running)"
            if job.conditions
            else "the MPI Operator has not taken it up yet"
        )
        return replace(
            base,
            status="pending",
            reason=Reason.POD_PENDING,
            message=f"MPIJob {job.name}: {waiting}",
        )
    return own


def _infra(
    job: MPIJobView,
    launcher: PodView | None,
    workers: Sequence[PodView],
    own: RunView | None,
) -> str | None:
    """Why the platform, not the app, ended (or is ending) the run, if it did."""
    evicted = job.holds("Failed")
    if evicted is not None and evicted.reason == MPI_EVICTED:
        return f"MPIJob {job.name}: {evicted.message or 'workers were evicted'}"
    for worker in workers:
        if worker.disruption:
            return (
                f"worker {worker.name} was disrupted ({worker.disruption}) {worker.message}".strip()
            )
        if worker.phase == "Failed" and worker.reason:
            return f"worker {worker.name} failed: {worker.reason} {worker.message}".strip()
        if worker.deleting and not job.finished:
            # Once the MPIJob is judged, the MPI Operator deletes its running workers itself.
            return f"worker {worker.name} was deleted while the run went on"
        if _replaced(worker, launcher):
            return f"worker {worker.name} was replaced while the run went on"
    if launcher is not None and not job.finished and len(workers) < job.workers:
        # The launcher is made once every worker is Ready: one of them is gone since.
        return f"{job.workers - len(workers)} of {job.workers} worker(s) of {job.name} are gone"
    if own is not None and own.status == "infra-failed":
        return f"launcher: {own.message}"
    failed = job.holds("Failed")
    if launcher is None and failed is not None:
        why = f"{failed.reason} {failed.message}".strip()
        return f"MPIJob {job.name} failed without a launcher pod: {why}"
    return None


def _replaced(worker: PodView, launcher: PodView | None) -> bool:
    """A worker made after the launcher: the MPI Operator made it again (it makes every worker
    before the launcher, which waits for them to be Ready), so the first one was lost."""
    if launcher is None or launcher.created_at is None or worker.created_at is None:
        return False
    return worker.created_at > launcher.created_at
