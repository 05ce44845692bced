"""What the lifecycle sees of an MPIJob: the parts of a `kubeflow.org/v2beta1` MPIJob it reads.

Owns: `MPIJobView` (name, attempt, UIDs, deletion, the MPI Operator's conditions, and the UID
of the launcher batch Job the MPI Operator made for it) and the pure parsing of an MPIJob
dictionary, as the apiserver returns it, into one. Must not: fetch anything (the handlers
list the MPIJobs and read their launcher Jobs), or judge the run (`ferry.runners.mpi` does).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ferry.api import names
from ferry.api.common import parse_time


@dataclass(frozen=True)
class MPICondition:
    """One of the MPI Operator's conditions of an MPIJob (Created, Running, Succeeded,
    Failed, Suspended, Restarting)."""

    status: str
    reason: str = ""
    message: str = ""


@dataclass(frozen=True)
class MPIJobView:
    """An MPIJob that names a Job in its labels (the handlers list them by label)."""

    name: str
    attempt: int
    uid: str = ""
    #: The UID of its controller; Ferry's MPIJobs name their Job's.
    owner_uid: str = ""
    deleting: bool = False
    created_at: datetime | None = None
    #: Worker replicas it asks for.
    workers: int = 0
    conditions: Mapping[str, MPICondition] = field(default_factory=dict)
    #: The UID of the batch Job `<name>-launcher`, when it exists and this MPIJob is its
    #: controller (the launcher pod's controller is that Job, not the MPIJob).
    launcher_uid: str = ""
    #: The Kueue LocalQueue it is labelled with (kueue.x-k8s.io/queue-name).
    queue: str = ""
    #: Its run policy says suspend: Kueue holds it until admission (or suspended it again
    #: when it was preempted).
    suspended: bool = False
    #: Kueue's words about its Workload, for a queued MPIJob held suspended (looked up by the
    #: handlers only then).
    admission: str = ""

    @property
    def awaiting_admission(self) -> bool:
        """Queued in Kueue and held suspended: it waits for Kueue's admission."""
        return bool(self.queue) and self.suspended

    def holds(self, type_: str) -> MPICondition | None:
        """The condition `type_` when it is True."""
        cond = self.conditions.get(type_)
        return cond if cond is not None and cond.status == "True" else None

    @property
    def finished(self) -> bool:
        """The MPI Operator has judged it: Succeeded or Failed."""
        return self.holds("Succeeded") is not None or self.holds("Failed") is not None


def mpijob_view(obj: Mapping[str, Any], launcher_uid: str = "") -> MPIJobView | None:
    """Parse an MPIJob; None for one without Ferry's attempt label."""
    meta = obj.get("metadata") or {}
    labels = meta.get("labels") or {}
    try:
        attempt = int(labels.get(names.LABEL_ATTEMPT, ""))
    except ValueError:
        return None
    owner = next(
        (
            str(r.get("uid") or "")
            for r in meta.get("ownerReferences") or []
            if isinstance(r, Mapping) and r.get("controller")
        ),
        "",
    )
    conditions = {
        str(c.get("type")): MPICondition(
            status=str(c.get("status") or ""),
            reason=str(c.get("reason") or ""),
            message=str(c.get("message") or ""),
        )
        for c in (obj.get("status") or {}).get("conditions") or []
        if isinstance(c, Mapping)
    }
    spec = obj.get("spec") or {}
    worker_spec = (spec.get("mpiReplicaSpecs") or {}).get("Worker") or {}
    run_policy = spec.get("runPolicy") or {}
    try:
        workers = int(worker_spec.get("replicas") or 0)
    except (TypeError, ValueError):
        workers = 0
    return MPIJobView(
        name=str(meta.get("name", "")),
        attempt=attempt,
        uid=str(meta.get("uid") or ""),
        owner_uid=owner,
        deleting=bool(meta.get("deletionTimestamp")),
        created_at=parse_time(meta.get("creationTimestamp")),
        workers=workers,
        conditions=conditions,
        launcher_uid=launcher_uid,
        queue=str(labels.get(names.LABEL_KUEUE_QUEUE) or ""),
        suspended=run_policy.get("suspend") is True,
    )
