"""The values a lifecycle decision returns, and the draft it is built from.

Owns: the action types (create or delete a child, delete the Job), Events, the `Plan`, the
mutable `Draft` the decision steps fill in, and small helpers they share. Must not: decide.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from ferry.api.common import ConditionStatus
from ferry.api.job import JobStatus, State
from ferry.decisions import builders
from ferry.decisions.observation import Observation, PodView

Manifest = dict[str, Any]


@dataclass(frozen=True)
class CreateObject:
    """Create this object; AlreadyExists means it was made before and is fine."""

    manifest: Manifest

    @property
    def name(self) -> str:
        return str(self.manifest["metadata"]["name"])

    @property
    def kind(self) -> str:
        return str(self.manifest["kind"])


@dataclass(frozen=True)
class DeleteObject:
    """Delete this child; NotFound means it is already gone and is fine."""

    kind: Literal["Pod", "PersistentVolumeClaim"]
    name: str


@dataclass(frozen=True)
class DeleteJob:
    """Delete the Job itself (ttlSecondsAfterFinished elapsed)."""


Action = CreateObject | DeleteObject | DeleteJob


@dataclass(frozen=True)
class Event:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True)
class Plan:
    """What to do and what to record."""

    status: JobStatus
    changed: bool
    actions: tuple[Action, ...] = ()
    events: tuple[Event, ...] = ()
    requeue_after: float | None = None

    @property
    def state(self) -> State:
        assert self.status.state is not None
        return self.status.state


CondValue = tuple[ConditionStatus, str, str]


@dataclass
class Draft:
    """A decision in the making: state, reason, message, status updates and actions."""

    state: State
    reason: str
    message: str
    updates: dict[str, Any] = field(default_factory=dict)
    actions: list[Action] = field(default_factory=list)
    requeue_after: float | None = None
    inputs_staged: CondValue | None = None
    archived: CondValue | None = None


def format_duration(seconds: float) -> str:
    """1h2m3s, 4m5s or 6s."""
    total = max(0, int(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def job_meta(obs: Observation) -> builders.JobMeta:
    job = obs.job
    return builders.JobMeta(job.name, job.namespace, job.uid, job.labels, job.annotations)


def find_pod(obs: Observation, attempt: int, role: str, try_: int | None = None) -> PodView | None:
    for pod in obs.pods:
        if (
            pod.attempt == attempt
            and pod.role == role
            and (try_ is None or pod.archive_try == try_)
        ):
            return pod
    return None
