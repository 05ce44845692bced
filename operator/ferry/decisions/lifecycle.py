"""The Job lifecycle: one observation in, one plan out.

Owns: `decide`, the entry of the pure decision, and the walk through its phases — cleanup of
a terminal or cancelled Job (`cleanup`), acceptance (`accept`), the parents' gate
(`parents`), the starts, retries and backoffs of attempts (`attempts`), the run (`run`),
archiving (`archive`) and the verdict (`verdict`), each a module of its own over one frozen
`Ctx`. The same observation always gives the same
plan, so a restarted operator recomputes what it had. Terminal states are absorbing. Must
not: do I/O, read the clock, or keep state between calls.
"""

from __future__ import annotations

from collections.abc import Mapping

from ferry.api.job import JobStatus, State
from ferry.api.job_status import AttemptRecord
from ferry.api.reasons import Reason
from ferry.decisions import accept, attempts, cleanup, parents, records, run, verdict
from ferry.decisions.context import Ctx
from ferry.decisions.observation import Observation, owned
from ferry.decisions.plan import (
    Action,
    Changes,
    CreateObject,
    DeleteJob,
    DeleteObject,
    Draft,
    Event,
    Plan,
)
from ferry.decisions.runner import Runner
from ferry.decisions.status import finalize

__all__ = ["Action", "CreateObject", "DeleteJob", "DeleteObject", "Event", "Plan", "decide"]

#: How often a Job whose status cannot be read is looked at again (a Ferry that reads it may
#: be back, or someone cleared it).
UNREADABLE_RECHECK_SECONDS = 300.0


def decide(obs: Observation, runners: Mapping[str, Runner]) -> Plan:
    """The plan for one observation of a Job; `runners` are the runtimes Ferry can run."""
    obs = owned(obs)
    job = obs.job
    status = job.status
    if job.status_error:
        return _unreadable(obs)
    if status.state is not None and status.state.terminal:
        return finalize(obs, cleanup.terminal(obs))
    if job.deleting:
        return Plan(status=status, changed=False)
    if job.spec is None:
        draft = Draft(State.FAILED, Reason.INVALID_SPEC, job.spec_error or "spec is invalid")
    elif job.spec.cancel:
        draft = cleanup.cancel(obs)
    else:
        accepted = accept.accept(obs, job.spec, runners)
        draft = (
            accepted if isinstance(accepted, Draft) else _progress(accepted[0]).after(accepted[1])
        )
    if draft.state.terminal:
        # The pass that ends the Job also releases what it holds, so a Job recorded as
        # terminal never needs its children looked at again (only its TTL).
        cleanup.release(obs, draft)
        cleanup.expire(obs, draft, obs.now, recorded=False)
    return finalize(obs, draft)


def _unreadable(obs: Observation) -> Plan:
    """Nothing is created, deleted or written over a status this Ferry cannot read (it would
    destroy what a newer Ferry wrote): a Warning Event says why, and the Job waits."""
    message = (
        f"status cannot be read ({obs.job.status_error}); the Job is left as it is: no "
        "attempt is started again"
    )
    # Blocked as far as this pass goes; not written (changed is False).
    status = JobStatus(state=State.BLOCKED, reason=Reason.STATUS_UNREADABLE, message=message)
    return Plan(
        status=status,
        changed=False,
        notices=(Event("Warning", Reason.STATUS_UNREADABLE, message),),
        requeue_after=UNREADABLE_RECHECK_SECONDS,
    )


def _progress(ctx: Ctx) -> Draft:
    """An accepted Job: suspended, before its first attempt, running one, or after its run."""
    st = ctx.status
    n = ctx.attempt
    if ctx.spec.suspend and st.run_outcome is None:
        return attempts.suspend(ctx)
    if n == 0:
        gate = parents.gate(ctx)
        if isinstance(gate, Draft):
            return gate
        return attempts.start(ctx, 1, State.QUEUED, Reason.POD_CREATED, "").after(gate)
    if records.retry_pending(st):
        return attempts.after_backoff(ctx)
    view = ctx.runner.view(ctx, n)
    if st.run_outcome is not None:
        return verdict.after_run(ctx, view, st.run_outcome, st.exit_code)
    if view is None:
        if st.state == State.SUSPENDED:
            return attempts.start(ctx, n + 1, State.QUEUED, Reason.RESUMED, "resumed")
        name = ctx.runner.run_name(ctx.obs.job.name, n)
        record = AttemptRecord(attempt=n, pod_name=name, outcome=Reason.INFRA_FAILURE)
        return attempts.infra_failure(ctx, f"{ctx.runner.noun} {name} disappeared").after(
            Changes(attempts=records.appended(st, record))
        )
    if st.state == State.SUSPENDED and view.live:
        stuck = run.stuck_since(ctx, view)
        if stuck is None:
            draft = Draft(State.SUSPENDED, Reason.RESUMING, f"waiting for {view.name} to stop")
            draft.requeue_after = run.until_stuck(ctx, view)
            return draft
        draft = attempts.start(ctx, n + 1, State.QUEUED, Reason.RESUMED, "resumed")
        draft.events.append(Event("Warning", Reason.POD_STUCK_TERMINATING, stuck))
        return draft
    return run.observe(ctx, view)
