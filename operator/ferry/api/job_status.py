"""The Job's status: the state vocabulary, the conditions, and what Ferry records of a run.

Owns: JobStatus and its parts (the App snapshot, outputs, history, retry counts), the states
of DESIGN.md section 2 and the condition types. Must not: decide transitions (ferry.decisions
does) or do I/O.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field

from ferry.api.app import AppSpec
from ferry.api.common import Condition, S3Location, WireModel, list_map

MAX_HISTORY = 50


class State(StrEnum):
    """A lifecycle state of a Job (docs/api.md, States)."""

    PENDING = "Pending"
    BLOCKED = "Blocked"
    AWAITING_PARENTS = "AwaitingParents"
    SUSPENDED = "Suspended"
    QUEUED = "Queued"
    STAGING_INPUTS = "StagingInputs"
    RUNNING = "Running"
    ARCHIVING = "Archiving"
    RETRYING = "Retrying"
    CANCELLING = "Cancelling"
    FINISHED = "Finished"
    FAILED = "Failed"
    TIMED_OUT = "TimedOut"
    CANCELLED = "Cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset({State.FINISHED, State.FAILED, State.TIMED_OUT, State.CANCELLED})


class ConditionType(StrEnum):
    ACCEPTED = "Accepted"
    INPUTS_STAGED = "InputsStaged"
    ARCHIVED = "Archived"
    SUCCEEDED = "Succeeded"
    RECONCILING = "Reconciling"
    STALLED = "Stalled"
    READY = "Ready"


class AppSnapshot(WireModel):
    """The App as it was when the Job was accepted; every attempt runs this, not the live
    App."""

    name: str = Field(description="Name of the App.")
    version: str = Field(default="", description="The App's spec.version.")
    image: str = Field(description="Container image the attempts run.")
    spec_hash: str = Field(description="Hash of the App's spec (App status.specHash).")
    spec: AppSpec | None = Field(
        default=None,
        description="The App's spec as accepted: every attempt and the archive are built from "
        "it, so changing or deleting the App does not change what a Job runs.",
    )


class Outputs(WireModel):
    """Where an attempt's outputs were archived, and how much."""

    uri: str = Field(description="Where the attempt's files are: s3://bucket/.../attempt-N/.")
    files: int = Field(default=0, description="Number of files archived.")
    bytes: int = Field(default=0, description="Total size of the archived files, in bytes.")
    manifest: str = Field(
        default="",
        description="URI of manifest.json: every file's path, bytes and sha256, the App, "
        "parameters and input hashes.",
    )


class HistoryEntry(WireModel):
    """One state the Job entered: when, and why."""

    state: State = Field(description="The state entered.")
    time: datetime = Field(description="When it was entered.")
    reason: str = Field(default="", description="Why, as one CamelCase word.")
    message: Annotated[str, Field(max_length=1024)] = Field(
        default="", description="Details for humans."
    )


#: Attempt records kept in status.attempts (the oldest dropped first).
MAX_ATTEMPT_RECORDS = 20


class AttemptRecord(WireModel):
    """What one attempt's run was: where it ran, which image digest, when, and how it ended."""

    attempt: int = Field(description="The attempt number.")
    pod_name: str = Field(default="", description="Its run pod.")
    node_name: str = Field(default="", description="The node it ran on.")
    image: str = Field(default="", description="The app's image, as named.")
    image_id: str = Field(
        default="",
        description="The image the node actually ran (the container's imageID: a digest).",
    )
    start_time: datetime | None = Field(default=None, description="When the app started.")
    end_time: datetime | None = Field(default=None, description="When the app ended.")
    exit_code: int | None = Field(default=None, description="The app's exit code.")
    outcome: str = Field(default="", description="Succeeded, AppFailed, TimedOut or InfraFailure.")


class RetryCounts(WireModel):
    """Failures counted against each retry budget so far."""

    app_failures: int = Field(
        default=0, description="Attempts whose app exited non-zero (see retry.appFailures)."
    )
    infra_failures: int = Field(
        default=0,
        description="Attempts the platform ended: eviction, node loss, preemption, a deleted "
        "pod (see retry.infraFailures).",
    )


#: The phase an outage was met in: staging an input, or archiving.
OutagePhase = Literal["StageIn", "Archive"]


