"""The archive step of an attempt: start, watch, retry, and read the archive pod's summary.

Owns: creating the archive pod once the run pod has stopped, retrying it up to the
configured number of tries, and turning its termination summary into `status.outputs`.
Must not: judge the attempt (the lifecycle does, once the outputs are archived).
"""

from __future__ import annotations

import json
from typing import Any

from ferry.api.app import AppSpec, Scalar
from ferry.api.common import ConditionStatus
from ferry.api.job import JobSpec, Outputs, RunOutcome, State
from ferry.decisions import builders
from ferry.decisions.conditions import truncate
from ferry.decisions.observation import Observation, PodView
from ferry.decisions.plan import CreateObject, DeleteObject, Draft, find_pod, job_meta


def archive_step(
    obs: Observation,
    spec: JobSpec,
    app: AppSpec | None,
    params: dict[str, Scalar],
    run: PodView | None,
    outcome: RunOutcome,
    n: int,
) -> Draft:
    st = obs.job.status
    if run is not None and run.live:
        draft = Draft(
            State.ARCHIVING, "StoppingApp", f"waiting for pod {run.name} to stop before archiving"
        )
        if not run.deleting:
            draft.actions.append(DeleteObject("Pod", run.name))
        return draft
    try_ = st.archive_try or 1
    pod = find_pod(obs, n, "archive", try_)
    if pod is None:
        if app is None:
            return Draft(
                State.BLOCKED,
                "AppNotFound",
                f"App {spec.app_ref.name!r} not found; needed to archive",
            )
        meta = job_meta(obs)
        extra = manifest_extra(obs, app, params, outcome)
        manifest = builders.archive_pod(meta, app, spec, n, try_, extra, obs.config)
        draft = Draft(
            State.ARCHIVING,
            "Archiving",
            f"archiving attempt {n} with pod {manifest['metadata']['name']}",
        )
        draft.actions.append(CreateObject(manifest))
        draft.updates["archive_try"] = try_
        return draft
    if pod.phase == "Succeeded":
        draft = Draft(State.ARCHIVING, "Archived", "archived")
        outputs = outputs_from(
            pod,
            builders.archive_destination(job_meta(obs), spec, n, obs.config),
        )
        draft.updates["outputs"] = outputs
        draft.archived = (
            ConditionStatus.TRUE,
            "Archived",
            f"{outputs.files} file(s), {outputs.bytes} bytes at {outputs.uri}",
        )
        return draft
    if pod.phase == "Failed" or (pod.deleting and pod.live):
        why = (
            (pod.main.message.strip() if pod.main and pod.main.message else "")
            or pod.reason
            or "archive pod failed"
        )
        if pod.deleting and pod.live:
            return Draft(State.ARCHIVING, "ArchiveRetrying", f"waiting for {pod.name} to stop")
        if try_ < obs.config.archive_tries:
            return archive_again(obs, spec, app, params, outcome, n, try_ + 1, why)
        draft = Draft(
            State.FAILED,
            "ArchiveFailed",
            f"attempt {n}: archiving failed {try_} time(s): {truncate(why, 512)}",
        )
        draft.archived = (ConditionStatus.FALSE, "ArchiveFailed", draft.message)
        return draft
    return Draft(State.ARCHIVING, "Archiving", f"archiving attempt {n} with pod {pod.name}")


def archive_again(
    obs: Observation,
    spec: JobSpec,
    app: AppSpec | None,
    params: dict[str, Scalar],
    outcome: RunOutcome,
    n: int,
    try_: int,
    why: str,
) -> Draft:
    if app is None:
        return Draft(
            State.BLOCKED, "AppNotFound", f"App {spec.app_ref.name!r} not found; needed to archive"
        )
    meta = job_meta(obs)
    manifest = builders.archive_pod(
        meta, app, spec, n, try_, manifest_extra(obs, app, params, outcome), obs.config
    )
    draft = Draft(
        State.ARCHIVING,
        "ArchiveRetrying",
        f"archive try {try_ - 1} failed ({truncate(why, 300)}); "
        f"trying again ({try_}/{obs.config.archive_tries})",
    )
    draft.actions.append(CreateObject(manifest))
    draft.updates["archive_try"] = try_
    return draft


def manifest_extra(
    obs: Observation, app: AppSpec, params: dict[str, Scalar], outcome: RunOutcome
) -> dict[str, Any]:
    st = obs.job.status
    snapshot = (
        st.app.wire() if st.app else {"name": obs.job.spec.app_ref.name if obs.job.spec else ""}
    )
    return {
        "job": {
            "name": obs.job.name,
            "namespace": obs.job.namespace,
            "uid": obs.job.uid,
            "attempt": st.attempt or 0,
        },
        "app": snapshot,
        "parameters": dict(sorted(params.items())),
        "outcome": outcome.value,
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
        manifest=str(data.get("manifest") or f"{uri}manifest.json"),
    )
