"""The Job lifecycle: one observation in, one plan out.

Owns: deciding a Job's state, reason, message, conditions, history and the actions to take
(create or delete children, delete the Job) from an `Observation` alone. The same observation
always gives the same plan, so a restarted operator recomputes what it had. Terminal states
are absorbing. Must not: do I/O, read the clock, or keep state between calls.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from ferry.api.app import AppSpec, Scalar
from ferry.api.common import ConditionStatus
from ferry.api.job import (
    MAX_HISTORY,
    AppSnapshot,
    ConditionType,
    HistoryEntry,
    JobSpec,
    JobStatus,
    Outputs,
    RetryCounts,
    RunOutcome,
    State,
)
from ferry.decisions import builders, inputs, parameters, templating
from ferry.decisions.conditions import set_condition, truncate
from ferry.decisions.observation import Observation, PodView

Manifest = dict[str, Any]


@dataclass(frozen=True)
class CreateObject:
    """Create this object; AlreadyExists means it was made before and is fine."""

    manifest: Manifest

    @property
    def name(self) -> str:
        return str(self.manifest["metadata"]["name"])

    @property
    def kind(self) -> str:
        return str(self.manifest["kind"])


@dataclass(frozen=True)
class DeleteObject:
    """Delete this child; NotFound means it is already gone and is fine."""

    kind: Literal["Pod", "PersistentVolumeClaim"]
    name: str


@dataclass(frozen=True)
class DeleteJob:
    """Delete the Job itself (ttlSecondsAfterFinished elapsed)."""


Action = CreateObject | DeleteObject | DeleteJob


@dataclass(frozen=True)
class Event:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True)
class Plan:
    """What to do and what to record."""

    status: JobStatus
    changed: bool
    actions: tuple[Action, ...] = ()
    events: tuple[Event, ...] = ()
    requeue_after: float | None = None

    @property
    def state(self) -> State:
        assert self.status.state is not None
        return self.status.state


CondValue = tuple[ConditionStatus, str, str]

#: Reasons a Job is not (yet) accepted; Accepted is False with them.
NOT_ACCEPTED = frozenset({"AppNotFound", "AppInvalid", "InvalidSpec", "MPIOperatorMissing"})
#: Container waiting reasons that need a user's fix but recover by themselves afterwards.
CONFIG_WAITING = frozenset({"CreateContainerConfigError", "CreateContainerError"})
IMAGE_WAITING = frozenset(
    {"ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName"}
)
WARNING_STATES = frozenset(
    {State.FAILED, State.TIMED_OUT, State.BLOCKED, State.RETRYING, State.CANCELLED}
)
BLOCKED_RECHECK_SECONDS = 30.0


@dataclass
class _Draft:
    state: State
    reason: str
    message: str
    updates: dict[str, Any] = field(default_factory=dict)
    actions: list[Action] = field(default_factory=list)
    requeue_after: float | None = None
    inputs_staged: CondValue | None = None
    archived: CondValue | None = None


def _format_duration(seconds: float) -> str:
    total = max(0, int(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def spec_hash(spec: AppSpec) -> str:
    """A stable short hash of an App spec."""
    import hashlib

    text = json.dumps(spec.wire(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _meta(obs: Observation) -> builders.JobMeta:
    job = obs.job
    return builders.JobMeta(job.name, job.namespace, job.uid, job.labels, job.annotations)


# --------------------------------------------------------------------------- public entry


def decide(obs: Observation) -> Plan:
    """The plan for one observation of a Job."""
    job = obs.job
    status = job.status
    if status.state is not None and status.state.terminal:
        return _finalize(obs, _terminal(obs))
    if job.deleting:
        return Plan(status=status, changed=False)
    if job.spec is None:
        draft = _Draft(State.FAILED, "InvalidSpec", job.spec_error or "spec is invalid")
    else:
        draft = _active(obs, job.spec)
    if draft.state.terminal:
        # The pass that ends the Job also releases what it holds, so a Job recorded as
        # terminal never needs its children looked at again (only its TTL).
        _release(obs, draft)
        _expire(obs, draft, obs.now)
    return _finalize(obs, draft)


# --------------------------------------------------------------------------- terminal


def _terminal(obs: Observation) -> _Draft:
    st = obs.job.status
    assert st.state is not None
    draft = _Draft(st.state, st.reason or st.state.value, st.message or "")
    _release(obs, draft)
    if st.completion_time is not None:
        _expire(obs, draft, st.completion_time)
    return draft


def _release(obs: Observation, draft: _Draft) -> None:
    """Delete the Job's pods and workspaces.

    Finished pods go too: a pod that mounts a workspace, even one that has ended, keeps the
    PVC's `kubernetes.io/pvc-protection` finalizer, so the workspace (and its volume) would
    stay Terminating until the Job itself is deleted. The app's output is archived
    (logs/app.log) before a Job ends.

    Workspaces come first: a pass cut short then leaves pods behind, whose watch events bring
    the Job back for another release, never a workspace nobody looks at again."""
    targeted = {a.name for a in draft.actions if isinstance(a, DeleteObject)}
    workspaces: list[Action] = [DeleteObject("PersistentVolumeClaim", p) for p in sorted(obs.pvcs)]
    draft.actions[:0] = workspaces
    # Without a workspace nothing is pinned: ended pods stay for `kubectl logs`.
    pinning = obs.job.spec is None or obs.job.spec.uses_workspace
    for pod in obs.pods:
        if not pod.deleting and pod.name not in targeted and (pod.live or pinning):
            draft.actions.append(DeleteObject("Pod", pod.name))


def _expire(obs: Observation, draft: _Draft, ended: datetime) -> None:
    """ttlSecondsAfterFinished: delete the Job when due, else come back then."""
    spec = obs.job.spec
    if spec is None or spec.ttl_seconds_after_finished is None:
        return
    due = ended + timedelta(seconds=spec.ttl_seconds_after_finished)
    if obs.now >= due:
        draft.actions.append(DeleteJob())
    else:
        draft.requeue_after = (due - obs.now).total_seconds()


# --------------------------------------------------------------------------- active


def _active(obs: Observation, spec: JobSpec) -> _Draft:
    live = [p for p in obs.pods if p.live]
    if spec.cancel:
        if live:
            draft = _Draft(State.CANCELLING, "CancelRequested", f"stopping {len(live)} pod(s)")
            draft.actions += [DeleteObject("Pod", p.name) for p in live if not p.deleting]
            return draft
        return _Draft(State.CANCELLED, "Cancelled", "cancelled through spec.cancel")

    accepted = _accept(obs, spec)
    if isinstance(accepted, _Draft):
        return accepted
    app, params, updates = accepted
    draft = _progress(obs, spec, app, params, live)
    draft.updates = {**updates, **draft.updates}
    return draft


def _accept(
    obs: Observation, spec: JobSpec
) -> _Draft | tuple[AppSpec | None, dict[str, Scalar], dict[str, Any]]:
    """Resolve the App and the parameters; a Draft when the Job cannot go on."""
    st = obs.job.status
    app_view = obs.app
    name = spec.app_ref.name
    ns = obs.job.namespace
    if app_view is None or app_view.spec is None:
        if st.app is not None and app_view is None:
            # Accepted before; the App is only needed again to build a pod.
            return None, {}, {}
        if app_view is None:
            return _Draft(
                State.BLOCKED, "AppNotFound", f"App {name!r} not found in namespace {ns!r}"
            )
        return _Draft(State.BLOCKED, "AppInvalid", f"App {name!r} is not usable: {app_view.error}")
    app = app_view.spec
    problems = parameters.validate_app(app)
    if problems:
        return _Draft(
            State.BLOCKED, "AppInvalid", f"App {name!r} is not usable: " + "; ".join(problems)
        )
    if app.runtime.type == "MPI" and not obs.mpi_available:
        return _Draft(
            State.BLOCKED,
            "MPIOperatorMissing",
            f"App {name!r} runs as MPI but the MPIJob CRD (kubeflow.org/v2beta1) is not installed",
        )
    values, errors = parameters.resolve(app, spec)
    if not errors:
        errors = _template_errors(obs, app, spec, values)
    if errors:
        if st.app is None:
            return _Draft(State.FAILED, "InvalidSpec", "; ".join(errors))
        # The App changed under an accepted Job in a way this Job no longer fits.
        return _Draft(State.BLOCKED, "AppInvalid", f"App {name!r} changed: " + "; ".join(errors))
    updates: dict[str, Any] = {}
    if st.app is None:
        updates["app"] = AppSnapshot(
            name=name, version=app.version, image=app.image, spec_hash=app_view.spec_hash
        )
    return app, values, updates


def _template_errors(
    obs: Observation, app: AppSpec, spec: JobSpec, values: dict[str, Scalar]
) -> list[str]:
    meta = _meta(obs)
    ctx = builders.template_context(meta, app, spec, values, 1)
    errors = []
    fields = [("spec.command", c) for c in app.command or []]
    fields += [("spec.args", a) for a in app.args] + [
        (f"spec.env[{e.name}]", e.value) for e in app.env
    ]
    for path, text in fields:
        try:
            templating.render(text, ctx)
        except templating.TemplateError as exc:
            errors.append(f"App {path}: {exc}")
    return errors


def _progress(
    obs: Observation,
    spec: JobSpec,
    app: AppSpec | None,
    params: dict[str, Scalar],
    live: list[PodView],
) -> _Draft:
    st = obs.job.status
    n = st.attempt or 0
    previous = st.state

    if spec.suspend and st.run_outcome is None:
        current = [p for p in live if p.attempt == n]
        draft = _Draft(State.SUSPENDED, "Suspended", "spec.suspend is true")
        if current:
            draft.message = f"spec.suspend is true; stopping {', '.join(p.name for p in current)}"
            draft.actions += [DeleteObject("Pod", p.name) for p in current if not p.deleting]
        return draft

    if n == 0:
        waiting = _parents(obs, spec)
        if waiting is not None:
            return waiting
        return _start(obs, spec, app, params, 1, State.QUEUED, "PodCreated", "")

    run = _pod(obs, n, "run")
    outcome = st.run_outcome
    if outcome is None:
        if run is None:
            if previous == State.SUSPENDED:
                return _start(obs, spec, app, params, n + 1, State.QUEUED, "Resumed", "resumed")
            return _infra_failure(
                obs, spec, app, params, f"pod {builders.run_pod_name(obs.job.name, n)} disappeared"
            )
        if previous == State.SUSPENDED and run.live:
            return _Draft(State.SUSPENDED, "Resuming", f"waiting for pod {run.name} to stop")
        observed = _observe_run(obs, spec, app, params, run)
        if isinstance(observed, _Draft):
            return observed
        outcome, updates = observed
        draft = _after_run(
            obs, spec, app, params, run, outcome, updates.get("exit_code", st.exit_code)
        )
        draft.updates = {**updates, **draft.updates}
        return draft
    return _after_run(obs, spec, app, params, run, outcome, st.exit_code)


def _pod(obs: Observation, attempt: int, role: str, try_: int | None = None) -> PodView | None:
    for pod in obs.pods:
        if (
            pod.attempt == attempt
            and pod.role == role
            and (try_ is None or pod.archive_try == try_)
        ):
            return pod
    return None


def _parents(obs: Observation, spec: JobSpec) -> _Draft | None:
    waiting, failed = [], []
    for name in spec.parents:
        parent = obs.parents.get(name)
        if parent is None:
            waiting.append(f"{name} (not found)")
        elif parent.state == State.FINISHED:
            continue
        elif parent.state is not None and parent.state.terminal:
            failed.append(f"{name} ({parent.state.value}: {parent.reason})")
        else:
            waiting.append(f"{name} ({parent.state.value if parent.state else 'Pending'})")
    if failed:
        return _Draft(
            State.FAILED, "ParentFailed", "parent(s) did not finish: " + ", ".join(failed)
        )
    if waiting:
        draft = _Draft(
            State.AWAITING_PARENTS, "AwaitingParents", "waiting for " + ", ".join(waiting)
        )
        draft.requeue_after = obs.config.resync_seconds
        return draft
    return None


def _start(
    obs: Observation,
    spec: JobSpec,
    app: AppSpec | None,
    params: dict[str, Scalar],
    attempt: int,
    state: State,
    reason: str,
    message: str,
) -> _Draft:
    """Create attempt `attempt`: its workspace and its run pod."""
    if app is None:
        name = spec.app_ref.name
        return _Draft(
            State.BLOCKED,
            "AppNotFound",
            f"App {name!r} not found; needed to start attempt {attempt}",
        )
    meta = _meta(obs)
    resolved, missing = inputs.resolve_job_outputs(spec, obs.parents)
    if missing:
        return _Draft(State.FAILED, "StageInFailed", "; ".join(missing))
    try:
        pod = builders.run_pod(meta, app, spec, params, attempt, obs.config, resolved)
    except templating.TemplateError as exc:
        return _Draft(State.FAILED, "InvalidSpec", f"App template: {exc}")
    pod_name = pod["metadata"]["name"]
    draft = _Draft(state, reason, message or f"attempt {attempt}: created pod {pod_name}")
    if spec.uses_workspace:
        draft.actions.append(CreateObject(builders.workspace_pvc(meta, spec, attempt, obs.config)))
    draft.actions.append(CreateObject(pod))
    draft.updates = {
        "attempt": attempt,
        "pod_name": pod_name,
        "run_outcome": None,
        "archive_try": None,
        "exit_code": None,
        "start_time": None,
        "run_end_time": None,
        "runtime": None,
    }
    draft.inputs_staged = (ConditionStatus.UNKNOWN, "Pending", f"attempt {attempt}: not staged yet")
    draft.archived = (ConditionStatus.UNKNOWN, "Pending", f"attempt {attempt}: not archived yet")
    return draft


def _infra_failure(
    obs: Observation, spec: JobSpec, app: AppSpec | None, params: dict[str, Scalar], why: str
) -> _Draft:
    st = obs.job.status
    counts = st.retries or RetryCounts()
    budget = spec.effective_retry.infra_failures
    n = st.attempt or 0
    stale = [
        DeleteObject("Pod", p.name)
        for p in obs.pods
        if p.attempt == n and p.live and not p.deleting
    ]
    if counts.infra_failures < budget:
        used = counts.infra_failures + 1
        draft = _start(
            obs,
            spec,
            app,
            params,
            n + 1,
            State.RETRYING,
            "InfraFailure",
            f"attempt {n}: {why}; starting attempt {n + 1} (infrastructure retry {used}/{budget})",
        )
        if draft.state == State.RETRYING:  # not when the restart is Blocked (App gone)
            draft.updates["retries"] = counts.model_copy(update={"infra_failures": used})
    else:
        draft = _Draft(
            State.FAILED,
            "InfraFailed",
            f"attempt {n}: {why}; infrastructure retries exhausted ({budget})",
        )
    draft.actions = stale + draft.actions
    return draft


def _infra_reason(run: PodView) -> str | None:
    """Why the pod ended for a reason of the platform rather than of the app, if it did."""
    if run.disruption:
        return f"pod {run.name} was disrupted ({run.disruption}) {run.message}".strip()
    if run.phase == "Failed" and run.reason:
        return f"pod {run.name} failed: {run.reason} {run.message}".strip()
    return None


def _observe_run(
    obs: Observation,
    spec: JobSpec,
    app: AppSpec | None,
    params: dict[str, Scalar],
    run: PodView,
) -> _Draft | tuple[RunOutcome, dict[str, Any]]:
    """The state of a run pod that has no outcome yet, or its outcome once it has one."""
    st = obs.job.status
    infra = _infra_reason(run)
    if infra is not None:
        return _infra_failure(obs, spec, app, params, infra)
    failed_init = next(
        (c for c in run.init if c.state == "terminated" and (c.exit_code or 0) != 0), None
    )
    if failed_init is not None:
        input_name = failed_init.name.removeprefix("stage-")
        what = "setup" if failed_init.name == "ferry-setup" else f"input {input_name!r}"
        detail = failed_init.message.strip() or failed_init.reason or "staging failed"
        if not detail.startswith(f"{what}: "):  # the stager names the input itself
            detail = f"{what}: {detail}"
        draft = _Draft(
            State.FAILED,
            "StageInFailed",
            f"{detail} (exit code {failed_init.exit_code})",
        )
        draft.inputs_staged = (ConditionStatus.FALSE, "StageInFailed", draft.message)
        if run.live and not run.deleting:
            draft.actions.append(DeleteObject("Pod", run.name))
        return draft
    if run.deleting:
        return _Draft(
            st.state or State.QUEUED, "PodTerminating", f"pod {run.name} is being deleted"
        )
    for container in (*run.init, *((run.main,) if run.main else ())):
        if container.state != "waiting":
            continue
        if container.reason in CONFIG_WAITING:
            return _blocked_run(
                obs, "ConfigError", f"container {container.name}: {container.message}"
            )
        if container.reason in IMAGE_WAITING:
            return _blocked_run(
                obs,
                "ImagePullFailed",
                f"container {container.name}: {container.reason} {container.message}",
            )
    main = run.main
    if run.phase == "Pending" and not run.scheduled:
        message = run.schedule_message or f"pod {run.name} is waiting to be scheduled"
        return _Draft(
            State.QUEUED, "Unschedulable" if run.schedule_message else "PodPending", message
        )
    if run.phase in ("Pending", "Running", "Unknown") and (
        main is None or main.state != "terminated"
    ):
        return _running(obs, spec, app, run)
    if run.phase == "Succeeded" or (
        main is not None and main.state == "terminated" and main.exit_code == 0
    ):
        return RunOutcome.SUCCEEDED, _run_end(st.start_time, main, obs.now, 0)
    code = main.exit_code if main is not None and main.exit_code is not None else None
    if code is None:
        return _infra_failure(obs, spec, app, params, f"pod {run.name} failed without an exit code")
    return RunOutcome.APP_FAILED, _run_end(st.start_time, main, obs.now, code)


def _blocked_run(obs: Observation, reason: str, message: str) -> _Draft:
    draft = _Draft(State.BLOCKED, reason, message)
    draft.requeue_after = BLOCKED_RECHECK_SECONDS
    return draft


def _run_end(start: datetime | None, main: Any, now: datetime, code: int) -> dict[str, Any]:
    started = start or (main.started_at if main is not None else None)
    ended = (main.finished_at if main is not None else None) or now
    out: dict[str, Any] = {"exit_code": code, "run_end_time": ended}
    if started is not None:
        out["start_time"] = started
        out["runtime"] = _format_duration((ended - started).total_seconds())
    return out


def _max_run_seconds(spec: JobSpec, app: AppSpec | None) -> int | None:
    if spec.max_run_seconds is not None:
        return spec.max_run_seconds
    return app.max_run_seconds if app is not None else None


def _running(
    obs: Observation, spec: JobSpec, app: AppSpec | None, run: PodView
) -> _Draft | tuple[RunOutcome, dict[str, Any]]:
    st = obs.job.status
    main = run.main
    inits_done = all(c.state == "terminated" and c.exit_code == 0 for c in run.init)
    if main is None or main.state != "running":
        staging = next((c.name for c in run.init if c.state != "terminated"), None)
        if staging is None or inits_done:
            draft = _Draft(
                State.STAGING_INPUTS,
                "StartingApp",
                f"inputs staged; starting the app in {run.name}",
            )
            draft.inputs_staged = (ConditionStatus.TRUE, "Staged", "all inputs staged")
            return draft
        return _Draft(State.STAGING_INPUTS, "StagingInputs", f"running {staging} in {run.name}")
    started = st.start_time or main.started_at or obs.now
    draft = _Draft(State.RUNNING, "AppRunning", f"app running in pod {run.name}")
    draft.updates["start_time"] = started
    draft.inputs_staged = (ConditionStatus.TRUE, "Staged", "all inputs staged")
    limit = _max_run_seconds(spec, app)
    if limit is not None:
        deadline = started + timedelta(seconds=limit)
        if obs.now >= deadline:
            updates: dict[str, Any] = {
                "start_time": started,
                "run_end_time": obs.now,
                "runtime": _format_duration((obs.now - started).total_seconds()),
            }
            return RunOutcome.TIMED_OUT, updates
        draft.requeue_after = (deadline - obs.now).total_seconds()
    return draft


def _after_run(
    obs: Observation,
    spec: JobSpec,
    app: AppSpec | None,
    params: dict[str, Scalar],
    run: PodView | None,
    outcome: RunOutcome,
    exit_code: int | None,
) -> _Draft:
    """Archive the attempt if wanted, then judge it (`exit_code`: the run's, as observed)."""
    st = obs.job.status
    n = st.attempt or 0
    on_failure = spec.archive.on_failure if spec.archive else True
    wanted = spec.archiving and (outcome == RunOutcome.SUCCEEDED or on_failure)
    archived = st.condition(ConditionType.ARCHIVED.value)
    done = archived is not None and archived.status == ConditionStatus.TRUE
    base_updates: dict[str, Any] = {"run_outcome": outcome}
    if wanted and not done:
        draft = _archive(obs, spec, app, params, run, outcome, n)
        draft.updates = {**base_updates, **draft.updates}
        if draft.archived is None or draft.archived[0] != ConditionStatus.TRUE:
            return draft
        verdict = _verdict(obs, spec, app, params, outcome, n, exit_code)
        verdict.updates = {**draft.updates, **verdict.updates}
        if verdict.archived is None:  # a retry resets Archived for its new attempt
            verdict.archived = draft.archived
        return verdict
    verdict = _verdict(obs, spec, app, params, outcome, n, exit_code)
    verdict.updates = {**base_updates, **verdict.updates}
    if not wanted and verdict.archived is None:
        why = "archive.onFailure is false" if spec.archiving else "archive.enabled is false"
        verdict.archived = (ConditionStatus.FALSE, "NotArchived", why)
    if run is not None and run.live and not run.deleting:
        verdict.actions.insert(0, DeleteObject("Pod", run.name))
    return verdict


def _archive(
    obs: Observation,
    spec: JobSpec,
    app: AppSpec | None,
    params: dict[str, Scalar],
    run: PodView | None,
    outcome: RunOutcome,
    n: int,
) -> _Draft:
    st = obs.job.status
    if run is not None and run.live:
        draft = _Draft(
            State.ARCHIVING, "StoppingApp", f"waiting for pod {run.name} to stop before archiving"
        )
        if not run.deleting:
            draft.actions.append(DeleteObject("Pod", run.name))
        return draft
    try_ = st.archive_try or 1
    pod = _pod(obs, n, "archive", try_)
    if pod is None:
        if app is None:
            return _Draft(
                State.BLOCKED,
                "AppNotFound",
                f"App {spec.app_ref.name!r} not found; needed to archive",
            )
        meta = _meta(obs)
        extra = _manifest_extra(obs, app, params, outcome)
        manifest = builders.archive_pod(meta, app, spec, n, try_, extra, obs.config)
        draft = _Draft(
            State.ARCHIVING,
            "Archiving",
            f"archiving attempt {n} with pod {manifest['metadata']['name']}",
        )
        draft.actions.append(CreateObject(manifest))
        draft.updates["archive_try"] = try_
        return draft
    if pod.phase == "Succeeded":
        draft = _Draft(State.ARCHIVING, "Archived", "archived")
        outputs = _outputs(
            pod,
            builders.archive_destination(_meta(obs), spec, n, obs.config),
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
            return _Draft(State.ARCHIVING, "ArchiveRetrying", f"waiting for {pod.name} to stop")
        if try_ < obs.config.archive_tries:
            return _archive_again(obs, spec, app, params, outcome, n, try_ + 1, why)
        draft = _Draft(
            State.FAILED,
            "ArchiveFailed",
            f"attempt {n}: archiving failed {try_} time(s): {truncate(why, 512)}",
        )
        draft.archived = (ConditionStatus.FALSE, "ArchiveFailed", draft.message)
        return draft
    return _Draft(State.ARCHIVING, "Archiving", f"archiving attempt {n} with pod {pod.name}")


def _archive_again(
    obs: Observation,
    spec: JobSpec,
    app: AppSpec | None,
    params: dict[str, Scalar],
    outcome: RunOutcome,
    n: int,
    try_: int,
    why: str,
) -> _Draft:
    if app is None:
        return _Draft(
            State.BLOCKED, "AppNotFound", f"App {spec.app_ref.name!r} not found; needed to archive"
        )
    meta = _meta(obs)
    manifest = builders.archive_pod(
        meta, app, spec, n, try_, _manifest_extra(obs, app, params, outcome), obs.config
    )
    draft = _Draft(
        State.ARCHIVING,
        "ArchiveRetrying",
        f"archive try {try_ - 1} failed ({truncate(why, 300)}); "
        f"trying again ({try_}/{obs.config.archive_tries})",
    )
    draft.actions.append(CreateObject(manifest))
    draft.updates["archive_try"] = try_
    return draft


def _manifest_extra(
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


def _outputs(pod: PodView, uri: str) -> Outputs:
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


def _verdict(
    obs: Observation,
    spec: JobSpec,
    app: AppSpec | None,
    params: dict[str, Scalar],
    outcome: RunOutcome,
    n: int,
    code: int | None,
) -> _Draft:
    st = obs.job.status
    if outcome == RunOutcome.SUCCEEDED:
        return _Draft(State.FINISHED, "Succeeded", f"attempt {n} succeeded")
    if outcome == RunOutcome.TIMED_OUT:
        limit = _max_run_seconds(spec, app)
        return _Draft(
            State.TIMED_OUT,
            "MaxRunSecondsExceeded",
            f"attempt {n} ran longer than maxRunSeconds ({limit}s)",
        )
    counts = st.retries or RetryCounts()
    budget = spec.effective_retry.app_failures
    if counts.app_failures < budget:
        used = counts.app_failures + 1
        draft = _start(
            obs,
            spec,
            app,
            params,
            n + 1,
            State.RETRYING,
            "AppFailed",
            f"attempt {n}: app exited with code {code}; "
            f"starting attempt {n + 1} (app retry {used}/{budget})",
        )
        if draft.state == State.RETRYING:  # not when the restart is Blocked (App gone)
            draft.updates["retries"] = counts.model_copy(update={"app_failures": used})
        return draft
    return _Draft(State.FAILED, "AppFailed", f"attempt {n}: app exited with code {code}")


# --------------------------------------------------------------------------- finalize


def _finalize(obs: Observation, draft: _Draft) -> Plan:
    job = obs.job
    st = job.status
    now = obs.now
    updates = dict(draft.updates)
    # Exit code may have been just observed in this pass.
    exit_code = updates.get("exit_code", st.exit_code)
    message = truncate(draft.message)
    if draft.state == State.FAILED and draft.reason == "AppFailed" and "exit_code" not in updates:
        updates["exit_code"] = exit_code
    state_changed = draft.state != st.state or draft.reason != st.reason
    history = list(st.history)
    events: list[Event] = []
    if draft.state != st.state:
        history.append(
            HistoryEntry(
                state=draft.state, time=now, reason=draft.reason, message=truncate(message, 1024)
            )
        )
        history = history[-MAX_HISTORY:]
        kind: Literal["Normal", "Warning"] = (
            "Warning" if draft.state in WARNING_STATES else "Normal"
        )
        events.append(Event(kind, draft.reason, f"{draft.state.value}: {message}"))
    updates.update(
        state=draft.state,
        reason=draft.reason,
        message=message,
        observed_generation=job.generation,
        history=history,
        submit_time=st.submit_time or job.creation_time,
    )
    if draft.state.terminal and st.completion_time is None:
        updates["completion_time"] = now
    merged = st.model_copy(update=updates)
    conditions = list(merged.conditions)
    for type_, (status, reason, msg) in _conditions(merged, draft).items():
        conditions, _ = set_condition(conditions, type_, status, reason, msg, now, job.generation)
    merged = merged.model_copy(update={"conditions": conditions})
    changed = merged != st
    if changed and not state_changed and not events:
        events = []
    return Plan(
        status=merged,
        changed=changed,
        actions=tuple(draft.actions),
        events=tuple(events),
        requeue_after=draft.requeue_after,
    )


def _conditions(st: JobStatus, draft: _Draft) -> dict[str, CondValue]:
    state = draft.state
    reason = draft.reason
    message = truncate(draft.message)
    true, false, unknown = ConditionStatus.TRUE, ConditionStatus.FALSE, ConditionStatus.UNKNOWN
    out: dict[str, CondValue] = {}
    if st.app is not None:
        out[ConditionType.ACCEPTED] = (
            true,
            "Accepted",
            f"App {st.app.name} {st.app.version} ({st.app.spec_hash})".replace("  ", " "),
        )
    elif reason in NOT_ACCEPTED:
        out[ConditionType.ACCEPTED] = (false, reason, message)
    elif state == State.CANCELLED:
        out[ConditionType.ACCEPTED] = (false, "Cancelled", "cancelled before it was accepted")
    else:
        out[ConditionType.ACCEPTED] = (unknown, "Pending", "not evaluated yet")

    def keep(type_: ConditionType, new: CondValue | None) -> CondValue:
        if new is not None:
            return new
        old = st.condition(type_.value)
        if old is not None:
            return (old.status, old.reason, old.message)
        return (unknown, "Pending", "not started")

    out[ConditionType.INPUTS_STAGED] = keep(ConditionType.INPUTS_STAGED, draft.inputs_staged)
    out[ConditionType.ARCHIVED] = keep(ConditionType.ARCHIVED, draft.archived)
    if state == State.FINISHED:
        out[ConditionType.SUCCEEDED] = (true, reason, message)
    elif state.terminal:
        out[ConditionType.SUCCEEDED] = (false, reason, message)
    else:
        out[ConditionType.SUCCEEDED] = (unknown, state.value, message)
    out[ConditionType.RECONCILING] = (
        (false, reason, message) if state.terminal else (true, state.value, message)
    )
    stalled = state in (State.FAILED, State.TIMED_OUT, State.CANCELLED)
    out[ConditionType.STALLED] = (true, reason, message) if stalled else (false, state.value, "")
    out[ConditionType.READY] = (
        (true, reason, message) if state == State.FINISHED else (false, state.value, message)
    )
    return out
