"""The run of an attempt: from its runner's `RunView` to the Job's state.

Owns: what each stage of a run means for the Job (Queued — AwaitingAdmission while Kueue holds
it, a preemption handed to `kueue` —, StagingInputs — in `staging` —,
Running, Blocked with the kubelet's words), `maxRunSeconds`, a run stuck Terminating, and the
outcome of a run that ended (its exit code, start and end, runtime), handed on to the verdict.
Must not: read pods (the runner does) or archive (the archive phase does).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from ferry.api.job import RunOutcome, State
from ferry.api.reasons import Reason
from ferry.decisions import attempts, kueue, outages, records, staging, verdict
from ferry.decisions.context import Ctx
from ferry.decisions.plan import Changes, Draft, Event, _Unset, format_duration
from ferry.decisions.runner import RunView

BLOCKED_RECHECK_SECONDS = staging.BLOCKED_RECHECK_SECONDS
STAGED = staging.STAGED


def observe(ctx: Ctx, view: RunView) -> Draft:
    """The Job's state from a run that has no recorded outcome yet."""
    st = ctx.status
    status = view.status
    if status == "preempted":
        return kueue.preempted(ctx, view)
    if status == "infra-failed":
        record = records.attempt_record(
            ctx.attempt, view, Reason.INFRA_FAILURE, None, view.started_at, view.finished_at
        )
        return attempts.infra_failure(ctx, view.message).after(
            Changes(attempts=records.appended(st, record))
        )
    if status == "stage-failed":
        if outages.is_outage(view.exit_code):
            return staging.unavailable(ctx, view)
        return staging.failed(ctx, f"{view.message} (exit code {view.exit_code})")
    if status == "terminating":
        return _terminating(ctx, view)
    if status == "blocked":
        draft = Draft(State.BLOCKED, view.reason, view.message)
        draft.requeue_after = BLOCKED_RECHECK_SECONDS
        return draft
    if status == "pending":
        draft = Draft(State.QUEUED, view.reason, view.message)
        if view.reason == Reason.AWAITING_ADMISSION:  # Kueue's words change as its queue moves
            draft.requeue_after = kueue.recheck_after(view.message)
        return draft
    if status == "staging":
        return staging.staging(ctx, view)
    if status == "running":
        running = _running(ctx, view)
        if isinstance(running, Draft):
            return staging.staged(ctx, running)
        return _ended(ctx, view, RunOutcome.TIMED_OUT, running)
    code = view.exit_code if view.exit_code is not None else 0
    changes = _run_end(st.start_time, view, ctx.now, code)
    outcome = RunOutcome.SUCCEEDED if status == "succeeded" else RunOutcome.APP_FAILED
    return staging.staged(ctx, _ended(ctx, view, outcome, changes))


def _terminating(ctx: Ctx, view: RunView) -> Draft:
    """The run is being deleted: wait for it to end, but not for ever: one still Terminating
    `FERRY_POD_TERMINATING_GRACE_SECONDS` past its grace period (its node lost) is an
    infrastructure failure, said in an Event; Ferry never force-deletes it."""
    st = ctx.status
    why = stuck_since(ctx, view)
    if why is None:
        draft = Draft(st.state or State.QUEUED, Reason.POD_TERMINATING, view.message)
        draft.requeue_after = until_stuck(ctx, view)
        return draft
    # Recorded like every ended attempt, so the passes through the backoff that follows see a
    # retry pending and do not count the stuck run again.
    record = records.attempt_record(
        ctx.attempt, view, Reason.INFRA_FAILURE, None, view.started_at, view.finished_at
    )
    draft = attempts.infra_failure(ctx, why).after(Changes(attempts=records.appended(st, record)))
    draft.events.append(Event("Warning", Reason.POD_STUCK_TERMINATING, why))
    return draft


def stuck_since(ctx: Ctx, view: RunView) -> str | None:
    """Why a run being deleted is no longer waited for (Terminating past the grace); None
    while it may still end."""
    until = until_stuck(ctx, view)
    if until is None or until > 0 or view.deletion_time is None:
        return None
    since = view.deletion_time.strftime("%Y-%m-%dT%H:%M:%SZ")
    return (
        f"{ctx.runner.noun} {view.name} has been Terminating since {since} (its node may be "
        "lost); no longer waited for"
    )


def until_stuck(ctx: Ctx, view: RunView) -> float | None:
    """Seconds until a run being deleted counts as stuck Terminating (0 when it does)."""
    if view.deletion_time is None:
        return None
    until = view.deletion_time + timedelta(seconds=ctx.config.pod_terminating_grace_seconds)
    return max((until - ctx.now).total_seconds(), 0.0)


def _ended(ctx: Ctx, view: RunView, outcome: RunOutcome, changes: Changes) -> Draft:
    st = ctx.status
    exit_code = changes.exit_code if isinstance(changes.exit_code, int) else st.exit_code
    start = changes.start_time if not isinstance(changes.start_time, _Unset) else st.start_time
    end = changes.run_end_time if not isinstance(changes.run_end_time, _Unset) else None
    record = records.attempt_record(ctx.attempt, view, outcome.value, exit_code, start, end)
    changes = changes.then(Changes(attempts=records.appended(st, record)))
    draft = verdict.after_run(ctx, view, outcome, exit_code).after(changes)
    if records.ran_unrecorded(st):
        entry = records.running_entry(view, ctx.runner.noun, st)
        if entry is not None:
            draft.passed.append(entry)
    if draft.inputs_staged is None and view.app_ended:
        # The app ran, so every input had been staged, even when no pass saw it running
        # (a short app, pod progress batched).
        draft.inputs_staged = STAGED
    return draft


def _running(ctx: Ctx, view: RunView) -> Draft | Changes:
    """Running, or the changes that end a run past maxRunSeconds."""
    now = ctx.now
    started = ctx.status.start_time or view.started_at or now
    draft = Draft(
        State.RUNNING,
        Reason.APP_RUNNING,
        f"app running in {ctx.runner.noun} {view.name}",
        changes=Changes(start_time=started),
    )
    draft.inputs_staged = STAGED
    limit = ctx.max_run_seconds
    if limit is not None:
        deadline = started + timedelta(seconds=limit)
        if now >= deadline:
            return Changes(
                start_time=started,
                run_end_time=now,
                runtime=format_duration((now - started).total_seconds()),
            )
        draft.requeue_after = (deadline - now).total_seconds()
    return draft


def _run_end(start: datetime | None, view: RunView, now: datetime, code: int) -> Changes:
    started = start or view.started_at
    ended = view.finished_at or now
    if started is None:
        return Changes(exit_code=code, run_end_time=ended)
    return Changes(
        exit_code=code,
        run_end_time=ended,
        start_time=started,
        runtime=format_duration((ended - started).total_seconds()),
    )