class Outage(WireModel):
    """A store or input server found unavailable (unreachable, timing out, answering 5xx): the
    Job waits it out, trying again with a backoff, until the operator's outage deadline."""

    phase: OutagePhase = Field(description="StageIn or Archive: where it was met.")
    attempt: int = Field(description="The attempt in which it was last met.")
    since: datetime = Field(description="When it was first met (the deadline counts from here).")
    tries: int = Field(default=1, description="Tries that found it unavailable so far.")
    counted: int = Field(
        description="The try whose failure was counted last: an archive try (Archive) or an "
        "attempt (StageIn)."
    )
    retry_time: datetime = Field(description="When it is tried again.")


class ParentRecord(WireModel):
    """A parent (spec.parents) seen Finished: remembered, so that its deletion afterwards
    (ttlSecondsAfterFinished, by hand) does not matter to this Job."""

    name: str = Field(description="The parent Job's name.")
    outputs_uri: Annotated[str, Field(max_length=1024)] = Field(
        default="",
        description="Where its outputs were archived (its status.outputs.uri), for jobOutput "
        "inputs.",
    )
    store: S3Location | None = Field(
        default=None, description="The store it archived to, when not the default one."
    )


class RunOutcome(StrEnum):
    """How the current attempt's run ended, kept until the attempt is archived and judged."""

    SUCCEEDED = "Succeeded"
    APP_FAILED = "AppFailed"
    TIMED_OUT = "TimedOut"


class JobStatus(WireModel):
    """What Ferry observed of the Job; written by the operator only."""

    state: State | None = Field(
        default=None,
        description="Lifecycle state: Pending, Blocked, AwaitingParents, Suspended, Queued, "
        "StagingInputs, Running, Archiving, Retrying, Cancelling, or one of the terminal "
        "states Finished, Failed, TimedOut, Cancelled.",
    )
    reason: str | None = Field(
        default=None, description="Why the Job is in its state, as one CamelCase word."
    )
    message: str | None = Field(default=None, description="Details for humans.")
    observed_generation: int | None = Field(
        default=None,
        description="The metadata.generation (spec version) this status was decided for.",
    )
    attempt: int | None = Field(
        default=None, description="The current attempt, from 1; retries start a new one."
    )
    app: AppSnapshot | None = None
    submit_time: datetime | None = Field(default=None, description="When the Job was created.")
    start_time: datetime | None = Field(
        default=None,
        description="When the app started running in the current attempt (maxRunSeconds "
        "counts from here).",
    )
    completion_time: datetime | None = Field(
        default=None, description="When the Job reached a terminal state."
    )
    run_end_time: datetime | None = Field(
        default=None, description="When the app stopped running in the current attempt."
    )
    runtime: str | None = Field(default=None, description="How long the app ran, e.g. 1m20s.")
    exit_code: int | None = Field(
        default=None, description="The app's exit code in the current attempt, once ended."
    )
    pod_name: str | None = Field(
        default=None,
        description="Name of the current attempt's run pod (for an MPI App, its MPIJob).",
    )
    outputs: Outputs | None = None
    run_outcome: RunOutcome | None = Field(
        default=None, description="How the current attempt's run ended (before archiving)."
    )
    retries: RetryCounts | None = Field(
        default=None, description="Failures counted against each retry budget so far."
    )
    archive_try: int | None = Field(default=None, description="Archive pods tried this attempt.")
    outage: Outage | None = Field(
        default=None,
        description="A store or input server being waited out (reason StoreUnavailable or "
        "InputUnavailable); cleared once it answers.",
    )
    parents: Annotated[list[ParentRecord], Field(max_length=32)] = Field(
        default_factory=list,
        description="The parents (spec.parents) seen Finished, remembered so that their "
        "deletion afterwards does not matter.",
    )
    attempts: Annotated[list[AttemptRecord], Field(max_length=MAX_ATTEMPT_RECORDS)] = Field(
        default_factory=list,
        description="Each attempt whose run ended: node, image digest, times, exit code, "
        f"outcome (the last {MAX_ATTEMPT_RECORDS}).",
    )
    history: Annotated[list[HistoryEntry], Field(max_length=MAX_HISTORY)] = Field(
        default_factory=list,
        description=f"The states the Job went through, oldest first (the last {MAX_HISTORY}).",
    )
    conditions: Annotated[list[Condition], Field(max_length=16)] = Field(
        default_factory=list,
        description="Accepted, InputsStaged, Archived, Succeeded, and for kubectl wait and "
        "GitOps tools Reconciling (True while not terminal), Stalled (True on Failed, "
        "TimedOut, Cancelled) and Ready (True only when Finished).",
        json_schema_extra=list_map("type"),
    )

    def condition(self, type_: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == type_), None)
