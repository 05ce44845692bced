"""The values a lifecycle decision returns, and the draft it is built from.

Owns: the action types (create or delete a child, delete the Job), Events, the `Plan`, the
typed `Changes` to status fields, the mutable `Draft` the decision phases fill in, and
`format_duration`. Must not: decide.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, Final, Literal

from ferry.api.common import ConditionStatus
from ferry.api.job import AppSnapshot, JobStatus, Outputs, RetryCounts, RunOutcome, State
from ferry.api.job_status import AttemptRecord, HistoryEntry, Outage, ParentRecord

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
    """Delete this child of the Job; NotFound means it is already gone and is fine. Only
    the object of `uid` is deleted; without a `uid` (a workspace, which is not watched) the
    handler reads it first and deletes it only if the Job is its controller. An MPIJob is
    deleted in the foreground: it stands, being deleted, until the pods it made are gone."""

    kind: Literal["Pod", "PersistentVolumeClaim", "MPIJob"]
    name: str
    uid: str = ""


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
    #: Events posted although nothing is written (`events` follow a status write only): a
    #: status that cannot be read is never overwritten, but the user is told why.
    notices: tuple[Event, ...] = ()

    @property
    def state(self) -> State:
        assert self.status.state is not None
        return self.status.state


CondValue = tuple[ConditionStatus, str, str]


class _Unset(Enum):
    UNSET = 0


#: A status field a decision leaves as it is (None clears it).
UNSET: Final = _Unset.UNSET


@dataclass(frozen=True)
class Changes:
    """Status fields a decision sets besides state, reason and message. A field left UNSET
    keeps its recorded value; None clears it."""

    attempt: int | _Unset | None = UNSET
    pod_name: str | _Unset | None = UNSET
    app: AppSnapshot | _Unset | None = UNSET
    run_outcome: RunOutcome | _Unset | None = UNSET
    exit_code: int | _Unset | None = UNSET
    start_time: datetime | _Unset | None = UNSET
    run_end_time: datetime | _Unset | None = UNSET
    runtime: str | _Unset | None = UNSET
    archive_try: int | _Unset | None = UNSET
    retries: RetryCounts | _Unset | None = UNSET
    outputs: Outputs | _Unset | None = UNSET
    outage: Outage | _Unset | None = UNSET
    attempts: list[AttemptRecord] | _Unset = UNSET
    parents: list[ParentRecord] | _Unset = UNSET

    def set(self) -> dict[str, Any]:
        """The fields that are set, by JobStatus field name."""
        return {
            f.name: value
            for f in dataclasses.fields(self)
            if (value := getattr(self, f.name)) is not UNSET
        }

    def then(self, later: Changes) -> Changes:
        """These changes followed by `later`'s: where both set a field, `later` wins."""
        return dataclasses.replace(self, **later.set())

    def apply(self, status: JobStatus) -> JobStatus:
        return status.model_copy(update=self.set())


@dataclass
class Draft:
    """A decision in the making: state, reason, message, status changes and actions."""

    state: State
    #: A `Reason` (a recorded one, for a terminal Job, may predate today's list).
    reason: str
    message: str
    changes: Changes = field(default_factory=Changes)
    actions: list[Action] = field(default_factory=list)
    requeue_after: float | None = None
    inputs_staged: CondValue | None = None
    archived: CondValue | None = None
    #: Events to post once the status is written, besides the transition's own (a pod no
    #: longer waited for, ...).
    events: list[Event] = field(default_factory=list)
    #: States the Job went through since the last pass, at the time they happened (a run
    #: seen only after it ended was Running in between); recorded in the history before the
    #: new state.
    passed: list[HistoryEntry] = field(default_factory=list)

    def after(self, earlier: Changes) -> Draft:
        """This draft with `earlier` changes under its own (its own win)."""
        self.changes = earlier.then(self.changes)
        return self


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
