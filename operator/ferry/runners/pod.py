"""The Pod runner: an attempt is one workspace PVC and one run pod.

Owns: the children of a Pod attempt (built by `ferry.decisions.builders`), reading the run
pod (its phase, containers, scheduling, disruption, Kueue's gate and stop condition, and
Warning Events) into a `RunView`, and stopping it. Knows the kubelet's words: which waiting
reasons need a user's fix, which Warning Events keep a pod from starting. Must not: judge the
attempt (the lifecycle does from the RunView) or do I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime

from ferry.api import names
from ferry.api.job import JobSpec, S3Source
from ferry.api.reasons import Reason
from ferry.decisions import builders, kueue, run_pod
from ferry.decisions.context import Ctx, find_pod
from ferry.decisions.observation import PodView, PodWarning, slow_to_start, start_deadline
from ferry.decisions.plan import Action, DeleteObject
from ferry.decisions.runner import Manifest, RunView

#: Container waiting reasons that need a user's fix but recover by themselves afterwards.
CONFIG_WAITING = frozenset({"CreateContainerConfigError", "CreateContainerError"})
IMAGE_WAITING = frozenset(
    {"ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName"}
)
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
_INPUT_VOLUME = re.compile(r'volume "' + re.escape(names.INPUT_VOLUME_PREFIX) + r'([^"]+)"')


class PodRunner:
    """Runs an attempt as one pod (`<job>-<attempt>`) on a workspace PVC of the same name."""

    runtime = "Pod"
    noun = "pod"

    def run_name(self, job: str, attempt: int) -> str:
        return names.run_pod_name(job, attempt)

    def children(
        self, ctx: Ctx, attempt: int, resolved: Mapping[str, S3Source]
    ) -> tuple[Manifest, ...]:
        assert ctx.app is not None
        pod = run_pod.run_pod(
            ctx.meta, ctx.app, ctx.spec, ctx.params, attempt, ctx.config, resolved
        )
        if not ctx.spec.uses_workspace:
            return (pod,)
        return (builders.workspace_pvc(ctx.meta, ctx.spec, attempt, ctx.config), pod)

    def view(self, ctx: Ctx, attempt: int) -> RunView | None:
        pod = find_pod(ctx.obs, attempt, names.ROLE_RUN)
        if pod is None:
            return None
        return read(pod, ctx.spec, ctx.now, ctx.config.pod_start_grace_seconds)

    def live(self, ctx: Ctx, attempt: int | None) -> tuple[str, ...]:
        return tuple(p.name for p in self._run_pods(ctx, attempt) if p.live)

    def stop(self, ctx: Ctx, attempt: int | None) -> tuple[Action, ...]:
        return tuple(
            DeleteObject("Pod", p.name, p.uid)
            for p in self._run_pods(ctx, attempt)
            if p.live and not p.deleting
        )

    @staticmethod
    def _run_pods(ctx: Ctx, attempt: int | None) -> list[PodView]:
        return [
            p
            for p in ctx.obs.pods
            if p.role == names.ROLE_RUN and (attempt is None or p.attempt == attempt)
        ]


def read(pod: PodView, spec: JobSpec, now: datetime, grace: float) -> RunView:
    """The run pod's progress, checked in the order of `RunStatus`."""
    base = RunView(
        name=pod.name,
        status="staging",
        live=pod.live,
        deleting=pod.deleting,
        node_name=pod.node_name,
        image=pod.main.image if pod.main is not None else "",
        image_id=pod.main.image_id if pod.main is not None else "",
    )
    if pod.stopped and pod.phase != "Succeeded":
        main = pod.main
        return replace(
            base,
            status="preempted",
            message=f"Kueue stopped pod {pod.name} ({pod.stopped})",
            started_at=main.started_at if main is not None else None,
            finished_at=main.finished_at if main is not None else None,
        )
    infra = _infra_reason(pod)
    if infra is not None:
        return replace(base, status="infra-failed", message=infra)
    failed_init = next(
        (c for c in pod.init if c.state == "terminated" and (c.exit_code or 0) != 0), None
    )
    if failed_init is not None:
        input_name = failed_init.name.removeprefix(names.STAGE_CONTAINER_PREFIX)
        what = "setup" if failed_init.name == names.SETUP_CONTAINER else f"input {input_name!r}"
        detail = failed_init.message.strip() or failed_init.reason or "staging failed"
        if not detail.startswith(f"{what}: "):  # the stager names the input itself
            detail = f"{what}: {detail}"
        return replace(base, status="stage-failed", message=detail, exit_code=failed_init.exit_code)
    if pod.deleting:
        return replace(
            base,
            status="terminating",
            message=f"pod {pod.name} is being deleted",
            deletion_time=pod.deletion_time,
        )
    for container in (*pod.init, *((pod.main,) if pod.main else ())):
        if container.state != "waiting":
            continue
        if container.reason in CONFIG_WAITING:
            return _blocked(
                base, Reason.CONFIG_ERROR, f"container {container.name}: {container.message}"
            )
        if container.reason in IMAGE_WAITING:
            return _blocked(
                base,
                Reason.IMAGE_PULL_FAILED,
                f"container {container.name}: {container.reason} {container.message}",
            )
    why = _start_failure(pod, now)
    if why is not None and slow_to_start(pod, now, grace):
        return _blocked(base, Reason.POD_NOT_STARTING, _not_starting(spec, pod.name, why))
    main = pod.main
    if pod.gated and pod.phase == "Pending" and not pod.scheduled:
        return replace(
            base,
            status="pending",
            reason=Reason.AWAITING_ADMISSION,
            message=kueue.waiting("pod", pod.name, pod.queue, pod.admission),
        )
    if pod.phase == "Pending" and not pod.scheduled:
        return replace(
            base,
            status="pending",
            reason=Reason.UNSCHEDULABLE if pod.schedule_message else Reason.POD_PENDING,
            message=pod.schedule_message or f"pod {pod.name} is waiting to be scheduled",
        )
    app_ended = main is not None and main.state == "terminated"
    if pod.phase in ("Pending", "Running", "Unknown") and not app_ended:
        if main is not None and main.state == "running":
            return replace(base, status="running", started_at=main.started_at, inputs_staged=True)
        staging = next((c.name for c in pod.init if c.state != "terminated"), None)
        inits_done = all(c.state == "terminated" and c.exit_code == 0 for c in pod.init)
        began = [c.started_at for c in pod.init if c.started_at is not None]
        return replace(
            base,
            status="staging",
            message=staging or "",
            inputs_staged=staging is None or inits_done,
            look_again_at=start_deadline(pod, grace),
            staging_since=min(began) if began else None,
        )
    started = main.started_at if main is not None else None
    finished = main.finished_at if main is not None else None
    if pod.phase == "Succeeded" or (app_ended and main is not None and main.exit_code == 0):
        return replace(
            base,
            status="succeeded",
            exit_code=0,
            started_at=started,
            finished_at=finished,
            app_ended=app_ended,
        )
    code = main.exit_code if main is not None else None
    if code is None:
        return replace(
            base, status="infra-failed", message=f"pod {pod.name} failed without an exit code"
        )
    return replace(
        base,
        status="app-failed",
        exit_code=code,
        started_at=started,
        finished_at=finished,
        app_ended=app_ended,
    )


def _blocked(base: RunView, reason: Reason, message: str) -> RunView:
    return replace(base, status="blocked", reason=reason, message=message)


def _infra_reason(pod: PodView) -> str | None:
    """Why the pod ended for a reason of the platform rather than of the app, if it did."""
    if pod.disruption:
        return f"pod {pod.name} was disrupted ({pod.disruption}) {pod.message}".strip()
    if pod.phase == "Failed" and pod.reason:
        return f"pod {pod.name} failed: {pod.reason} {pod.message}".strip()
    return None


def _start_failure(pod: PodView, now: datetime) -> PodWarning | None:
    """The newest recent Warning that keeps the pod from starting, if any."""
    for warning in pod.warnings:
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
