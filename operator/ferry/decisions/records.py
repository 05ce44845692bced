"""Provenance records: what an attempt ran, and the states it went through when they happened.

Owns: the `AttemptRecord` of an attempt whose run ended (node, image digest, times, exit code,
outcome) from its `RunView`, appended to `status.attempts` (bounded), and the history entries
of states a run passed through between two passes (Running, at the app's own start time), so
a quick Job's timeline says what happened when it happened without another status write.
Also what the records tell of a retry: whether one is pending (`retry_pending`) and since
when (`retrying_since`). Must not: decide the Job's state.
"""

from __future__ import annotations

from datetime import datetime

from ferry.api.job_status import (
    MAX_ATTEMPT_RECORDS,
    AttemptRecord,
    HistoryEntry,
    JobStatus,
    State,
)
from ferry.api.reasons import Reason
from ferry.decisions.runner import RunView

#: States that begin an attempt in the history.
ATTEMPT_STARTS = frozenset({State.QUEUED, State.RETRYING})


def attempt_record(
    attempt: int,
    view: RunView,
    outcome: str,
    exit_code: int | None,
    start: datetime | None,
    end: datetime | None,
) -> AttemptRecord:
    return AttemptRecord(
        attempt=attempt,
        pod_name=view.name,
        node_name=view.node_name,
        image=view.image,
        image_id=view.image_id,
        start_time=start,
        end_time=end,
        exit_code=exit_code,
        outcome=outcome,
    )


def appended(status: JobStatus, record: AttemptRecord) -> list[AttemptRecord]:
    """status.attempts with `record` in place of any earlier one of its attempt."""
    kept = [r for r in status.attempts if r.attempt != record.attempt]
    return [*kept, record][-MAX_ATTEMPT_RECORDS:]


def record_of(status: JobStatus, attempt: int) -> AttemptRecord | None:
    return next((r for r in status.attempts if r.attempt == attempt), None)


def retry_pending(status: JobStatus) -> bool:
    """Whether the current attempt ended, was counted against a retry budget, and the next
    one has not started yet (Retrying through the backoff; or Suspended or Blocked since).

    Read from the record alone: an attempt's record is appended in the pass that sees its run
    end, and that pass either keeps its outcome for the verdict (`run_outcome`), ends the Job,
    or counts a retry and clears the outcome; a new attempt has no record until its run ends.
    """
    n = status.attempt
    if not n or status.state is None or status.state.terminal or status.run_outcome is not None:
        return False
    return record_of(status, n) is not None


#: States a Job waiting for its next attempt can be in (Suspended or Blocked meanwhile).
_BETWEEN_ATTEMPTS = frozenset({State.RETRYING, State.SUSPENDED, State.BLOCKED})


def retrying_since(status: JobStatus) -> datetime | None:
    """When the Job entered Retrying after its current attempt ended (the wait before the
    next attempt counts from there, even if it was Suspended or Blocked and Retrying again
    since); None when the history no longer says."""
    since = None
    for entry in reversed(status.history):
        if entry.state not in _BETWEEN_ATTEMPTS:
            break
        if entry.state == State.RETRYING:
            since = entry.time
    return since


def ran_unrecorded(status: JobStatus) -> bool:
    """Whether the current attempt has no Running entry in the history yet."""
    if status.state == State.RUNNING:
        return False
    history = status.history
    start = max((i for i, h in enumerate(history) if h.state in ATTEMPT_STARTS), default=-1)
    return all(h.state != State.RUNNING for h in history[start + 1 :])


def running_entry(view: RunView, noun: str, status: JobStatus) -> HistoryEntry | None:
    """The Running entry of a run seen only after its app had started, at its start time.

    Never before the history's last entry: an operator killed between creating the run pod and
    recording Queued records Queued later than the app started, and the history stays in order.
    """
    if view.started_at is None:
        return None
    time = view.started_at
    if status.history and status.history[-1].time > time:
        time = status.history[-1].time
    return HistoryEntry(
        state=State.RUNNING,
        time=time,
        reason=Reason.APP_RUNNING,
        message=f"app running in {noun} {view.name}",
    )
