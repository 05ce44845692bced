"""What the lifecycle decision sees: the Job, its App, its parents, its pods (and MPIJobs),
and the time.

Owns: the immutable observation value types and the pure parsing of pod dictionaries (as
the apiserver returns them) into `PodView`s, and of a pod's Warning Events into
`PodWarning`s. Must not: fetch anything; handlers gather the objects and hand them over.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from ferry.api import names
from ferry.api.app import AppSpec
from ferry.api.common import S3Location, parse_time
from ferry.api.job import JobSpec, JobStatus, State
from ferry.config import OperatorConfig
from ferry.decisions.mpiview import MPIJobView

Role = Literal["run", "archive", "worker"]
Phase = Literal["Pending", "Running", "Succeeded", "Failed", "Unknown"]


@dataclass(frozen=True)
class ContainerView:
    name: str
    state: Literal["waiting", "running", "terminated"] | None = None
    exit_code: int | None = None
    reason: str = ""
    message: str = ""
    started_at: datetime | None = None
    finished_at: datetime | None = None
    restart_count: int = 0
    #: The image as named, and the image the node ran (a digest), once known.
    image: str = ""
    image_id: str = ""


@dataclass(frozen=True)
class PodWarning:
    """A Warning Event about a pod (the kubelet's FailedMount, ...)."""

    reason: str
    message: str
    last_seen: datetime | None = None


@dataclass(frozen=True)
class PodView:
    """The parts of a pod the lifecycle cares about."""

    name: str
    attempt: int
    role: Role
    phase: Phase = "Pending"
    uid: str = ""
    deleting: bool = False
    #: Its deletionTimestamp: when its deletion's grace period ends (the kubelet should have
    #: stopped it by then).
    deletion_time: datetime | None = None
    scheduled: bool = False
    #: When the scheduler bound it (the PodScheduled condition's lastTransitionTime).
    scheduled_at: datetime | None = None
    schedule_message: str = ""
    reason: str = ""
    message: str = ""
    disruption: str = ""
    init: tuple[ContainerView, ...] = ()
    main: ContainerView | None = None
    archive_try: int = 0
    #: The node it is bound to.
    node_name: str = ""
    #: The UID of its controller (the controller ownerReference); Ferry's children name their
    #: Job's. Empty for a pod without a controller.
    owner_uid: str = ""
    #: When it was made (an MPI worker made after its launcher is a replacement).
    created_at: datetime | None = None
    #: Warning Events about the pod, newest first: looked up by the handlers only for a pod
    #: slow to start (`slow_to_start`); never part of the pod itself.
    warnings: tuple[PodWarning, ...] = ()
    #: The Kueue LocalQueue it is labelled with (kueue.x-k8s.io/queue-name).
    queue: str = ""
    #: Held by Kueue's scheduling gate: it waits for its Workload's admission.
    gated: bool = False
    #: Kueue stopped it (its TerminationTarget condition: reason and message): preempted,
    #: its Workload evicted or deleted.
    stopped: str = ""
    #: Kueue's words about its Workload, for a gated pod: looked up by the handlers only then
    #: (`ferry.decisions.kueue.admission_words`); never part of the pod itself.
    admission: str = ""

    #: Every container has terminated and none restarts (restartPolicy Never): it has
    #: stopped, though its phase may still say Running (a kubelet writes the containers'
    #: states a moment before the phase).
    exited: bool = False

    @property
    def live(self) -> bool:
        """Not yet ended: it holds, or may still hold, resources. A pod whose containers have
        all exited for good has ended, whatever its phase says yet."""
        return self.phase not in ("Succeeded", "Failed") and not self.exited

    @property
    def started(self) -> bool:
        """Whether any of its containers ever ran."""
        containers = (*self.init, *((self.main,) if self.main is not None else ()))
        return any(c.state in ("running", "terminated") or c.restart_count for c in containers)


def start_deadline(pod: PodView, grace: float) -> datetime | None:
    """When a scheduled pod none of whose containers has run counts as slow to start (the
    kubelet cannot mount a volume, make its sandbox, ...: the reason is only in its Events);
    None when that does not apply to it."""
    if not pod.scheduled or pod.scheduled_at is None or not pod.live or pod.deleting:
        return None
    if pod.started:
        return None
    return pod.scheduled_at + timedelta(seconds=grace)


def slow_to_start(pod: PodView, now: datetime, grace: float) -> bool:
    deadline = start_deadline(pod, grace)
    return deadline is not None and now >= deadline


def stuck_terminating(pod: PodView, now: datetime, grace: float) -> bool:
    """Still standing `grace` seconds past the end of its deletion's grace period: its kubelet
    is not stopping it (a lost node). Ferry stops waiting for it; it never force-deletes."""
    until = terminating_until(pod, grace)
    return until is not None and now >= until


def terminating_until(pod: PodView, grace: float) -> datetime | None:
    """When a pod being deleted counts as stuck Terminating; None when it is not being
    deleted or has ended."""
    if not pod.deleting or not pod.live or pod.deletion_time is None:
        return None
    return pod.deletion_time + timedelta(seconds=grace)


def prompt_change(before: PodView | None, after: PodView | None) -> bool:
    """Whether a change of a pod should be looked at at once. A pod that came or went, ended
    or is being deleted, was disrupted, or whose app (or a staging container, failing)
    ended, is; other changes (scheduled, a container started or waiting, a staging container
    done) are progress that can wait a moment to be recorded together."""
    if before is None or after is None:
        return True
    return _marks(before) != _marks(after)


def _marks(pod: PodView) -> tuple[bool, bool, str, bool, bool, str]:
    main_ended = pod.main is not None and pod.main.state == "terminated"
    staging_failed = any(c.state == "terminated" and c.exit_code != 0 for c in pod.init)
    return (pod.live, pod.deleting, pod.disruption, main_ended, staging_failed, pod.stopped)


@dataclass(frozen=True)
class JobView:
    name: str
    namespace: str
    uid: str
    generation: int
    creation_time: datetime
    spec: JobSpec | None
    status: JobStatus
    spec_error: str = ""
    #: Why the recorded status could not be read; the Job is then left alone (Blocked).
    status_error: str = ""
    deleting: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AppView:
    """The App named by the Job, as found (spec None when it does not parse)."""

    name: str
    spec: AppSpec | None
    spec_hash: str = ""
    error: str = ""


@dataclass(frozen=True)
class ParentView:
    name: str
    state: State | None
    reason: str = ""
    #: Where its last attempt was archived (status.outputs.uri), and the store it used.
    outputs_uri: str = ""
    store: S3Location | None = None
    #: Deleted: what the Job watch last said of it before its deletion (kept a while by the
    #: handlers for its children's sake).
    deleted: bool = False
    #: The parents it waits for, not started yet (empty once it started or ended, except after
    #: failing in a dependency cycle): the edges `dependencies.cycle_through` follows.
    waits_on: tuple[str, ...] = ()


@dataclass(frozen=True)
class Observation:
    """Everything `decide` needs; nothing else influences it."""

    job: JobView
    now: datetime
    config: OperatorConfig
    app: AppView | None = None
    parents: Mapping[str, ParentView | None] = field(default_factory=dict)
    pods: tuple[PodView, ...] = ()
    pvcs: frozenset[str] = frozenset()
    #: The MPIJobs naming the Job in their labels (listed only for an MPI App's Job).
    mpijobs: tuple[MPIJobView, ...] = ()
    mpi_available: bool = True
    #: Objects ("Kind/name") that Ferry went to create for this Job and found made by someone
    #: else (a user's PVC of the workspace's name, a pod of an earlier Job of the same name,
    #: a forgery): never adopted.
    foreign: frozenset[str] = frozenset()
    #: Objects ("Kind/name") the apiserver recently refused to create for this Job, with its
    #: words (a quota, a LimitRange, Pod Security, a webhook).
    refused: Mapping[str, str] = field(default_factory=dict)
    #: A dependency cycle through this Job (its name first and last: a, b, a), as the Job
    #: cache shows its ancestors; empty when there is none.
    cycle: tuple[str, ...] = ()


def owned(obs: Observation) -> Observation:
    """The observation with only the children this Job made and what its MPIJobs made: an
    MPIJob whose controller is not the Job's UID, or a pod whose controller is neither the
    Job, nor one of its MPIJobs, nor the launcher Job of one (left by an earlier Job of the
    same name, or made by someone else with Ferry's labels) is never read, mounted or
    deleted."""
    uid = obs.job.uid
    mpijobs = tuple(m for m in obs.mpijobs if m.owner_uid == uid)
    controllers = {uid} | {m.uid for m in mpijobs} | {m.launcher_uid for m in mpijobs}
    controllers.discard("")
    pods = tuple(p for p in obs.pods if p.owner_uid in controllers)
    if len(pods) == len(obs.pods) and len(mpijobs) == len(obs.mpijobs):
        return obs
    return replace(obs, pods=pods, mpijobs=mpijobs)


def controller_uid(meta: Mapping[str, Any]) -> str:
    """The UID in an object's controller ownerReference; empty when it has none."""
    for ref in meta.get("ownerReferences") or []:
        if isinstance(ref, Mapping) and ref.get("controller"):
            return str(ref.get("uid") or "")
    return ""


def _container(status: Mapping[str, Any]) -> ContainerView:
    state = status.get("state") or {}
    name = str(status.get("name", ""))
    restarts = int(status.get("restartCount") or 0)
    image, image_id = str(status.get("image") or ""), str(status.get("imageID") or "")
    if state.get("terminated"):
        t = state["terminated"]
        return ContainerView(
            name=name,
            state="terminated",
            exit_code=int(t.get("exitCode", 0)),
            reason=str(t.get("reason") or ""),
            message=str(t.get("message") or ""),
            started_at=parse_time(t.get("startedAt")),
            finished_at=parse_time(t.get("finishedAt")),
            restart_count=restarts,
            image=image,
            image_id=image_id,
        )
    if state.get("running"):
        return ContainerView(
            name=name,
            state="running",
            started_at=parse_time(state["running"].get("startedAt")),
            restart_count=restarts,
            image=image,
            image_id=image_id,
        )
    if state.get("waiting") is not None:
        w = state["waiting"] or {}
        return ContainerView(
            name=name,
            state="waiting",
            reason=str(w.get("reason") or ""),
            message=str(w.get("message") or ""),
            restart_count=restarts,
            image=image,
            image_id=image_id,
        )
    return ContainerView(name=name, restart_count=restarts, image=image, image_id=image_id)


def pod_view(pod: Mapping[str, Any]) -> PodView | None:
    """Parse a pod made by Ferry; None for a pod without Ferry's labels."""
    meta = pod.get("metadata") or {}
    labels = meta.get("labels") or {}
    try:
        attempt = int(labels.get(names.LABEL_ATTEMPT, ""))
    except ValueError:
        return None
    role = labels.get(names.LABEL_ROLE)
    if role not in (names.ROLE_RUN, names.ROLE_ARCHIVE, names.ROLE_WORKER):
        return None
    status = pod.get("status") or {}
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    scheduled = conditions.get("PodScheduled", {})
    disruption = conditions.get("DisruptionTarget", {})
    main_name = {
        names.ROLE_RUN: names.APP_CONTAINER,
        names.ROLE_ARCHIVE: names.ARCHIVE_CONTAINER,
        names.ROLE_WORKER: names.WORKER_CONTAINER,
    }[role]
    statuses = {c.get("name"): c for c in status.get("containerStatuses") or []}
    main = _container(statuses[main_name]) if main_name in statuses else None
    init_specs = [c.get("name") for c in (pod.get("spec") or {}).get("initContainers") or []]
    init_statuses = {
        c.get("name"): _container(c) for c in status.get("initContainerStatuses") or []
    }
    init = tuple(init_statuses.get(n) or ContainerView(name=str(n)) for n in init_specs)
    try:
        archive_try = int((meta.get("annotations") or {}).get(names.ANNOTATION_ARCHIVE_TRY, "0"))
    except ValueError:
        archive_try = 0
    raw_phase = str(status.get("phase") or "Pending")
    phase: Phase = "Unknown"
    for known in ("Pending", "Running", "Succeeded", "Failed"):
        if raw_phase == known:
            phase = known
    disrupted = disruption.get("status") == "True"
    bound = scheduled.get("status") == "True"
    spec = pod.get("spec") or {}
    gates = {
        str(g.get("name")) for g in spec.get("schedulingGates") or [] if isinstance(g, Mapping)
    }
    exited = spec.get("restartPolicy") == "Never" and all(
        "terminated" in ((statuses.get(c.get("name")) or {}).get("state") or {})
        for c in spec.get("containers") or [{}]
    )
    stop = conditions.get(names.KUEUE_STOP_CONDITION, {})
    stopped = ""
    if stop.get("status") == "True":
        stop_reason, stop_message = str(stop.get("reason") or "Stopped"), stop.get("message")
        stopped = f"{stop_reason}: {stop_message}" if stop_message else stop_reason
    return PodView(
        name=str(meta.get("name", "")),
        attempt=attempt,
        role=role,
        phase=phase,
        uid=str(meta.get("uid") or ""),
        deleting=bool(meta.get("deletionTimestamp")),
        deletion_time=parse_time(meta.get("deletionTimestamp")),
        scheduled=bound or bool((pod.get("spec") or {}).get("nodeName")),
        scheduled_at=parse_time(scheduled.get("lastTransitionTime")) if bound else None,
        schedule_message=str(scheduled.get("message") or scheduled.get("reason") or ""),
        reason=str(status.get("reason") or ""),
        message=str(status.get("message") or ""),
        disruption=str(disruption.get("reason") or "") if disrupted else "",
        init=init,
        main=main,
        archive_try=archive_try,
        owner_uid=controller_uid(meta),
        created_at=parse_time(meta.get("creationTimestamp")),
        node_name=str(spec.get("nodeName") or ""),
        queue=str(labels.get(names.LABEL_KUEUE_QUEUE) or ""),
        gated=names.KUEUE_ADMISSION_GATE in gates,
        stopped=stopped,
        exited=exited,
    )


def pod_warnings(events: Sequence[Mapping[str, Any]]) -> tuple[PodWarning, ...]:
    """Parse core/v1 Events (as the apiserver returns them) into PodWarnings, newest first."""
    found = []
    for event in events:
        meta = event.get("metadata") or {}
        seen = parse_time(
            event.get("lastTimestamp") or event.get("eventTime") or meta.get("creationTimestamp")
        )
        found.append(
            PodWarning(
                reason=str(event.get("reason") or ""),
                message=str(event.get("message") or "").strip(),
                last_seen=seen,
            )
        )
    oldest = datetime.min.replace(tzinfo=UTC)
    found.sort(key=lambda w: w.last_seen or oldest, reverse=True)
    return tuple(found)
