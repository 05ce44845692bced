"""The runner protocol: what the lifecycle needs of a backend that runs an attempt.

Owns: `Runner` (the children an attempt needs, its progress read into one `RunView`, which of
its children still stand and how to stop them) and `RunView`, the backend-neutral account of
an attempt's run. One implementation per backend lives in `ferry.runners` (the Pod runner
now; the MPI runner builds on the same protocol). Must not: know any backend; the lifecycle
never asks "is this a pod?", it asks its runner.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

from ferry.api.job import S3Source

if TYPE_CHECKING:
    from ferry.decisions.context import Ctx
    from ferry.decisions.plan import Action

Manifest = dict[str, Any]


class InvalidRunError(ValueError):
    """The Job cannot run on its App's runtime as it is (e.g. its name is too long to name
    an MPIJob's worker hosts): it fails with InvalidSpec and this message."""


#: Where a run stands, in the order a runner checks for them:
#: - preempted: Kueue stopped it (preempted, its Workload evicted): `message` says how
#: - infra-failed: the platform ended it (eviction, node loss, no exit code): `message` says how
#: - stage-failed: an input could not be staged: `message` names it, `exit_code` is the stager's
#: - terminating: it is being deleted (`deletion_time`: when its grace period ends)
#: - blocked: it cannot start until something changes: `reason` and `message` say what
#: - pending: it waits for a node, or for Kueue's admission: `reason` (AwaitingAdmission,
#:   Unschedulable or PodPending) and `message`
#: - staging: inputs are being staged (`message` says which), or, with `inputs_staged`, the app
#:   is starting
#: - running: the app runs since `started_at`
#: - succeeded / app-failed: the app ended, with `exit_code`, `started_at`, `finished_at`
RunStatus = Literal[
    "preempted",
    "infra-failed",
    "stage-failed",
    "terminating",
    "blocked",
    "pending",
    "staging",
    "running",
    "succeeded",
    "app-failed",
]


@dataclass(frozen=True)
class RunView:
    """One attempt's run as its runner reads it from the observed children."""

    #: The object a user looks at for this run (the run pod, the MPIJob).
    name: str
    status: RunStatus
    #: Still holding resources (not ended).
    live: bool = True
    deleting: bool = False
    reason: str = ""
    message: str = ""
    exit_code: int | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    #: Every input has been staged (the app started, or is starting).
    inputs_staged: bool = False
    #: The app's own process ended (so its inputs had been staged).
    app_ended: bool = False
    #: When to look again if nothing changes before (a start that may be stuck).
    look_again_at: datetime | None = None
    #: When its first staging container started (the staging deadline counts from here).
    staging_since: datetime | None = None
    #: Being deleted: when the deletion's grace period ends (a run object standing well past
    #: it is stuck Terminating, its node lost).
    deletion_time: datetime | None = None
    #: Where and what it ran: the node, the app's image as named and as run (a digest).
    node_name: str = ""
    image: str = ""
    image_id: str = ""


class Runner(Protocol):
    """One backend's way of running an attempt."""

    #: The App runtime type it runs (`spec.runtime.type`).
    runtime: str
    #: What its run object is called in messages ("pod", "MPIJob").
    noun: str

    def run_name(self, job: str, attempt: int) -> str:
        """The name of the attempt's run object (what `status.podName` records)."""
        ...

    def children(
        self, ctx: Ctx, attempt: int, resolved: Mapping[str, S3Source]
    ) -> tuple[Manifest, ...]:
        """The objects that make attempt `attempt`, in creation order. Raises
        templating.TemplateError for an App template that does not render, InvalidRunError for a
        Job the runtime cannot run."""
        ...

    def view(self, ctx: Ctx, attempt: int) -> RunView | None:
        """Attempt `attempt`'s run as observed; None when none of its run objects exists."""
        ...

    def live(self, ctx: Ctx, attempt: int | None) -> tuple[str, ...]:
        """Names of the run objects of `attempt` (of every attempt when None) still standing."""
        ...

    def stop(self, ctx: Ctx, attempt: int | None) -> tuple[Action, ...]:
        """The deletes that stop `attempt`'s run (every attempt's when None); nothing for what
        is already ending."""
        ...
