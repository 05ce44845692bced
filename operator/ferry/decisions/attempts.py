"""Attempts: waiting for parents, suspending, starting an attempt, and retrying one.

Owns: the gates before the first attempt (parents Finished), suspension, the creation of an
attempt's children through its runner (with the status fields a new attempt resets), and
the two retry budgets (`retry.appFailures`, `retry.infraFailures`) counted apart. Must not:
read a run's progress (`run` does) or judge one (`verdict` does).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Literal

from ferry.api.common import ConditionStatus
from ferry.api.job import RetryCounts, State
from ferry.api.reasons import Reason
from ferry.decisions import inputs, templating
from ferry.decisions.context import Ctx
from ferry.decisions.plan import Changes, CreateObject, Draft
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
    standing = ctx.runner.live(ctx, n)
    if standing:
        draft.message = f"spec.suspend is true; stopping {', '.join(standing)}"
        draft.actions += ctx.runner.stop(ctx, n)
    return draft


def parents(ctx: Ctx) -> Draft | None:
    """A Draft while `spec.parents` are not all Finished; None once they are."""
    waiting, failed = [], []
    for name in ctx.spec.parents:
        parent = ctx.obs.parents.get(name)
        if parent is None:
            waiting.append(f"{name} (not found)")
        elif parent.state == State.FINISHED:
            continue
        elif parent.state is not None and parent.state.terminal:
            failed.append(f"{name} ({parent.state.value}: {parent.reason})")
        else:
            waiting.append(f"{name} ({parent.state.value if parent.state else 'Pending'})")
    if failed:
        return Draft(
            State.FAILED, Reason.PARENT_FAILED, "parent(s) did not finish: " + ", ".join(failed)
        )
    if waiting:
        draft = Draft(
            State.AWAITING_PARENTS, Reason.AWAITING_PARENTS, "waiting for " + ", ".join(waiting)
        )
        draft.requeue_after = ctx.config.resync_seconds
        return draft
    return None


def start(ctx: Ctx, attempt: int, state: State, reason: Reason, message: str) -> Draft:
    """Create attempt `attempt`: the children its runner makes it of."""
    if ctx.app is None:
        return Draft(
            State.BLOCKED,
            Reason.APP_NOT_FOUND,
            f"App {ctx.spec.app_ref.name!r} not found; needed to start attempt {attempt}",
        )
    resolved, missing = inputs.resolve_job_outputs(ctx.spec, ctx.obs.parents)
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
    """Attempt n + 1 after attempt n failed for `why`, counted against retry.<budget_of>;
    None when that budget is spent."""
    counts = ctx.status.retries or RetryCounts()
    budget: int = getattr(ctx.spec.effective_retry, budget_of)
    used: int = getattr(counts, budget_of) + 1
    if used > budget:
        return None
    label = "app" if budget_of == "app_failures" else "infrastructure"
    draft = start(
        ctx,
        n + 1,
        State.RETRYING,
        reason,
        f"attempt {n}: {why}; starting attempt {n + 1} ({label} retry {used}/{budget})",
    )
    if draft.state == State.RETRYING:  # not when the restart is Blocked (App gone)
        draft.changes = replace(draft.changes, retries=counts.model_copy(update={budget_of: used}))
    return draft
