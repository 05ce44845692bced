"""The archive phase of an attempt: start, watch, retry, and read the archive pod's summary.

Owns: creating the archive pod once the run has stopped (whatever ran it: the archive pod
reads the attempt's workspace; a run stuck Terminating past the grace is not waited for),
retrying it up to `FERRY_ARCHIVE_TRIES` failures, waiting out a store outage (the stager's
exit code says so: Archiving/StoreUnavailable with a backoff, the workspace kept, until the
outage deadline; tries that met it are not counted as failures), an archive pod past its
deadline, the manifest's extra fields, and turning the archive pod's termination summary into
`status.outputs`. Must not: judge the attempt (the verdict does, once the outputs are
archived).
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from typing import Any

from ferry.api import names
from ferry.api.common import ConditionStatus
from ferry.api.job import Outputs, RunOutcome, State
from ferry.api.reasons import Reason
from ferry.decisions import attempts, builders, outages, records
from ferry.decisions.conditions import truncate
from ferry.decisions.context import Ctx, find_pod
from ferry.decisions.observation import PodView, stuck_terminating, terminating_until
from ferry.decisions.plan import (
    Changes,
    CreateObject,
    DeleteObject,
    Draft,
    Event,
    format_duration,
)
from ferry.decisions.runner import RunView


def step(ctx: Ctx, view: RunView | None, outcome: RunOutcome, n: int) -> Draft:
    """Where archiving attempt `n` stands, and what to do next."""
    st = ctx.status
    if view is not None and view.live:
        return _stop_run(ctx, view, outcome, n)
    try_ = st.archive_try or 1
    pod = find_pod(ctx.obs, n, names.ROLE_ARCHIVE, try_)
    outage = outages.recorded(st, "Archive", n)
    if pod is None:
        if outage is not None and outage.counted == try_ - 1:
            return _create(ctx, outcome, n, try_, Reason.STORE_UNAVAILABLE, _again(ctx, n), view)
        return _create(ctx, outcome, n, try_, Reason.ARCHIVING, "", view)
    if pod.phase == "Succeeded":
        outputs = outputs_from(pod, builders.archive_destination(ctx.meta, ctx.spec, n, ctx.config))
        draft = Draft(
            State.ARCHIVING,
            Reason.ARCHIVED,
            "archived",
            changes=Changes(outputs=outputs, outage=None),
        )
        draft.archived = (
            ConditionStatus.TRUE,
            Reason.ARCHIVED.value,
            f"{outputs.files} file(s), {outputs.bytes} bytes at {outputs.uri}",
        )
        return draft
    lost = _workspace_lost(ctx, pod, n)
    if lost is not None:
        return lost
    if pod.deleting and pod.live:
        if stuck_terminating(pod, ctx.now, ctx.config.pod_terminating_grace_seconds):
            draft = _next_try(ctx, outcome, n, try_, pod, f"{pod.name} was deleted", view)
            draft.events.append(_stuck(ctx, pod))
            return draft
        draft = Draft(State.ARCHIVING, Reason.ARCHIVE_RETRYING, f"waiting for {pod.name} to stop")
        draft.requeue_after = _until_stuck(ctx, pod)
        return draft
    if pod.phase == "Failed":
        why = _why(ctx, pod)
        if pod.main is not None and outages.is_outage(pod.main.exit_code):
            return _unavailable(ctx, outcome, n, try_, pod, why, view)
        return _next_try(ctx, outcome, n, try_, pod, why, view)
    if outage is not None:
        return Draft(
            State.ARCHIVING,
            Reason.STORE_UNAVAILABLE,
            f"attempt {n}: trying the store at {store_endpoint(ctx)} again with pod {pod.name} "
            f"(unavailable since {outages.stamp(outage.since)}, try {outage.tries + 1})",
        )
    return Draft(State.ARCHIVING, Reason.ARCHIVING, f"archiving attempt {n} with pod {pod.name}")


def _stop_run(ctx: Ctx, view: RunView, outcome: RunOutcome, n: int) -> Draft:
    """The run must stop before its workspace is archived; one stuck Terminating past the
    grace (its node lost) is no longer waited for."""
    ended = f"app ended (exit code {view.exit_code}); " if view.app_ended else ""
    grace = ctx.config.pod_terminating_grace_seconds
    until = view.deletion_time + timedelta(seconds=grace) if view.deletion_time else None
    if until is not None and ctx.now >= until:
        draft = step(ctx, replace(view, live=False), outcome, n)
        draft.events.append(
            Event(
                "Warning",
                Reason.POD_STUCK_TERMINATING,
                f"{ctx.runner.noun} {view.name} has been Terminating since "
                f"{outages.stamp(view.deletion_time or ctx.now)} (its node may be lost); "
                "archiving without waiting for it",
            )
        )
        return draft
    draft = Draft(
        State.ARCHIVING,
        Reason.STOPPING_APP,
        f"{ended}waiting for {ctx.runner.noun} {view.name} to stop before archiving",
    )
    draft.actions += ctx.runner.stop(ctx, n)
    if until is not None:
        draft.requeue_after = max((until - ctx.now).total_seconds(), 0.0)
    return draft


def _why(ctx: Ctx, pod: PodView) -> str:
    """Why an archive pod failed, in the stager's words (its termination message)."""
    if pod.reason == "DeadlineExceeded":
        limit = ctx.config.archive_pod_deadline_seconds
        return (
            f"{pod.name} ran longer than FERRY_ARCHIVE_POD_DEADLINE_SECONDS "
            f"({format_duration(limit)}) and was stopped"
        )
    return (
        (pod.main.message.strip() if pod.main and pod.main.message else "")
        or pod.reason
        or "archive pod failed"
    )


