"""The run of an attempt: from its runner's `RunView` to the Job's state.

Owns: what each stage of a run means for the Job (Queued, StagingInputs, Running, Blocked
with the kubelet's words), `maxRunSeconds`, and the outcome of a run that ended (its exit
code, start and end, runtime), handed on to the verdict. Must not: read pods (the runner
does) or archive (the archive phase does).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from ferry.api.common import ConditionStatus
from ferry.api.job import RunOutcome, State
from ferry.api.reasons import Reason
from ferry.decisions import attempts, records, verdict
from ferry.decisions.context import Ctx
from ferry.decisions.plan import Changes, Draft, _Unset, format_duration
from ferry.decisions.runner import RunView

BLOCKED_RECHECK_SECONDS = 30.0
STAGED = (ConditionStatus.TRUE, Reason.STAGED.value, "all inputs staged")


def observe(ctx: Ctx, view: RunView) -> Draft:
    """The Job's state from a run that has no recorded outcome yet."""
    st = ctx.status
    status = view.status
    if status == "infra-failed":
        record = records.attempt_record(
            ctx.attempt, view, Reason.INFRA_FAILURE, None, view.started_at, view.finished_at
        )
        return attempts.infra_failure(ctx, view.message).after(
            Changes(attempts=records.appended(st, record))
        )
    if status == "stage-failed":
        draft = Draft(
            State.FAILED,
            Reason.STAGE_IN_FAILED,
            f"{view.message} (exit code {view.exit_code})",
        )
        draft.inputs_staged = (ConditionStatus.FALSE, Reason.STAGE_IN_FAILED.value, draft.message)
        draft.actions += ctx.runner.stop(ctx, ctx.attempt)
        return draft
    if status == "terminating":
        return Draft(st.state or State.QUEUED, Reason.POD_TERMINATING, view.message)
    if status == "blocked":
        draft = Draft(State.BLOCKED, view.reason, view.message)
        draft.requeue_after = BLOCKED_RECHECK_SECONDS
        return draft
    if status == "pending":
        return Draft(State.QUEUED, view.reason, view.message)
    if status == "staging":
        return _staging(ctx, view)
    if status == "running":
        running = _running(ctx, view)
        if isinstance(running, Draft):
            return running
        return _ended(ctx, view, RunOutcome.TIMED_OUT, running)
    code = view.exit_code if view.exit_code is not None else 0
    changes = _run_end(st.start_time, view, ctx.now, code)
    outcome = RunOutcome.SUCCEEDED if status == "succeeded" else RunOutcome.APP_FAILED
    return _ended(ctx, view, outcome, changes)


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


def _staging(ctx: Ctx, view: RunView) -> Draft:
    if view.inputs_staged:
        draft = Draft(
            State.STAGING_INPUTS,
            Reason.STARTING_APP,
            f"inputs staged; starting the app in {view.name}",
        )
        draft.inputs_staged = STAGED
    else:
        draft = Draft(
            State.STAGING_INPUTS, Reason.STAGING_INPUTS, f"running {view.message} in {view.name}"
        )
    if view.look_again_at is not None:  # look into it then if it has not started by then
        left = (view.look_again_at - ctx.now).total_seconds()
        draft.requeue_after = left if left > 0 else BLOCKED_RECHECK_SECONDS
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
