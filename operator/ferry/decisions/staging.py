"""Staging an attempt's inputs: progress, its deadline, failures, and outages waited out.

Owns: what a run in its staging stage means for the Job (StagingInputs, then StartingApp),
the staging deadline (`FERRY_STAGING_DEADLINE_SECONDS` from when the first staging container
started: a slow or hung input server never holds a Job in StagingInputs for ever), a staging
failure (StageInFailed, at once: a 404, a wrong sha256, a refused address), and a source that
is unavailable (the stager's exit code says so): the Job stays StagingInputs with reason
StoreUnavailable (S3) or InputUnavailable (HTTP), and after the backoff a new attempt stages
again (not counted against `retry.infraFailures`; the failed attempt's pod and workspace are
deleted, its app never ran), until the outage deadline; then StageInFailed. Must not: read
pods (the runner does) or judge a run that ended (`run` and `verdict` do).
"""

from __future__ import annotations

import re
from datetime import timedelta

from ferry.api import names
from ferry.api.common import ConditionStatus
from ferry.api.job import JobInput, State
from ferry.api.reasons import Reason
from ferry.decisions import attempts, outages
from ferry.decisions.context import Ctx
from ferry.decisions.plan import Action, Changes, DeleteObject, Draft, Event, format_duration
from ferry.decisions.runner import RunView

BLOCKED_RECHECK_SECONDS = 30.0
STAGED = (ConditionStatus.TRUE, Reason.STAGED.value, "all inputs staged")
#: The stager names the input first ("input 'model': ..."); a staging view names its
#: container ("stage-model").
_INPUT = re.compile(r"^input '([^']+)'|^" + re.escape(names.STAGE_CONTAINER_PREFIX) + r"(\S+)$")


def staging(ctx: Ctx, view: RunView) -> Draft:
    """The run is staging its inputs (or, all staged, starting the app)."""
    if view.inputs_staged:
        draft = Draft(
            State.STAGING_INPUTS,
            Reason.STARTING_APP,
            f"inputs staged; starting the app in {view.name}",
        )
        draft.inputs_staged = STAGED
        return staged(ctx, draft)
    limit = ctx.config.staging_deadline_seconds
    deadline = view.staging_since + timedelta(seconds=limit) if view.staging_since else None
    if deadline is not None and ctx.now >= deadline:
        return failed(
            ctx,
            f"inputs not staged within FERRY_STAGING_DEADLINE_SECONDS ({format_duration(limit)}): "
            f"{view.message or 'staging'} still running in {view.name}",
        )
    outage = outages.recorded(ctx.status, "StageIn")
    if outage is not None:
        draft = Draft(
            State.STAGING_INPUTS,
            _reason(ctx, view.message),
            f"staging again: running {view.message} in {view.name} (a source was unavailable "
            f"since {outages.stamp(outage.since)}, try {outage.tries + 1})",
        )
    else:
        draft = Draft(
            State.STAGING_INPUTS, Reason.STAGING_INPUTS, f"running {view.message} in {view.name}"
        )
    if view.look_again_at is not None:  # look into it then if it has not started by then
        left = (view.look_again_at - ctx.now).total_seconds()
        draft.requeue_after = left if left > 0 else BLOCKED_RECHECK_SECONDS
    if deadline is not None:
        left = (deadline - ctx.now).total_seconds()
        draft.requeue_after = min(draft.requeue_after or left, left)
    return draft


def staged(ctx: Ctx, draft: Draft) -> Draft:
    """Every input was staged: an outage met while staging is over."""
    if outages.recorded(ctx.status, "StageIn") is not None and "outage" not in draft.changes.set():
        draft.changes = draft.changes.then(Changes(outage=None))
    return draft


def failed(ctx: Ctx, message: str) -> Draft:
    """Staging failed for good: StageInFailed, the run stopped."""
    draft = Draft(State.FAILED, Reason.STAGE_IN_FAILED, message)
    draft.inputs_staged = (ConditionStatus.FALSE, Reason.STAGE_IN_FAILED.value, message)
    draft.actions += ctx.runner.stop(ctx, ctx.attempt)
    return draft


def unavailable(ctx: Ctx, view: RunView) -> Draft:
    """An input's source was unavailable: wait, then stage again in a new attempt, until the
    outage deadline."""
    now = ctx.now
    n = ctx.attempt
    reason = _reason(ctx, view.message)
    what = _source(ctx, view.message)
    known = outages.recorded(ctx.status, "StageIn")
    seen = outages.count(known, "StageIn", n, n, None, ctx.config, now)
    if seen.expired(ctx.config, now):
        draft = failed(
            ctx,
            f"{view.message}; {what} was {outages.gave_up(seen.outage, ctx.config, now)}",
        )
        draft.changes = Changes(outage=seen.outage)
        return draft
    if seen.left(now) > 0:
        message = (
            f"{view.message}; {what} is "
            f"{outages.waiting(seen.outage, ctx.config, f'attempt {n + 1}')}"
        )
        draft = Draft(State.STAGING_INPUTS, reason, message, changes=Changes(outage=seen.outage))
        draft.requeue_after = seen.left(now)
        if seen.first:
            draft.events.append(Event("Warning", reason, message))
        return draft
    message = (
        f"attempt {n}: {view.message}; staging again in attempt {n + 1} (unavailable since "
        f"{outages.stamp(seen.outage.since)})"
    )
    draft = attempts.start(ctx, n + 1, State.STAGING_INPUTS, reason, message)
    if draft.state == State.STAGING_INPUTS:
        draft.actions += release(ctx, n)
    return draft


def release(ctx: Ctx, n: int) -> list[Action]:
    """Attempt `n`'s pods and workspace, once a new attempt stands in for it: its app never
    ran, so nothing of it is kept (deleted after the new attempt is recorded)."""
    out: list[Action] = [
        DeleteObject("Pod", p.name, p.uid)
        for p in ctx.obs.pods
        if p.attempt == n and p.role == names.ROLE_RUN and not p.deleting
    ]
    if ctx.spec.uses_workspace:
        out.append(DeleteObject("PersistentVolumeClaim", names.workspace_name(ctx.obs.job.name, n)))
    return out


def _input(ctx: Ctx, message: str) -> JobInput | None:
    """The input the stager's message names."""
    found = _INPUT.match(message)
    if found is None:
        return None
    name = found.group(1) or found.group(2)
    return next((i for i in ctx.spec.inputs if i.name == name), None)


def _reason(ctx: Ctx, message: str) -> Reason:
    """InputUnavailable for an HTTP input, StoreUnavailable for an S3 one (or another Job's
    outputs); the input is the one the stager's message names. Without one named, the reason
    already recorded stays."""
    item = _input(ctx, message)
    if item is None:
        recorded = ctx.status.reason
        return (
            Reason.INPUT_UNAVAILABLE
            if recorded == Reason.INPUT_UNAVAILABLE
            else (Reason.STORE_UNAVAILABLE)
        )
    return Reason.INPUT_UNAVAILABLE if item.source.http is not None else Reason.STORE_UNAVAILABLE


def _source(ctx: Ctx, message: str) -> str:
    """ "its store (http://minio:9000)" or "its server"."""
    item = _input(ctx, message)
    if item is None or item.source.http is not None:
        return "its server" if item is not None else "its source"
    location = item.source.s3
    endpoint = (location.endpoint if location else None) or ctx.config.default_s3_endpoint
    return f"its store ({endpoint})"