def _next_try(
    ctx: Ctx,
    outcome: RunOutcome,
    n: int,
    try_: int,
    pod: PodView,
    why: str,
    view: RunView | None,
) -> Draft:
    """Try `try_` failed other than by an outage: another within FERRY_ARCHIVE_TRIES (tries
    that met an outage are not counted), else ArchiveFailed."""
    outage = outages.recorded(ctx.status, "Archive", n)
    failures = try_ - (outage.tries if outage is not None else 0)
    if failures < ctx.config.archive_tries:
        message = (
            f"archive try {try_} failed ({truncate(why, 300)}); "
            f"trying again ({failures + 1}/{ctx.config.archive_tries})"
        )
        return _create(ctx, outcome, n, try_ + 1, Reason.ARCHIVE_RETRYING, message, view)
    draft = Draft(
        State.FAILED,
        Reason.ARCHIVE_FAILED,
        f"attempt {n}: archiving failed {failures} time(s): {truncate(why, 512)}",
    )
    draft.archived = (ConditionStatus.FALSE, Reason.ARCHIVE_FAILED.value, draft.message)
    return draft


def _unavailable(
    ctx: Ctx,
    outcome: RunOutcome,
    n: int,
    try_: int,
    pod: PodView,
    why: str,
    view: RunView | None,
) -> Draft:
    """Try `try_` found the store unavailable: wait (Archiving/StoreUnavailable, the workspace
    kept) and try again after the backoff, until the outage deadline."""
    now = ctx.now
    began = pod.main.started_at if pod.main is not None else None
    known = outages.recorded(ctx.status, "Archive", n)
    seen = outages.count(known, "Archive", n, try_, began, ctx.config, now)
    endpoint = store_endpoint(ctx)
    if seen.expired(ctx.config, now):
        message = (
            f"attempt {n}: the store at {endpoint} was "
            f"{outages.gave_up(seen.outage, ctx.config, now)}; its outputs were not archived "
            f"({truncate(why, 400)})"
        )
        draft = Draft(State.FAILED, Reason.ARCHIVE_FAILED, message)
        draft.changes = Changes(outage=seen.outage)
        draft.archived = (ConditionStatus.FALSE, Reason.ARCHIVE_FAILED.value, message)
        return draft
    if seen.left(now) > 0:
        message = (
            f"attempt {n}: the store at {endpoint} is "
            f"{outages.waiting(seen.outage, ctx.config, f'archive try {try_ + 1}')}: "
            f"{truncate(why, 400)}"
        )
        draft = Draft(
            State.ARCHIVING, Reason.STORE_UNAVAILABLE, message, changes=Changes(outage=seen.outage)
        )
        draft.requeue_after = seen.left(now)
        if seen.first:
            draft.events.append(Event("Warning", Reason.STORE_UNAVAILABLE, message))
        return draft
    draft = _create(ctx, outcome, n, try_ + 1, Reason.STORE_UNAVAILABLE, _again(ctx, n), view)
    if draft.state == State.ARCHIVING:
        # The try that met the outage is recorded; its pod is no longer needed.
        draft.actions.append(DeleteObject("Pod", pod.name, pod.uid))
    return draft


def _again(ctx: Ctx, n: int) -> str:
    outage = outages.recorded(ctx.status, "Archive", n)
    since = f" (unavailable since {outages.stamp(outage.since)})" if outage else ""
    return f"attempt {n}: trying the store at {store_endpoint(ctx)} again{since}"


