"""Turning objects as the apiserver returns them into the views decisions work on.

Owns: parsing Job and App dictionaries into `JobView` / `AppView` / `ParentView`, reporting
every validation error with its field path (`spec.parameters.steps: ...`). Must not: do I/O.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from ferry.api.app import AppSpec
from ferry.api.common import S3Location, parse_time
from ferry.api.job import TERMINAL_STATES, JobSpec, JobStatus, State
from ferry.api.reasons import Reason
from ferry.decisions.observation import AppView, JobView, ParentView


def format_errors(exc: ValidationError, prefix: str) -> str:
    """One line per error: `spec.inputs[0].source: message`."""
    lines = []
    for err in exc.errors():
        path = prefix
        for part in err["loc"]:
            if isinstance(part, int):
                path += f"[{part}]"
            elif str(part).startswith(("function-after", "function-before")):
                continue
            else:
                path += f".{part}"
        message = str(err["msg"]).removeprefix("Value error, ")
        lines.append(f"{path}: {message}")
    return "; ".join(lines)


EPOCH = datetime.fromtimestamp(0, UTC)


def job_view(obj: Mapping[str, Any]) -> JobView:
    meta = obj.get("metadata") or {}
    spec: JobSpec | None = None
    error = ""
    try:
        spec = JobSpec.model_validate(obj.get("spec") or {})
    except ValidationError as exc:
        error = format_errors(exc, "spec")
    status_error = ""
    try:
        status = JobStatus.model_validate(obj.get("status") or {})
    except ValidationError as exc:
        # A status Ferry cannot read (written by a newer Ferry before a rollback, or by
        # someone else) is never taken as a fresh start: the Job would run again.
        status = JobStatus()
        status_error = format_errors(exc, "status")
    return JobView(
        name=str(meta.get("name", "")),
        namespace=str(meta.get("namespace", "")),
        uid=str(meta.get("uid", "")),
        generation=int(meta.get("generation") or 0),
        creation_time=parse_time(meta.get("creationTimestamp")) or EPOCH,
        spec=spec,
        status=status,
        spec_error=error,
        status_error=status_error,
        deleting=bool(meta.get("deletionTimestamp")),
        labels=dict(meta.get("labels") or {}),
        annotations=dict(meta.get("annotations") or {}),
    )


def status_of(wire: Mapping[str, Any]) -> JobStatus:
    """A Job's status as written (an unreadable one as none: nothing is held over it)."""
    try:
        return JobStatus.model_validate(wire)
    except ValidationError:
        return JobStatus()


def app_spec_hash(spec: Mapping[str, Any]) -> str:
    """A stable short hash of an App's spec as stored."""
    text = json.dumps(spec, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def app_view(obj: Mapping[str, Any]) -> AppView:
    meta = obj.get("metadata") or {}
    raw = obj.get("spec") or {}
    try:
        spec: AppSpec | None = AppSpec.model_validate(raw)
        error = ""
    except ValidationError as exc:
        spec, error = None, format_errors(exc, "spec")
    return AppView(
        name=str(meta.get("name", "")), spec=spec, spec_hash=app_spec_hash(raw), error=error
    )


def parent_view(obj: Mapping[str, Any]) -> ParentView:
    meta = obj.get("metadata") or {}
    status = obj.get("status") or {}
    raw_state = status.get("state")
    try:
        state = State(raw_state) if raw_state else None
    except ValueError:
        state = None
    outputs = status.get("outputs") or {}
    store: S3Location | None = None
    archive_s3 = ((obj.get("spec") or {}).get("archive") or {}).get("s3")
    if archive_s3:
        keep = ("bucket", "endpoint", "region", "secretRef")
        try:
            store = S3Location.model_validate({k: v for k, v in archive_s3.items() if k in keep})
        except ValidationError:
            store = None
    return ParentView(
        name=str(meta.get("name", "")),
        state=state,
        reason=str(status.get("reason") or ""),
        outputs_uri=str(outputs.get("uri") or ""),
        store=store,
        waits_on=waits_on(obj),
    )


def waits_on(obj: Mapping[str, Any]) -> tuple[str, ...]:
    """The parents a Job still waits for: those in spec.parents not remembered as Finished
    (status.parents), while it has not started. Empty once it started or ended, except for a
    Job that failed in a dependency cycle: the other Jobs of the cycle still find it there."""
    status = obj.get("status") or {}
    spec = obj.get("spec") or {}
    if not isinstance(status, Mapping) or not isinstance(spec, Mapping) or status.get("attempt"):
        return ()
    state = status.get("state")
    terminal = {s.value for s in TERMINAL_STATES}
    if state in terminal and status.get("reason") != Reason.DEPENDENCY_CYCLE:
        return ()
    parents = spec.get("parents")
    if not isinstance(parents, list):
        return ()
    records = status.get("parents")
    seen = {
        str(r.get("name"))
        for r in (records if isinstance(records, list) else [])
        if isinstance(r, Mapping)
    }
    return tuple(str(p) for p in parents if str(p) not in seen)
