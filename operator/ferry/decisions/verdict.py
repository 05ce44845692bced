"""The verdict on an attempt whose run ended: archive it if wanted, then judge it.

Owns: whether an attempt is archived (`archive.enabled`, `archive.onFailure`), the order
archive-then-judge, and the judgement: Finished, TimedOut, an app retry within
`retry.appFailures`, or Failed/AppFailed. Must not: build the archive pod (the archive phase
does) or start an attempt itself (`attempts` does).
"""

from __future__ import annotations

from ferry.api.common import ConditionStatus
from ferry.api.job import ConditionType, RunOutcome, State
from ferry.api.reasons import Reason
from ferry.decisions import archive, attempts
from ferry.decisions.context import Ctx
from ferry.decisions.plan import Changes, Draft
from ferry.decisions.runner import RunView


def after_run(ctx: Ctx, view: RunView | None, outcome: RunOutcome, exit_code: int | None) -> Draft:
    """Archive the attempt if wanted, then judge it (`exit_code`: the run's, as observed)."""
    spec = ctx.spec
    n = ctx.attempt
    on_failure = spec.archive.on_failure if spec.archive else True
    wanted = spec.archiving and (outcome == RunOutcome.SUCCEEDED or on_failure)
    archived = ctx.status.condition(ConditionType.ARCHIVED.value)
    done = archived is not None and archived.status == ConditionStatus.TRUE
    recorded = Changes(run_outcome=outcome)
    if wanted and not done:
        draft = archive.step(ctx, view, outcome, n).after(recorded)
        if draft.archived is None or draft.archived[0] != ConditionStatus.TRUE:
            return draft
        judged = judge(ctx, outcome, n, exit_code).after(draft.changes)
        if judged.archived is None:  # a retry resets Archived for its new attempt
            judged.archived = draft.archived
        return judged
    judged = judge(ctx, outcome, n, exit_code).after(recorded)
    if not wanted and judged.archived is None:
        why = "archive.onFailure is false" if spec.archiving else "archive.enabled is false"
        judged.archived = (ConditionStatus.FALSE, Reason.NOT_ARCHIVED.value, why)
    if view is not None:
        judged.actions[:0] = ctx.runner.stop(ctx, n)
    return judged


def judge(ctx: Ctx, outcome: RunOutcome, n: int, code: int | None) -> Draft:
    if outcome == RunOutcome.SUCCEEDED:
        return Draft(State.FINISHED, Reason.SUCCEEDED, f"attempt {n} succeeded")
    if outcome == RunOutcome.TIMED_OUT:
        return Draft(
            State.TIMED_OUT,
            Reason.MAX_RUN_SECONDS_EXCEEDED,
            f"attempt {n} ran longer than maxRunSeconds ({ctx.max_run_seconds}s)",
        )
    why = f"app exited with code {code}"
    retry = attempts.retry(ctx, n, "app_failures", Reason.APP_FAILED, why)
    return retry or Draft(State.FAILED, Reason.APP_FAILED, f"attempt {n}: {why}")
