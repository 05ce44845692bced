"""Every reason Ferry writes: `status.reason`, the conditions' reasons and the Events'.

Owns: the reasons as typed constants, each with the one line that explains it to a user.
docs/api.md's reason table is checked against `EXPLAINED` by a unit test, so a reason cannot
be added without being documented. Must not: decide when a reason applies (the lifecycle
does).
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """One CamelCase word saying why a Job (or an App) is where it is."""

    # --- not accepted, or cannot go on until something changes (Blocked)
    APP_NOT_FOUND = "AppNotFound"
    APP_INVALID = "AppInvalid"
    APP_VERSION_MISMATCH = "AppVersionMismatch"
    INVALID_SPEC = "InvalidSpec"
    MPI_OPERATOR_MISSING = "MPIOperatorMissing"
    RUNTIME_UNAVAILABLE = "RuntimeUnavailable"
    CONFIG_ERROR = "ConfigError"
    IMAGE_PULL_FAILED = "ImagePullFailed"
    POD_NOT_STARTING = "PodNotStarting"
    NAME_TAKEN = "NameTaken"
    CREATE_REFUSED = "CreateRefused"
    STATUS_UNREADABLE = "StatusUnreadable"
    # --- waiting
    AWAITING_PARENTS = "AwaitingParents"
    SUSPENDED = "Suspended"
    RESUMING = "Resuming"
    AWAITING_ADMISSION = "AwaitingAdmission"
    # --- an attempt on its way
    POD_CREATED = "PodCreated"
    RESUMED = "Resumed"
    POD_PENDING = "PodPending"
    UNSCHEDULABLE = "Unschedulable"
    STAGING_INPUTS = "StagingInputs"
    STARTING_APP = "StartingApp"
    APP_RUNNING = "AppRunning"
    POD_TERMINATING = "PodTerminating"
    POD_STUCK_TERMINATING = "PodStuckTerminating"
    # --- outages, waited out
    STORE_UNAVAILABLE = "StoreUnavailable"
    INPUT_UNAVAILABLE = "InputUnavailable"
    # --- archiving
    STOPPING_APP = "StoppingApp"
    ARCHIVING = "Archiving"
    ARCHIVE_RETRYING = "ArchiveRetrying"
    ARCHIVED = "Archived"
    NOT_ARCHIVED = "NotArchived"
    # --- retries
    APP_FAILED = "AppFailed"
    INFRA_FAILURE = "InfraFailure"
    PREEMPTED = "Preempted"
    # --- outcomes
    SUCCEEDED = "Succeeded"
    INFRA_FAILED = "InfraFailed"
    STAGE_IN_FAILED = "StageInFailed"
    ARCHIVE_FAILED = "ArchiveFailed"
    PARENT_FAILED = "ParentFailed"
    PARENT_NOT_FOUND = "ParentNotFound"
    DEPENDENCY_CYCLE = "DependencyCycle"
    MAX_RUN_SECONDS_EXCEEDED = "MaxRunSecondsExceeded"
    CANCEL_REQUESTED = "CancelRequested"
    CANCELLED = "Cancelled"
    # --- conditions only
    ACCEPTED = "Accepted"
    PENDING = "Pending"
    STAGED = "Staged"
    VALID = "Valid"


#: What each reason tells a user; docs/api.md's reason table says the same.
EXPLAINED: dict[Reason, str] = {
    Reason.APP_NOT_FOUND: "the App named by `spec.appRef` does not exist in the Job's namespace",
    Reason.APP_INVALID: "the App exists but is not usable (its message says why), or changed "
    "under an accepted Job in a way the Job no longer fits",
    Reason.APP_VERSION_MISMATCH: "`spec.appRef.version` names another version than the App "
    "has: the Job waits for an App of that version",
    Reason.INVALID_SPEC: "the Job (or App) asks for something the schema cannot refuse: a "
    "parameter of the wrong type, an undeclared input, a bad template (terminal for a Job; "
    "for an App, Ready False and Stalled True until its spec is fixed)",
    Reason.MPI_OPERATOR_MISSING: "the App runs as MPI and the MPIJob CRD (kubeflow.org/v2beta1) "
    "is not installed",
    Reason.RUNTIME_UNAVAILABLE: "the App's runtime has no runner in this Ferry: it is never run "
    "some other way (an MPI App never runs as a single pod); this Ferry runs Pod and MPI",
    Reason.CONFIG_ERROR: "a container cannot be created from its configuration (a missing "
    "Secret or key, ...): the kubelet's words",
    Reason.IMAGE_PULL_FAILED: "a container's image cannot be pulled",
    Reason.POD_NOT_STARTING: "the run pod was scheduled but none of its containers has started "
    "in `FERRY_POD_START_GRACE_SECONDS`; its newest Warning Event says why",
    Reason.NAME_TAKEN: "an object Ferry would create for this Job (a workspace PVC, a run or "
    "archive pod, an MPIJob) already exists and was not made by Ferry for this Job (a user's "
    "object, or a deleted Job's of the same name not yet collected): Ferry never adopts, "
    "mounts or deletes it, and goes on once the name is free",
    Reason.CREATE_REFUSED: "the apiserver refused to create a child of the Job (a quota, a "
    "LimitRange, Pod Security, an admission webhook, an object too large): its words are the "
    "message; Ferry tries again with a backoff (10 s doubling to 5 min) and goes on once the "
    "cause is gone",
    Reason.STATUS_UNREADABLE: "the Job's recorded status cannot be read by this Ferry (written "
    "by a newer version before a rollback, or by someone else): the Job is never run again "
    "from the start; it waits, untouched, for a Ferry that reads it or for the status to be "
    "cleared by hand",
    Reason.AWAITING_PARENTS: "`spec.parents` are not all Finished",
    Reason.SUSPENDED: "`spec.suspend` is true",
    Reason.RESUMING: "`spec.suspend` went back to false; the stopped attempt's pod is ending",
    Reason.AWAITING_ADMISSION: "the run pod (or MPIJob) waits in its Kueue queue "
    "(`spec.queueName`): the pod holds Kueue's scheduling gate, the MPIJob is suspended; the "
    "message is Kueue's words from its Workload (no quota left, ...)",
    Reason.POD_CREATED: "an attempt's run pod (or MPIJob) was created (attempt 1's, or the "
    "next one's once the backoff after a failed attempt is over)",
    Reason.RESUMED: "a new attempt was started after a suspension (not counted as a failure)",
    Reason.POD_PENDING: "the run pod waits to be scheduled (an MPIJob: for the MPI Operator to "
    "start its launcher, or for its workers to be scheduled)",
    Reason.UNSCHEDULABLE: "the scheduler cannot place the run pod (its message is the scheduler's)",
    Reason.STAGING_INPUTS: "an input is being staged",
    Reason.STARTING_APP: "every input is staged and the app's container is starting",
    Reason.APP_RUNNING: "the app runs",
    Reason.POD_TERMINATING: "the run pod (or MPIJob) is being deleted",
    Reason.POD_STUCK_TERMINATING: "a pod stayed Terminating `FERRY_POD_TERMINATING_GRACE_SECONDS` "
    "past its grace period (its node is probably lost): Ferry stops waiting for it and goes on "
    "(the next attempt or archive try, or Cancelled); it never force-deletes the pod (an Event)",
    Reason.STORE_UNAVAILABLE: "the object store cannot be reached, times out or answers 5xx "
    "(while archiving, or staging an S3 input): the Job stays in its state, the workspace "
    "kept, and tries again after 10 s doubling to 5 min, until `FERRY_OUTAGE_DEADLINE_SECONDS` "
    "(6 h) after it was first found down; then ArchiveFailed or StageInFailed. Refused "
    "credentials, a missing bucket or object (4xx) fail at once",
    Reason.INPUT_UNAVAILABLE: "an HTTP input's server cannot be reached, times out or answers "
    "5xx, 408 or 429: waited out as StoreUnavailable is, each try a new attempt that is not "
    "counted against `retry.infraFailures`; a 404, a wrong sha256 or a refused address fail "
    "at once (StageInFailed)",
    Reason.STOPPING_APP: "the app's pod (or MPIJob) is stopping before its outputs are archived",
    Reason.ARCHIVING: "an archive pod uploads the outputs, `logs/app.log` and `manifest.json`",
    Reason.ARCHIVE_RETRYING: "an archive try failed and another is made",
    Reason.ARCHIVED: "the attempt's outputs are in the store (condition Archived)",
    Reason.NOT_ARCHIVED: "archiving was not wanted (`archive.enabled` or `archive.onFailure` "
    "is false)",
    Reason.APP_FAILED: "the app exited non-zero: retried within `retry.appFailures` (Retrying "
    "until the backoff is over: 10 s doubling with each failure, at most 6 min), else terminal",
    Reason.INFRA_FAILURE: "the platform ended an attempt (eviction, node loss, a pod deleted "
    "under the Job); retried within `retry.infraFailures` after the same backoff",
    Reason.PREEMPTED: "Kueue stopped a queued Job's run pod (preempted, or its Workload "
    "evicted): a new attempt is queued at once, not counted against `retry.infraFailures` (a "
    "Warning Event); a preempted MPIJob is suspended by Kueue and waits again "
    "(AwaitingAdmission), in the same attempt",
    Reason.SUCCEEDED: "the app exited 0 and its outputs are archived",
    Reason.INFRA_FAILED: "infrastructure failures used up `retry.infraFailures`",
    Reason.STAGE_IN_FAILED: "an input could not be staged (its message names the input), its "
    "source stayed unavailable past `FERRY_OUTAGE_DEADLINE_SECONDS`, or the inputs took longer "
    "than `FERRY_STAGING_DEADLINE_SECONDS` to stage",
    Reason.ARCHIVE_FAILED: "every archive try failed (an archive pod that runs longer than "
    "`FERRY_ARCHIVE_POD_DEADLINE_SECONDS` is stopped and counts as one), or the store stayed "
    "unavailable past `FERRY_OUTAGE_DEADLINE_SECONDS`",
    Reason.PARENT_FAILED: "a parent ended other than Finished",
    Reason.PARENT_NOT_FOUND: "a parent in `spec.parents` does not exist "
    "`FERRY_PARENT_GRACE_SECONDS` (300) after the Job was created: never created, or deleted "
    "before it finished (a parent seen Finished is remembered in `status.parents`, so its "
    "deletion afterwards does not matter)",
    Reason.DEPENDENCY_CYCLE: "the Job is its own ancestor through `spec.parents` (a → b → a, "
    "or itself): none of the Jobs in the cycle could ever start; the message lists the cycle",
    Reason.MAX_RUN_SECONDS_EXCEEDED: "the app ran longer than `maxRunSeconds`",
    Reason.CANCEL_REQUESTED: "`spec.cancel` is true and pods are being stopped",
    Reason.CANCELLED: "cancelled through `spec.cancel`",
    Reason.ACCEPTED: "the App was resolved and its snapshot taken (condition Accepted)",
    Reason.PENDING: "not evaluated yet (conditions only)",
    Reason.STAGED: "every input is staged (condition InputsStaged)",
    Reason.VALID: "the App is usable (App conditions: Ready True, Stalled and Reconciling False)",
}

#: Reasons a Job is not (yet) accepted with: its Accepted condition is False.
NOT_ACCEPTED = frozenset(
    {
        Reason.APP_NOT_FOUND,
        Reason.APP_INVALID,
        Reason.APP_VERSION_MISMATCH,
        Reason.INVALID_SPEC,
        Reason.MPI_OPERATOR_MISSING,
        Reason.RUNTIME_UNAVAILABLE,
    }
)


def markdown_table() -> str:
    """docs/api.md's reason table, one row per reason, in declaration order."""
    rows = ["| reason | meaning |", "|---|---|"]
    rows += [f"| `{reason.value}` | {EXPLAINED[reason]} |" for reason in Reason]
    return "\n".join(rows)
