"""The Job lifecycle: one observation in, one plan out.

Owns: deciding a Job's state, reason, message, conditions, history and the actions to take
(create or delete children, delete the Job) from an `Observation` alone. The same observation
always gives the same plan, so a restarted operator recomputes what it had. Terminal states
are absorbing. Must not: do I/O, read the clock, or keep state between calls.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any, Literal

from ferry.api.app import AppSpec, Scalar
from ferry.api.common import ConditionStatus
from ferry.api.job import (
    AppSnapshot,
    ConditionType,
    JobSpec,
    RetryCounts,
    RunOutcome,
    State,
)
from ferry.decisions import archiving, builders, inputs, parameters, templating
from ferry.decisions.observation import (
    Observation,
    PodView,
    PodWarning,
    slow_to_start,
    start_deadline,
)
from ferry.decisions.plan import (
    Action,
    CreateObject,
    DeleteJob,
    DeleteObject,
    Draft,
    Event,
    Plan,
    find_pod,
    format_duration,
    job_meta,
)
from ferry.decisions.status import finalize

__all__ = ["Action", "CreateObject", "DeleteJob", "DeleteObject", "Event", "Plan", "decide"]


#: Container waiting reasons that need a user's fix but recover by themselves afterwards.
CONFIG_WAITING = frozenset({"CreateContainerConfigError", "CreateContainerError"})
IMAGE_WAITING = frozenset(
    {"ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName"}
)
BLOCKED_RECHECK_SECONDS = 30.0
#: Warning Events that keep a pod's containers from starting (the kubelet's reasons); others
#: seen then (DNSConfigForming, ...) do not. One not repeated for START_FAILURE_FRESH_SECONDS
#: is taken as overcome (the kubelet retries a mount at least every ~2 minutes).
START_FAILURES = frozenset(
    {
        "FailedMount",
        "FailedAttachVolume",
        "FailedMapVolume",
        "FailedCreatePodSandBox",
        "FailedCreatePodContainer",
        "NetworkNotReady",
    }
)
START_FAILURE_FRESH_SECONDS = 300.0
#: The volume of an input, as the kubelet names it in a FailedMount Event.
_INPUT_VOLUME = re.compile(r'volume "' + re.escape(builders.INPUT_VOLUME_PREFIX) + r'([^"]+)"')


# --------------------------------------------------------------------------- public entry


def decide(obs: Observation) -> Plan:
    """The plan for one observation of a Job."""
    job = obs.job
    status = job.status
    if status.state is not None and status.state.terminal:
        return finalize(obs, _terminal(obs))
    if job.deleting:
        return Plan(status=status, changed=False)
    if job.spec is None:
        draft = Draft(State.FAILED, "InvalidSpec", job.spec_error or "spec is invalid")
    else:
        draft = _active(obs, job.spec)
    if draft.state.terminal:
        # The pass that ends the Job also releases what it holds, so a Job recorded as
        # terminal never needs its children looked at again (only its TTL).
        _release(obs, draft)
        _expire(obs, draft, obs.now)
    return finalize(obs, draft)


# --------------------------------------------------------------------------- terminal


def _terminal(obs: Observation) -> Draft:
    st = obs.job.status
    assert st.state is not None
    draft = Draft(st.state, st.reason or st.state.value, st.message or "")
    _release(obs, draft)
    if st.completion_time is not None:
        _expire(obs, draft, st.completion_time)
    return draft


def _release(obs: Observation, draft: Draft) -> None:
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


def _expire(obs: Observation, draft: Draft, ended: datetime) -> None:
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


def _active(obs: Observation, spec: JobSpec) -> Draft:
    live = [p for p in obs.pods if p.live]
    if spec.cancel:
        if live:
            draft = Draft(State.CANCELLING, "CancelRequested", f"stopping {len(live)} pod(s)")
            draft.actions += [DeleteObject("Pod", p.name) for p in live if not p.deleting]
            return draft
        return Draft(State.CANCELLED, "Cancelled", "cancelled through spec.cancel")

    accepted = _accept(obs, spec)
    if isinstance(accepted, Draft):
        return accepted
    app, params, updates = accepted
    draft = _progress(obs, spec, app, params, live)
    draft.updates = {**updates, **draft.updates}
    return draft


def _accept(
    obs: Observation, spec: JobSpec
) -> Draft | tuple[AppSpec | None, dict[str, Scalar], dict[str, Any]]:
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
            return Draft(
                State.BLOCKED, "AppNotFound", f"App {name!r} not found in namespace {ns!r}"
            )
        return Draft(State.BLOCKED, "AppInvalid", f"App {name!r} is not usable: {app_view.error}")
    app = app_view.spec
    problems = parameters.validate_app(app)
    if problems:
        return Draft(
            State.BLOCKED, "AppInvalid", f"App {name!r} is not usable: " + "; ".join(problems)
        )
    if app.runtime.type == "MPI" and not obs.mpi_available:
        return Draft(
            State.BLOCKED,
            "MPIOperatorMissing",
            f"App {name!r} runs as MPI but the MPIJob CRD (kubeflow.org/v2beta1) is not installed",
        )
    values, errors = parameters.resolve(app, spec)
    if not errors:
        errors = _template_errors(obs, app, spec, values)
    if errors:
        if st.app is None:
            return Draft(State.FAILED, "InvalidSpec", "; ".join(errors))
        # The App changed under an accepted Job in a way this Job no longer fits.
        return Draft(State.BLOCKED, "AppInvalid", f"App {name!r} changed: " + "; ".join(errors))
    updates: dict[str, Any] = {}
    if st.app is None:
        updates["app"] = AppSnapshot(
            name=name, version=app.version, image=app.image, spec_hash=app_view.spec_hash
        )
    return app, values, updates


def _template_errors(
    obs: Observation, app: AppSpec, spec: JobSpec, values: dict[str, Scalar]
) -> list[str]:
    meta = job_meta(obs)
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
) -> Draft:
    st = obs.job.status
    n = st.attempt or 0
    previous = st.state

    if spec.suspend and st.run_outcome is None:
        current = [p for p in live if p.attempt == n]
        draft = Draft(State.SUSPENDED, "Suspended", "spec.suspend is true")
        if current:
            draft.message = f"spec.suspend is true; stopping {', '.join(p.name for p in current)}"
            draft.actions += [DeleteObject("Pod", p.name) for p in current if not p.deleting]
        return draft

    if n == 0:
        waiting = _parents(obs, spec)
        if waiting is not None:
            return waiting
        return _start(obs, spec, app, params, 1, State.QUEUED, "PodCreated", "")

    run = find_pod(obs, n, "run")
    outcome = st.run_outcome
    if outcome is None:
        if run is None:
            if previous == State.SUSPENDED:
                return _start(obs, spec, app, params, n + 1, State.QUEUED, "Resumed", "resumed")
            return _infra_failure(
                obs, spec, app, params, f"pod {builders.run_pod_name(obs.job.name, n)} disappeared"
            )
        if previous == State.SUSPENDED and run.live:
            return Draft(State.SUSPENDED, "Resuming", f"waiting for pod {run.name} to stop")
        observed = _observe_run(obs, spec, app, params, run)
        if isinstance(observed, Draft):
            return observed
        outcome, updates = observed
        draft = _after_run(
            obs, spec, app, params, run, outcome, updates.get("exit_code", st.exit_code)
        )
        draft.updates = {**updates, **draft.updates}
        if draft.inputs_staged is None and run.main is not None and run.main.state == "terminated":
            # The app ran, so every input had been staged, even when no pass saw it running
            # (a short app, pod progress batched).
            draft.inputs_staged = (ConditionStatus.TRUE, "Staged", "all inputs staged")
        return draft
    return _after_run(obs, spec, app, params, run, outcome, st.exit_code)


def _parents(obs: Observation, spec: JobSpec) -> Draft | None:
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
        return Draft(State.FAILED, "ParentFailed", "parent(s) did not finish: " + ", ".join(failed))
    if waiting:
        draft = Draft(
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
) -> Draft:
    """Create attempt `attempt`: its workspace and its run pod."""
    if app is None:
        name = spec.app_ref.name
        return Draft(
            State.BLOCKED,
            "AppNotFound",
            f"App {name!r} not found; needed to start attempt {attempt}",
        )
    meta = job_meta(obs)
    resolved, missing = inputs.resolve_job_outputs(spec, obs.parents)
    if missing:
        return Draft(State.FAILED, "StageInFailed", "; ".join(missing))
    try:
        pod = builders.run_pod(meta, app, spec, params, attempt, obs.config, resolved)
    except templating.TemplateError as exc:
        return Draft(State.FAILED, "InvalidSpec", f"App template: {exc}")
    pod_name = pod["metadata"]["name"]
    draft = Draft(state, reason, message or f"attempt {attempt}: created pod {pod_name}")
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
) -> Draft:
    budget = spec.effective_retry.infra_failures
    n = obs.job.status.attempt or 0
    stale = [
        DeleteObject("Pod", p.name)
        for p in obs.pods
        if p.attempt == n and p.live and not p.deleting
    ]
    retry = _retry(obs, spec, app, params, n, "infra_failures", "InfraFailure", why)
    draft = retry or Draft(
        State.FAILED,
        "InfraFailed",
        f"attempt {n}: {why}; infrastructure retries exhausted ({budget})",
    )
    draft.actions = stale + draft.actions
    return draft


def _retry(
    obs: Observation,
    spec: JobSpec,
    app: AppSpec | None,
    params: dict[str, Scalar],
    n: int,
    budget_of: Literal["app_failures", "infra_failures"],
    reason: str,
    why: str,
) -> Draft | None:
    """Attempt n + 1 after attempt n failed for `why`, counted against retry.<budget_of>;
    None when that budget is spent."""
    counts = obs.job.status.retries or RetryCounts()
    budget: int = getattr(spec.effective_retry, budget_of)
    used: int = getattr(counts, budget_of) + 1
    if used > budget:
        return None
    label = "app" if budget_of == "app_failures" else "infrastructure"
    draft = _start(
        obs,
        spec,
        app,
        params,
        n + 1,
        State.RETRYING,
        reason,
        f"attempt {n}: {why}; starting attempt {n + 1} ({label} retry {used}/{budget})",
    )
    if draft.state == State.RETRYING:  # not when the restart is Blocked (App gone)
        draft.updates["retries"] = counts.model_copy(update={budget_of: used})
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
) -> Draft | tuple[RunOutcome, dict[str, Any]]:
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
        draft = Draft(
            State.FAILED,
            "StageInFailed",
            f"{detail} (exit code {failed_init.exit_code})",
        )
        draft.inputs_staged = (ConditionStatus.FALSE, "StageInFailed", draft.message)
        if run.live and not run.deleting:
            draft.actions.append(DeleteObject("Pod", run.name))
        return draft
    if run.deleting:
        return Draft(st.state or State.QUEUED, "PodTerminating", f"pod {run.name} is being deleted")
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
    why = _start_failure(run, obs.now)
    if why is not None and slow_to_start(run, obs.now, obs.config.pod_start_grace_seconds):
        return _blocked_run(obs, "PodNotStarting", _not_starting(spec, run.name, why))
    main = run.main
    if run.phase == "Pending" and not run.scheduled:
        message = run.schedule_message or f"pod {run.name} is waiting to be scheduled"
        return Draft(
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


def _start_failure(run: PodView, now: datetime) -> PodWarning | None:
    """The newest recent Warning that keeps the pod from starting, if any."""
    for warning in run.warnings:
        if warning.reason not in START_FAILURES:
            continue
        seen = warning.last_seen
        if seen is None or (now - seen).total_seconds() <= START_FAILURE_FRESH_SECONDS:
            return warning
    return None


def _not_starting(spec: JobSpec, pod: str, why: PodWarning) -> str:
    """Why the pod has not started, naming the input whose volume it is about, if any."""
    text = f"pod {pod} has not started: {why.reason}: {why.message}"
    volume = _INPUT_VOLUME.search(why.message)
    if volume and any(i.name == volume.group(1) for i in spec.inputs):
        text = f"input {volume.group(1)!r}: {text}"
    return text


def _blocked_run(obs: Observation, reason: str, message: str) -> Draft:
    draft = Draft(State.BLOCKED, reason, message)
    draft.requeue_after = BLOCKED_RECHECK_SECONDS
    return draft


def _run_end(start: datetime | None, main: Any, now: datetime, code: int) -> dict[str, Any]:
    started = start or (main.started_at if main is not None else None)
    ended = (main.finished_at if main is not None else None) or now
    out: dict[str, Any] = {"exit_code": code, "run_end_time": ended}
    if started is not None:
        out["start_time"] = started
        out["runtime"] = format_duration((ended - started).total_seconds())
    return out


def _max_run_seconds(spec: JobSpec, app: AppSpec | None) -> int | None:
    if spec.max_run_seconds is not None:
        return spec.max_run_seconds
    return app.max_run_seconds if app is not None else None


def _running(
    obs: Observation, spec: JobSpec, app: AppSpec | None, run: PodView
) -> Draft | tuple[RunOutcome, dict[str, Any]]:
    st = obs.job.status
    main = run.main
    inits_done = all(c.state == "terminated" and c.exit_code == 0 for c in run.init)
    if main is None or main.state != "running":
        staging = next((c.name for c in run.init if c.state != "terminated"), None)
        if staging is None or inits_done:
            draft = Draft(
                State.STAGING_INPUTS,
                "StartingApp",
                f"inputs staged; starting the app in {run.name}",
            )
            draft.inputs_staged = (ConditionStatus.TRUE, "Staged", "all inputs staged")
        else:
            draft = Draft(State.STAGING_INPUTS, "StagingInputs", f"running {staging} in {run.name}")
        deadline = start_deadline(run, obs.config.pod_start_grace_seconds)
        if deadline is not None:  # look into it then if it has not started by then
            left = (deadline - obs.now).total_seconds()
            draft.requeue_after = left if left > 0 else BLOCKED_RECHECK_SECONDS
        return draft
    started = st.start_time or main.started_at or obs.now
    draft = Draft(State.RUNNING, "AppRunning", f"app running in pod {run.name}")
    draft.updates["start_time"] = started
    draft.inputs_staged = (ConditionStatus.TRUE, "Staged", "all inputs staged")
    limit = _max_run_seconds(spec, app)
    if limit is not None:
        deadline = started + timedelta(seconds=limit)
        if obs.now >= deadline:
            updates: dict[str, Any] = {
                "start_time": started,
                "run_end_time": obs.now,
                "runtime": format_duration((obs.now - started).total_seconds()),
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
) -> Draft:
    """Archive the attempt if wanted, then judge it (`exit_code`: the run's, as observed)."""
    st = obs.job.status
    n = st.attempt or 0
    on_failure = spec.archive.on_failure if spec.archive else True
    wanted = spec.archiving and (outcome == RunOutcome.SUCCEEDED or on_failure)
    archived = st.condition(ConditionType.ARCHIVED.value)
    done = archived is not None and archived.status == ConditionStatus.TRUE
    base_updates: dict[str, Any] = {"run_outcome": outcome}
    if wanted and not done:
        draft = archiving.archive_step(obs, spec, app, params, run, outcome, n)
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


def _verdict(
    obs: Observation,
    spec: JobSpec,
    app: AppSpec | None,
    params: dict[str, Scalar],
    outcome: RunOutcome,
    n: int,
    code: int | None,
) -> Draft:
    if outcome == RunOutcome.SUCCEEDED:
        return Draft(State.FINISHED, "Succeeded", f"attempt {n} succeeded")
    if outcome == RunOutcome.TIMED_OUT:
        limit = _max_run_seconds(spec, app)
        return Draft(
            State.TIMED_OUT,
            "MaxRunSecondsExceeded",
            f"attempt {n} ran longer than maxRunSeconds ({limit}s)",
        )
    why = f"app exited with code {code}"
    retry = _retry(obs, spec, app, params, n, "app_failures", "AppFailed", why)
    return retry or Draft(State.FAILED, "AppFailed", f"attempt {n}: {why}")
