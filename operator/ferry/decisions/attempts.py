"""Attempts: suspending, starting an attempt, and retrying one after a backoff.

Owns: suspension, the creation of an attempt's children through its runner (with the status
fields a new attempt resets), the two retry budgets (`retry.appFailures`,
`retry.infraFailures`) counted apart, and the backoff between a failed attempt and the next:
the Job controller's rule, `FERRY_RETRY_BACKOFF_BASE_SECONDS` (10) · 2^(failures - 1) with
failures counted against either budget, at most `FERRY_RETRY_BACKOFF_MAX_SECONDS` (360), from
when the Job entered Retrying (its history says, so a restarted operator waits until the same
time). The pass that sees an attempt fail counts it and enters Retrying; the pass after the
wait starts the next attempt. Must not: read a run's progress (`run` does), judge one
(`verdict` does) or decide on parents (`parents` does).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Literal

from ferry.api.common import ConditionStatus
from ferry.api.job import JobStatus, RetryCounts, State
from ferry.api.reasons import Reason
from ferry.config import OperatorConfig
from ferry.decisions import inputs, parents, records, templating
from ferry.decisions.context import Ctx
from ferry.decisions.plan import Changes, CreateObject, Draft, format_duration
from ferry.decisions.runner import InvalidRunError, Manifest

Budget = Literal["app_failures", "infra_failures"]
#: How often a Job blocked by a name held by someone else looks again.
NAME_RECHECK_SECONDS = 30.0
#: How often a Job whose child the apiserver refused looks again (the handler's backoff
#: decides when the create is tried again).
REFUSED_RECHECK_SECONDS = 10.0


def suspend(ctx: Ctx) -> Draft:
    """spec.suspend before the run ended: stop the current attempt's run, if it stands."""
    n = ctx.attempt
    draft = Draft(State.SUSPENDED, Reason.SUSPENDED, "spec.suspend is true")
    before_run = ctx.status.state in (State.QUEUED, State.STAGING_INPUTS)
    view = ctx.runner.view(ctx, n) if n > 0 and before_run else None
    if view is not None and records.ran_unrecorded(ctx.status):
        # The app had started, unrecorded (its Running held, or not yet looked at): the
        # history says it ran before it was suspended.
        entry = records.running_entry(view, ctx.runner.noun, ctx.status)
        if entry is not None:
            draft.passed.append(entry)
    standing = ctx.runner.live(ctx, n)
    if standing:
        draft.message = f"spec.suspend is true; stopping {', '.join(standing)}"
        draft.actions += ctx.runner.stop(ctx, n)
    return draft


def start(ctx: Ctx, attempt: int, state: State, reason: Reason, message: str) -> Draft:
    """Create attempt `attempt`: the children its runner makes it of."""
    if ctx.app is None:
        return Draft(
            State.BLOCKED,
            Reason.APP_NOT_FOUND,
            f"App {ctx.spec.app_ref.name!r} not found; needed to start attempt {attempt}",
        )
    resolved, missing = inputs.resolve_job_outputs(ctx.spec, parents.finished(ctx))
    if missing:
        return Draft(State.FAILED, Reason.STAGE_IN_FAILED, "; ".join(missing))
    try:
        children = ctx.runner.children(ctx, attempt, resolved)
    except templating.TemplateError as exc:
        return Draft(State.FAILED, Reason.INVALID_SPEC, f"App template: {exc}")
    except InvalidRunError as exc:
        return Draft(State.FAILED, Reason.INVALID_SPEC, str(exc))
    taken = name_taken(ctx, children)
    if taken is not None:
        return taken
    run_name = ctx.runner.run_name(ctx.obs.job.name, attempt)
    draft = Draft(
        state,
        reason,
        message or f"attempt {attempt}: created {ctx.runner.noun} {run_name}",
        changes=Changes(
            attempt=attempt,
            pod_name=run_name,
            run_outcome=None,
            archive_try=None,
            exit_code=None,
            start_time=None,
            run_end_time=None,
            runtime=None,
        ),
        actions=[CreateObject(child) for child in children],
    )
    draft.inputs_staged = (ConditionStatus.UNKNOWN, "Pending", f"attempt {attempt}: not staged yet")
    draft.archived = (ConditionStatus.UNKNOWN, "Pending", f"attempt {attempt}: not archived yet")
    return draft


