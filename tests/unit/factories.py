"""Builders of the values the pure decision code consumes: specs, views, pods, observations.

Plain functions; every test states only what matters to it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from ferry.api.app import AppSpec
from ferry.api.job import JobSpec, JobStatus, State
from ferry.config import OperatorConfig
from ferry.decisions import lifecycle, parse
from ferry.decisions.observation import (
    AppView,
    ContainerView,
    JobView,
    Observation,
    ParentView,
    PodView,
)
from ferry.runners import RUNNERS

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
CREATED = NOW - timedelta(minutes=5)
CONFIG = OperatorConfig()
JOB = "frame-001"
NS = "bridge"
UID = "0b5e3d1c-1111-2222-3333-444455556666"


def decide(obs: Observation) -> lifecycle.Plan:
    """The lifecycle's decision with the runtimes this Ferry runs."""
    return lifecycle.decide(obs, RUNNERS)


def at(seconds: float) -> datetime:
    """NOW shifted by `seconds`."""
    return NOW + timedelta(seconds=seconds)


# --------------------------------------------------------------------------- specs


def app_dict(**overrides: Any) -> dict[str, Any]:
    """A small, sound App spec (wire form) with one integer parameter and one input."""
    base: dict[str, Any] = {
        "version": "1.0",
        "image": "registry.example.org/solver:1.0",
        "command": ["solve"],
        "args": ["{{inputs.model}}", "--steps", "{{params.steps}}"],
        "env": [{"name": "OUT", "value": "{{workdir}}/out"}],
        "parameters": [{"name": "steps", "type": "integer", "default": 10, "minimum": 1}],
        "inputs": [{"name": "model"}],
        "resources": {"cpu": "1", "memory": "1Gi"},
    }
    base.update(overrides)
    return base


def app_spec(**overrides: Any) -> AppSpec:
    return AppSpec.model_validate(app_dict(**overrides))


def job_dict(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "appRef": {"name": "solver"},
        "parameters": {"steps": 5},
        "inputs": [{"name": "model", "source": {"inline": "model text"}}],
    }
    base.update(overrides)
    return base


def job_spec(**overrides: Any) -> JobSpec:
    return JobSpec.model_validate(job_dict(**overrides))


# --------------------------------------------------------------------------- views


def job_view(
    spec: JobSpec | None = None,
    status: JobStatus | None = None,
    *,
    name: str = JOB,
    generation: int = 1,
    spec_error: str = "",
    deleting: bool = False,
) -> JobView:
    return JobView(
        name=name,
        namespace=NS,
        uid=UID,
        generation=generation,
        creation_time=CREATED,
        spec=spec if spec is not None or spec_error else job_spec(),
        status=status or JobStatus(),
        spec_error=spec_error,
        deleting=deleting,
    )


def app_view(spec: AppSpec | None = None, *, name: str = "solver", error: str = "") -> AppView:
    spec = spec if spec is not None or error else app_spec()
    return AppView(
        name=name,
        spec=spec,
        spec_hash=parse.app_spec_hash(spec.wire()) if spec is not None else "",
        error=error,
    )


_DEFAULT_APP = object()


def observe(
    job: JobView,
    *,
    pods: Iterable[PodView] = (),
    app: AppView | object | None = _DEFAULT_APP,
    parents: Mapping[str, ParentView | None] | None = None,
    pvcs: Iterable[str] = (),
    now: datetime = NOW,
    config: OperatorConfig = CONFIG,
    mpi_available: bool = True,
) -> Observation:
    resolved = app_view() if app is _DEFAULT_APP else app
    assert resolved is None or isinstance(resolved, AppView)
    return Observation(
        job=job,
        now=now,
        config=config,
        app=resolved,
        parents=dict(parents or {}),
        pods=tuple(pods),
        pvcs=frozenset(pvcs),
        mpi_available=mpi_available,
    )


def with_status(obs: Observation, status: JobStatus, **changes: Any) -> Observation:
    """The next observation: the Job now carries `status`; other fields may change too
    (spec=... changes the Job's spec, pods/pvcs/now/app/parents/... the rest)."""
    job = dataclasses.replace(obs.job, spec=changes.pop("spec", obs.job.spec), status=status)
    if "pods" in changes:
        changes["pods"] = tuple(changes["pods"])
    if "pvcs" in changes:
        changes["pvcs"] = frozenset(changes["pvcs"])
    return dataclasses.replace(obs, job=job, **changes)


def run_steps(first: Observation, steps: Sequence[Mapping[str, Any]]) -> list[lifecycle.Plan]:
    """Decide `first`, then for each step apply the last plan's status, change the
    observation as the step says (pods=..., now=..., spec=...), and decide again."""
    plans = [decide(first)]
    obs = first
    for step in steps:
        obs = with_status(obs, plans[-1].status, **dict(step))
        plans.append(decide(obs))
    return plans


# --------------------------------------------------------------------------- pods