def _stuck(ctx: Ctx, pod: PodView) -> Event:
    return Event(
        "Warning",
        Reason.POD_STUCK_TERMINATING,
        f"pod {pod.name} has been Terminating since "
        f"{outages.stamp(pod.deletion_time or ctx.now)} (its node may be lost); no longer "
        "waited for: the next archive try is made",
    )


def _until_stuck(ctx: Ctx, pod: PodView) -> float | None:
    until = terminating_until(pod, ctx.config.pod_terminating_grace_seconds)
    return max((until - ctx.now).total_seconds(), 0.0) if until is not None else None


def store_endpoint(ctx: Ctx) -> str:
    """The endpoint of the store the attempt is archived to."""
    archive = ctx.spec.archive
    location = archive.s3 if archive else None
    return (location.endpoint if location else None) or ctx.config.default_s3_endpoint


def _workspace_lost(ctx: Ctx, pod: PodView, n: int) -> Draft | None:
    """The attempt's workspace was deleted under the Job (the archive pod cannot be scheduled
    without it, and would wait forever): the outputs are gone, said plainly."""
    workspace = names.workspace_name(ctx.obs.job.name, n)
    said = pod.schedule_message
    gone = (
        f'persistentvolumeclaim "{workspace}" {w}' in said
        for w in ("not found", "is being deleted")
    )
    if pod.scheduled or not any(gone):
        return None
    message = (
        f"attempt {n}: its workspace PersistentVolumeClaim {workspace} was deleted before its "
        "outputs were archived; they are lost"
    )
    draft = Draft(State.FAILED, Reason.ARCHIVE_FAILED, message)
    draft.archived = (ConditionStatus.FALSE, Reason.ARCHIVE_FAILED.value, message)
    return draft


def _create(
    ctx: Ctx,
    outcome: RunOutcome,
    n: int,
    try_: int,
    reason: Reason,
    message: str,
    view: RunView | None,
) -> Draft:
    """Archive try `try_` of attempt `n`: its pod (the one place it is built)."""
    if ctx.app is None:
        return Draft(
            State.BLOCKED,
            Reason.APP_NOT_FOUND,
            f"App {ctx.spec.app_ref.name!r} not found; needed to archive",
        )
    manifest = builders.archive_pod(
        ctx.meta, ctx.app, ctx.spec, n, try_, manifest_extra(ctx, outcome, view), ctx.config
    )
    taken = attempts.name_taken(ctx, [manifest])
    if taken is not None:
        return taken
    name = manifest["metadata"]["name"]
    return Draft(
        State.ARCHIVING,
        reason,
        message or f"archiving attempt {n} with pod {name}",
        changes=Changes(archive_try=try_),
        actions=[CreateObject(manifest)],
    )


def manifest_extra(ctx: Ctx, outcome: RunOutcome, view: RunView | None) -> dict[str, Any]:
    """What the manifest says besides the files: the Job, the App as accepted (without its
    spec: its hash names it), the parameters, the outcome, and where and what the run ran."""
    job = ctx.obs.job
    st = ctx.status
    snapshot = st.app.wire() if st.app else {"name": ctx.spec.app_ref.name}
    snapshot.pop("spec", None)
    record = records.record_of(st, ctx.attempt)
    if record is None and view is not None:
        record = records.attempt_record(
            ctx.attempt, view, outcome.value, view.exit_code, view.started_at, view.finished_at
        )
    return {
        "job": {
            "name": job.name,
            "namespace": job.namespace,
            "uid": job.uid,
            "attempt": ctx.attempt,
        },
        "app": snapshot,
        "parameters": dict(sorted(ctx.params.items())),
        "outcome": outcome.value,
        "run": record.wire() if record is not None else {},
    }


def outputs_from(pod: PodView, uri: str) -> Outputs:
    """The archive summary the stager wrote as its termination message."""
    data: dict[str, Any] = {}
    if pod.main is not None and pod.main.message:
        try:
            loaded = json.loads(pod.main.message)
            if isinstance(loaded, dict):
                data = loaded
        except ValueError:
            data = {}
    files = data.get("files")
    size = data.get("bytes")
    return Outputs(
        uri=str(data.get("uri") or uri),
        files=files if isinstance(files, int) else 0,
        bytes=size if isinstance(size, int) else 0,
        manifest=str(data.get("manifest") or f"{uri}{names.ARCHIVE_MANIFEST}"),
    )