def name_taken(ctx: Ctx, children: Sequence[Manifest]) -> Draft | None:
    """Blocked while a child's name is held by an object this Job did not make, or while the
    apiserver refuses to create a child."""
    refused = [
        f"{c['kind']} {c['metadata']['name']}: {words}"
        for c in children
        if (words := ctx.obs.refused.get(f"{c['kind']}/{c['metadata']['name']}")) is not None
    ]
    if refused:
        draft = Draft(
            State.BLOCKED,
            Reason.CREATE_REFUSED,
            "the apiserver refused to create " + "; ".join(refused),
        )
        draft.requeue_after = REFUSED_RECHECK_SECONDS
        return draft
    held = [
        f"{c['kind']} {c['metadata']['name']}"
        for c in children
        if f"{c['kind']}/{c['metadata']['name']}" in ctx.obs.foreign
    ]
    if not held:
        return None
    draft = Draft(
        State.BLOCKED,
        Reason.NAME_TAKEN,
        f"{', '.join(held)} already exists and was not made by Ferry for this Job; Ferry "
        "does not adopt it: delete or rename it (or give the Job another name)",
    )
    draft.requeue_after = NAME_RECHECK_SECONDS
    return draft


def infra_failure(ctx: Ctx, why: str) -> Draft:
    """The platform ended the current attempt: retry within retry.infraFailures."""
    n = ctx.attempt
    budget = ctx.spec.effective_retry.infra_failures
    stale = list(ctx.runner.stop(ctx, n))
    draft = retry(ctx, n, "infra_failures", Reason.INFRA_FAILURE, why) or Draft(
        State.FAILED,
        Reason.INFRA_FAILED,
        f"attempt {n}: {why}; infrastructure retries exhausted ({budget})",
    )
    draft.actions = stale + draft.actions
    return draft


def retry(ctx: Ctx, n: int, budget_of: Budget, reason: Reason, why: str) -> Draft | None:
    """Retrying after attempt n failed for `why`, counted against retry.<budget_of>: attempt
    n + 1 starts after the backoff (`after_backoff`). None when that budget is spent."""
    counts = ctx.status.retries or RetryCounts()
    budget: int = getattr(ctx.spec.effective_retry, budget_of)
    used: int = getattr(counts, budget_of) + 1
    if used > budget:
        return None
    label = "app" if budget_of == "app_failures" else "infrastructure"
    charged = counts.model_copy(update={budget_of: used})
    wait = backoff_seconds(charged.app_failures + charged.infra_failures, ctx.config)
    draft = Draft(
        State.RETRYING,
        reason,
        f"attempt {n}: {why}; attempt {n + 1} starts at {_clock(ctx.now + timedelta(seconds=wait))}"
        f" after a {format_duration(wait)} backoff ({label} retry {used}/{budget})",
        changes=Changes(retries=charged, run_outcome=None),
    )
    draft.requeue_after = wait
    return draft


def after_backoff(ctx: Ctx) -> Draft:
    """A retry is pending (`records.retry_pending`): Retrying until the backoff since the Job
    entered Retrying is over, then attempt n + 1."""
    st = ctx.status
    n = ctx.attempt
    due = retry_due(st, ctx.config)
    if due is not None and ctx.now < due:
        entry = next((h for h in reversed(st.history) if h.state == State.RETRYING), None)
        if st.state == State.RETRYING or entry is None:
            draft = Draft(State.RETRYING, st.reason or Reason.APP_FAILED, st.message or "")
        else:  # resumed (or unblocked) within the backoff: the wait goes on as announced
            draft = Draft(State.RETRYING, entry.reason, entry.message)
        draft.requeue_after = (due - ctx.now).total_seconds()
        return draft
    if st.state == State.SUSPENDED:
        return start(ctx, n + 1, State.QUEUED, Reason.RESUMED, "resumed")
    return start(ctx, n + 1, State.QUEUED, Reason.POD_CREATED, "")


def retry_due(status: JobStatus, config: OperatorConfig) -> datetime | None:
    """When the pending retry's attempt starts; None when the history no longer says when the
    Job entered Retrying (it is long past then)."""
    since = records.retrying_since(status)
    if since is None:
        return None
    counts = status.retries or RetryCounts()
    wait = backoff_seconds(counts.app_failures + counts.infra_failures, config)
    return since + timedelta(seconds=wait)


def backoff_seconds(failures: int, config: OperatorConfig) -> float:
    """The wait before the next attempt after `failures` failures (the Job controller's rule:
    base · 2^(failures - 1), at most the maximum); 0 before any."""
    if failures <= 0:
        return 0.0
    base = config.retry_backoff_base_seconds
    return float(min(base * 2 ** min(failures - 1, 32), config.retry_backoff_max_seconds))


def _clock(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")
