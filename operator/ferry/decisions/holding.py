"""Which status writes may wait: routine progress, held briefly and written with what follows.

Owns: `routine`, whether a plan's status only records routine forward progress over the status
last written to the API, so that the operator may hold it for up to `status_hold_seconds` and
write it together with the next change (a Job that is created, starts and ends within that time
gets one status write instead of three, as the Job controller batches pod updates for a
second). Routine is a state among Queued, StagingInputs and Running, reached from no state
(or the CRD's default, Pending) or one of those, within the same attempt and with its records
unchanged, in a plan that deletes nothing and posts no Event. Everything else — terminal
states, failures, retries, blocks, waits on parents, suspensions, cancels, outages — is written
at once. What a held status says
is never lost for good: a restarted operator decides it again from the API (the run pod of the
attempt has a deterministic name, is found and adopted as its own). Must not: do I/O or read
the clock.
"""

from __future__ import annotations

from ferry.api.job_status import JobStatus, State
from ferry.decisions.plan import CreateObject, Plan

#: The states whose writes may be held.
ROUTINE: frozenset[State] = frozenset({State.QUEUED, State.STAGING_INPUTS, State.RUNNING})


def routine(written: JobStatus, plan: Plan) -> bool:
    """Whether `plan` (decided over a status whose last written form is `written`) records
    only routine progress, which may be held."""
    new = plan.status
    if plan.events or any(not isinstance(a, CreateObject) for a in plan.actions):
        return False
    if new.state not in ROUTINE:
        return False
    if written.state in (None, State.PENDING):
        # A new Job: no status yet, or the CRD's default one (state Pending).
        return not written.attempts and (new.attempt or 0) <= 1
    return (
        written.state in ROUTINE
        and new.attempt == written.attempt
        and new.attempts == written.attempts
        and new.retries == written.retries
        and new.outage is None
        and written.outage is None
    )
