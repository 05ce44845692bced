"""The archive phase of an attempt: start, watch, retry, and read the archive pod's summary.

Owns: creating the archive pod once the run has stopped (whatever ran it: the archive pod
reads the attempt's workspace), retrying it up to the configured number of tries, the
manifest's extra fields, and turning the archive pod's termination summary into
`status.outputs`. Must not: judge the attempt (the verdict does, once the outputs are
archived).
"""

from __future__ import annotations

import json
from typing import Any

from ferry.api import names
from ferry.api.common import ConditionStatus
from ferry.api.job import Outputs, RunOutcome, State
from ferry.api.reasons import Reason
from ferry.decisions import attempts, builders, records
from ferry.decisions.conditions import truncate
from ferry.decisions.context import Ctx, find_pod
from ferry.decisions.observation import PodView
from ferry.decisions.plan import Changes, CreateObject, Draft
from ferry.decisions.runner import RunView


def step(ctx: Ctx, view: RunView | None, outcome: RunOutcome, n: int) -> Draft:
    """Where archiving attempt `n` stands, and what to do next."""
    st = ctx.status
    if view is not None and view.live:
        ended = f"app ended (exit code {view.exit_code}); " if view.app_ended else ""
        draft = Draft(
            State.ARCHIVING,
            Reason.STOPPING_APP,
            f"{ended}waiting for {ctx.runner.noun} {view.name} to stop before archiving",
        )
        draft.actions += ctx.runner.stop(ctx, n)
        return draft
    try_ = st.archive_try or 1
    pod = find_pod(ctx.obs, n, names.ROLE_ARCHIVE, try_)
    if pod is None:
        return _create(ctx, outcome, n, try_, Reason.ARCHIVING, "", view)
    if pod.phase == "Succeeded":
        outputs = outputs_from(pod, builders.archive_destination(ctx.meta, ctx.spec, n, ctx.config))
        draft = Draft(
            State.ARCHIVING, Reason.ARCHIVED, "archived", changes=Changes(outputs=outputs)
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
    if pod.phase == "Failed" or (pod.deleting and pod.live):
        why = (
            (pod.main.message.strip() if pod.main and pod.main.message else "")
            or pod.reason
            or "archive pod failed"
        )
        if pod.deleting and pod.live:
            return Draft(
                State.ARCHIVING, Reason.ARCHIVE_RETRYING, f"waiting for {pod.name} to stop"
            )
        if try_ < ctx.config.archive_tries:
            message = (
                f"archive try {try_} failed ({truncate(why, 300)}); "
                f"trying again ({try_ + 1}/{ctx.config.archive_tries})"
            )
            return _create(ctx, outcome, n, try_ + 1, Reason.ARCHIVE_RETRYING, message, view)
        draft = Draft(
            State.FAILED,
            Reason.ARCHIVE_FAILED,
            f"attempt {n}: archiving failed {try_} time(s): {truncate(why, 512)}",
        )
        draft.archived = (ConditionStatus.FALSE, Reason.ARCHIVE_FAILED.value, draft.message)
        return draft
    return Draft(State.ARCHIVING, Reason.ARCHIVING, f"archiving attempt {n} with pod {pod.name}")


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