def container(
    name: str,
    state: str | None,
    *,
    exit_code: int | None = None,
    reason: str = "",
    message: str = "",
    started_at: datetime | None = None,
    finished_at: datetime | None = None,
) -> ContainerView:
    return ContainerView(
        name=name,
        state=state,  # type: ignore[arg-type]
        exit_code=exit_code,
        reason=reason,
        message=message,
        started_at=started_at,
        finished_at=finished_at,
    )


def _inits(inputs: Sequence[str], state: str, code: int | None = 0) -> tuple[ContainerView, ...]:
    names = ["ferry-setup", *(f"stage-{i}" for i in inputs)]
    return tuple(
        container(n, state, exit_code=code if state == "terminated" else None) for n in names
    )


def run_pod(
    attempt: int = 1,
    *,
    phase: str = "Running",
    scheduled: bool = True,
    schedule_message: str = "",
    reason: str = "",
    message: str = "",
    disruption: str = "",
    deleting: bool = False,
    init: tuple[ContainerView, ...] | None = None,
    main: ContainerView | None = None,
) -> PodView:
    return PodView(
        owner_uid=UID,
        name=f"{JOB}-{attempt}",
        attempt=attempt,
        role="run",
        phase=phase,  # type: ignore[arg-type]
        deleting=deleting,
        scheduled=scheduled,
        schedule_message=schedule_message,
        reason=reason,
        message=message,
        disruption=disruption,
        init=init if init is not None else _inits(["model"], "terminated"),
        main=main,
    )


def unscheduled(
    attempt: int = 1, message: str = "0/3 nodes are available: 3 Insufficient cpu."
) -> PodView:
    return run_pod(
        attempt,
        phase="Pending",
        scheduled=False,
        schedule_message=message,
        init=_inits(["model"], "waiting"),
        main=container("app", "waiting", reason="PodInitializing"),
    )


def staging(attempt: int = 1) -> PodView:
    init = (
        container("ferry-setup", "terminated", exit_code=0),
        container("stage-model", "running"),
    )
    return run_pod(
        attempt,
        phase="Pending",
        init=init,
        main=container("app", "waiting", reason="PodInitializing"),
    )


def running(attempt: int = 1, started: datetime = NOW) -> PodView:
    return run_pod(attempt, main=container("app", "running", started_at=started))


def exited(
    attempt: int = 1,
    code: int = 0,
    started: datetime = NOW,
    finished: datetime | None = None,
) -> PodView:
    return run_pod(
        attempt,
        phase="Succeeded" if code == 0 else "Failed",
        main=container(
            "app",
            "terminated",
            exit_code=code,
            reason="Completed" if code == 0 else "Error",
            started_at=started,
            finished_at=finished or started + timedelta(seconds=90),
        ),
    )


def evicted(attempt: int = 1) -> PodView:
    return run_pod(
        attempt,
        phase="Failed",
        reason="Evicted",
        message="The node was low on resource: memory.",
        main=container("app", "terminated", exit_code=137, reason="Error"),
    )


def disrupted(attempt: int = 1, reason: str = "PreemptionByScheduler") -> PodView:
    return run_pod(
        attempt,
        disruption=reason,
        main=container("app", "running", started_at=NOW),
    )


def stage_failed(attempt: int = 1, name: str = "model", message: str = "404 Not Found") -> PodView:
    init = (
        container("ferry-setup", "terminated", exit_code=0),
        container(f"stage-{name}", "terminated", exit_code=2, reason="Error", message=message),
    )
    return run_pod(
        attempt,
        phase="Failed",
        init=init,
        main=container("app", "waiting", reason="PodInitializing"),
    )


def waiting(attempt: int = 1, reason: str = "ImagePullBackOff", message: str = "") -> PodView:
    return run_pod(
        attempt,
        phase="Pending",
        main=container("app", "waiting", reason=reason, message=message),
    )


def archive_pod(
    attempt: int = 1,
    try_: int = 1,
    *,
    phase: str = "Running",
    summary: Mapping[str, Any] | None = None,
    message: str = "",
    deleting: bool = False,
) -> PodView:
    if summary is not None:
        message = json.dumps(summary)
    if phase in ("Succeeded", "Failed"):
        main = container(
            "archive",
            "terminated",
            exit_code=0 if phase == "Succeeded" else 1,
            message=message,
        )
    else:
        main = container("archive", "running")
    return PodView(
        owner_uid=UID,
        name=f"{JOB}-{attempt}-archive-{try_}",
        attempt=attempt,
        role="archive",
        phase=phase,  # type: ignore[arg-type]
        scheduled=True,
        deleting=deleting,
        main=main,
        archive_try=try_,
    )


def parent(name: str, state: State | None, reason: str = "") -> ParentView:
    return ParentView(name=name, state=state, reason=reason)


# --------------------------------------------------------------------------- walking


def walk(node: Any, path: str = "") -> Iterable[tuple[str, Any, Any]]:
    """Every (path, key, value) in a nested dict/list structure."""
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{path}.{key}"
            yield here, key, value
            yield from walk(value, here)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from walk(value, f"{path}[{i}]")
