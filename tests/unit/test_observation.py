"""Parsing pods as the apiserver returns them into PodViews."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ferry.decisions.observation import (
    PodWarning,
    pod_view,
    pod_warnings,
    slow_to_start,
    start_deadline,
)

pytestmark = pytest.mark.unit

T0 = "2026-03-01T12:00:00Z"
T1 = "2026-03-01T12:01:30Z"


def pod(
    phase: str,
    *,
    role: str = "run",
    attempt: str = "1",
    conditions: list[dict[str, Any]] | None = None,
    containers: list[dict[str, Any]] | None = None,
    inits: list[dict[str, Any]] | None = None,
    init_names: tuple[str, ...] = ("ferry-setup", "stage-model"),
    node: str | None = "node-1",
    **status: Any,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "initContainers": [{"name": n, "image": "tools"} for n in init_names],
        "containers": [{"name": "app" if role == "run" else "archive", "image": "img"}],
    }
    if node:
        spec["nodeName"] = node
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "frame-001-1",
            "namespace": "bridge",
            "uid": "pod-uid",
            "labels": {
                "ferry.dev/job": "frame-001",
                "ferry.dev/attempt": attempt,
                "ferry.dev/role": role,
                "app.kubernetes.io/managed-by": "ferry",
            },
        },
        "spec": spec,
        "status": {
            "phase": phase,
            "conditions": conditions or [],
            "containerStatuses": containers or [],
            "initContainerStatuses": inits or [],
            **status,
        },
    }


def cstatus(name: str, state: dict[str, Any], restarts: int = 0) -> dict[str, Any]:
    return {"name": name, "state": state, "ready": False, "restartCount": restarts, "image": "x"}


DONE_INITS = [
    cstatus("ferry-setup", {"terminated": {"exitCode": 0, "reason": "Completed"}}),
    cstatus("stage-model", {"terminated": {"exitCode": 0, "reason": "Completed"}}),
]


def test_pending_unscheduled_with_scheduler_message() -> None:
    msg = "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available."
    view = pod_view(
        pod(
            "Pending",
            node=None,
            conditions=[
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": msg,
                }
            ],
        )
    )
    assert view is not None
    assert (view.phase, view.scheduled, view.schedule_message) == ("Pending", False, msg)
    assert view.live
    assert view.main is None
    assert [c.name for c in view.init] == ["ferry-setup", "stage-model"]
    assert all(c.state is None for c in view.init)


def test_scheduler_reason_used_when_no_message() -> None:
    view = pod_view(
        pod(
            "Pending",
            node=None,
            conditions=[{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}],
        )
    )
    assert view is not None
    assert view.schedule_message == "Unschedulable"


def test_staging_pod() -> None:
    view = pod_view(
        pod(
            "Pending",
            conditions=[{"type": "PodScheduled", "status": "True"}],
            inits=[
                DONE_INITS[0],
                cstatus("stage-model", {"running": {"startedAt": T0}}),
            ],
            containers=[cstatus("app", {"waiting": {"reason": "PodInitializing"}})],
        )
    )
    assert view is not None
    assert view.scheduled
    assert [c.state for c in view.init] == ["terminated", "running"]
    assert view.init[1].started_at == datetime(2026, 3, 1, 12, tzinfo=UTC)
    assert view.main is not None
    assert (view.main.state, view.main.reason) == ("waiting", "PodInitializing")


def test_a_pod_whose_containers_all_exited_has_exited_while_its_phase_says_running() -> None:
    """A kubelet writes the app container's terminated state about a second before the
    pod's phase (seen on the real node): the pod has stopped all the same."""
    done = [cstatus("app", {"terminated": {"exitCode": 0, "reason": "Completed"}})]
    raw = pod("Running", inits=DONE_INITS, containers=done)
    raw["spec"]["restartPolicy"] = "Never"
    view = pod_view(raw)
    assert view is not None
    assert (view.phase, view.exited, view.live) == ("Running", True, False)
    running = pod("Running", inits=DONE_INITS, containers=[cstatus("app", {"running": {}})])
    running["spec"]["restartPolicy"] = "Never"
    assert pod_view(running).live is True  # type: ignore[union-attr]
    # A container that may restart has not stopped for good.
    raw["spec"]["restartPolicy"] = "OnFailure"
    assert pod_view(raw).live is True  # type: ignore[union-attr]
    # Nor has a pod whose other container still runs.
    raw["spec"]["restartPolicy"] = "Never"
    raw["spec"]["containers"].append({"name": "sidecar", "image": "img"})
    assert pod_view(raw).live is True  # type: ignore[union-attr]


def test_running_pod() -> None:
    view = pod_view(
        pod(
            "Running",
            inits=DONE_INITS,
            containers=[cstatus("app", {"running": {"startedAt": T0}})],
            conditions=[
                {"type": "PodScheduled", "status": "True"},
                {"type": "Ready", "status": "True"},
            ],
        )
    )
    assert view is not None
    assert (view.phase, view.attempt, view.role, view.name) == ("Running", 1, "run", "frame-001-1")
    assert view.main is not None
    assert view.main.state == "running"
    assert view.main.started_at == datetime(2026, 3, 1, 12, tzinfo=UTC)
    assert not view.deleting
    assert view.disruption == ""
    assert view.live


def test_succeeded_pod() -> None:
    term = {"exitCode": 0, "reason": "Completed", "startedAt": T0, "finishedAt": T1}
    view = pod_view(
        pod("Succeeded", inits=DONE_INITS, containers=[cstatus("app", {"terminated": term})])
    )
    assert view is not None
    assert view.phase == "Succeeded"
    assert not view.live
    assert view.main is not None
    assert (view.main.state, view.main.exit_code) == ("terminated", 0)
    assert view.main.finished_at == datetime(2026, 3, 1, 12, 1, 30, tzinfo=UTC)


def test_failed_pod_with_exit_3() -> None:
    term = {
        "exitCode": 3,
        "reason": "Error",
        "message": "solver diverged\n",
        "startedAt": T0,
        "finishedAt": T1,
    }
    view = pod_view(
        pod("Failed", inits=DONE_INITS, containers=[cstatus("app", {"terminated": term})])
    )
    assert view is not None
    assert view.phase == "Failed"
    assert view.reason == ""  # not a platform failure
    assert view.main is not None
    assert (view.main.exit_code, view.main.reason, view.main.message) == (
        3,
        "Error",
        "solver diverged\n",
    )


def test_evicted_pod() -> None:
    view = pod_view(
        pod(
            "Failed",
            reason="Evicted",
            message="The node was low on resource: ephemeral-storage.",
            containers=[cstatus("app", {"terminated": {"exitCode": 137, "reason": "Error"}})],
        )
    )
    assert view is not None
    assert (view.phase, view.reason) == ("Failed", "Evicted")
    assert "ephemeral-storage" in view.message


@pytest.mark.parametrize(
    ("status", "expected"),
    [("True", "PreemptionByScheduler"), ("False", "")],
)
def test_disruption_target_condition(status: str, expected: str) -> None:
    view = pod_view(
        pod(
            "Running",
            containers=[cstatus("app", {"running": {"startedAt": T0}})],
            conditions=[
                {
                    "type": "DisruptionTarget",
                    "status": status,
                    "reason": "PreemptionByScheduler",
                    "message": "preempted",
                }
            ],
        )
    )
    assert view is not None
    assert view.disruption == expected


def test_init_container_failure() -> None:
    view = pod_view(
        pod(
            "Failed",
            inits=[
                DONE_INITS[0],
                cstatus(
                    "stage-model",
                    {
                        "terminated": {
                            "exitCode": 2,
                            "reason": "Error",
                            "message": "sha256 mismatch",
                        }
                    },
                ),
            ],
            containers=[cstatus("app", {"waiting": {"reason": "PodInitializing"}})],
        )
    )
    assert view is not None
    failed = view.init[1]
    assert (failed.name, failed.state, failed.exit_code, failed.message) == (
        "stage-model",
        "terminated",
        2,
        "sha256 mismatch",
    )


@pytest.mark.parametrize(
    "reason",
    ["ImagePullBackOff", "ErrImagePull", "CreateContainerConfigError", "ContainerCreating"],
)
def test_waiting_reasons(reason: str) -> None:
    waiting = {"reason": reason, "message": f"details of {reason}"}
    view = pod_view(
        pod(
            "Pending",
            inits=DONE_INITS,
            containers=[cstatus("app", {"waiting": waiting}, restarts=2)],
        )
    )
    assert view is not None
    assert view.main is not None
    assert (view.main.state, view.main.reason, view.main.message) == (
        "waiting",
        reason,
        f"details of {reason}",
    )
    assert view.main.restart_count == 2


def test_deleting_pod_and_unknown_phase() -> None:
    raw = pod("Unknown")
    raw["metadata"]["deletionTimestamp"] = T1
    view = pod_view(raw)
    assert view is not None
    assert (view.phase, view.deleting, view.live) == ("Unknown", True, True)


def test_odd_phase_becomes_unknown() -> None:
    view = pod_view(pod("Exploded"))
    assert view is not None
    assert view.phase == "Unknown"


def test_archive_pod_reads_its_container_and_try() -> None:
    summary = '{"uri": "s3://b/x/", "files": 2, "bytes": 10, "manifest": "s3://b/x/manifest.json"}'
    raw = pod(
        "Succeeded",
        role="archive",
        init_names=(),
        containers=[
            cstatus("archive", {"terminated": {"exitCode": 0, "message": summary}}),
            cstatus("app", {"terminated": {"exitCode": 9}}),
        ],
    )
    raw["metadata"]["annotations"] = {"ferry.dev/archive-try": "2"}
    view = pod_view(raw)
    assert view is not None
    assert (view.role, view.archive_try, view.init) == ("archive", 2, ())
    assert view.main is not None
    assert (view.main.name, view.main.message) == ("archive", summary)


@pytest.mark.parametrize(
    "labels",
    [
        {},
        {"ferry.dev/attempt": "x", "ferry.dev/role": "run"},
        {"ferry.dev/attempt": "1"},
        {"ferry.dev/attempt": "1", "ferry.dev/role": "sidecar"},
    ],
    ids=["no-labels", "bad-attempt", "no-role", "unknown-role"],
)
def test_pods_without_ferry_labels_are_ignored(labels: dict[str, str]) -> None:
    raw = pod("Running")
    raw["metadata"]["labels"] = labels
    assert pod_view(raw) is None


def test_bad_archive_try_annotation_reads_as_zero() -> None:
    raw = pod("Running", role="archive")
    raw["metadata"]["annotations"] = {"ferry.dev/archive-try": "many"}
    view = pod_view(raw)
    assert view is not None
    assert view.archive_try == 0


def test_minimal_pod_without_status() -> None:
    raw = pod("Pending")
    del raw["status"]
    view = pod_view(raw)
    assert view is not None
    assert (view.phase, view.main, view.scheduled) == ("Pending", None, True)  # has nodeName


# --------------------------------------------------------------------------- slow to start


def mounting(phase: str = "Pending") -> dict[str, Any]:
    """A pod the kubelet cannot start: scheduled at T0, every container waiting."""
    return pod(
        phase,
        conditions=[{"type": "PodScheduled", "status": "True", "lastTransitionTime": T0}],
        inits=[
            cstatus("ferry-setup", {"waiting": {"reason": "PodInitializing"}}),
            cstatus("stage-model", {"waiting": {"reason": "PodInitializing"}}),
        ],
        containers=[cstatus("app", {"waiting": {"reason": "PodInitializing"}})],
    )


def test_scheduled_time_and_uid_are_read() -> None:
    view = pod_view(mounting())
    assert view is not None
    assert view.scheduled_at == datetime(2026, 3, 1, 12, tzinfo=UTC)
    assert view.uid == "pod-uid"
    assert not view.started


def test_unscheduled_pod_has_no_scheduled_time() -> None:
    view = pod_view(
        pod(
            "Pending",
            node=None,
            conditions=[{"type": "PodScheduled", "status": "False", "lastTransitionTime": T0}],
        )
    )
    assert view is not None
    assert view.scheduled_at is None
    assert start_deadline(view, 60) is None


def test_a_pod_not_started_is_slow_once_the_grace_has_passed() -> None:
    view = pod_view(mounting())
    assert view is not None
    t0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
    assert start_deadline(view, 60) == t0 + timedelta(seconds=60)
    assert not slow_to_start(view, t0 + timedelta(seconds=59), 60)
    assert slow_to_start(view, t0 + timedelta(seconds=60), 60)
    assert slow_to_start(view, t0 + timedelta(seconds=15), 10)


@pytest.mark.parametrize(
    "inits",
    [
        [cstatus("ferry-setup", {"running": {"startedAt": T0}})],
        [cstatus("ferry-setup", {"terminated": {"exitCode": 0}})],
        [cstatus("ferry-setup", {"waiting": {"reason": "CrashLoopBackOff"}}, restarts=2)],
    ],
    ids=["running", "terminated", "restarted"],
)
def test_a_pod_that_ran_anything_is_never_slow_to_start(inits: list[dict[str, Any]]) -> None:
    raw = mounting()
    raw["status"]["initContainerStatuses"] = inits
    view = pod_view(raw)
    assert view is not None
    assert view.started
    assert start_deadline(view, 60) is None
    assert not slow_to_start(view, datetime(2026, 3, 2, tzinfo=UTC), 60)


def test_ended_or_deleting_pods_are_not_slow_to_start() -> None:
    late = datetime(2026, 3, 2, tzinfo=UTC)
    failed = pod_view(mounting(phase="Failed"))
    assert failed is not None
    assert not slow_to_start(failed, late, 60)
    raw = mounting()
    raw["metadata"]["deletionTimestamp"] = T1
    deleting = pod_view(raw)
    assert deleting is not None
    assert not slow_to_start(deleting, late, 60)


def event(reason: str, message: str, **times: str) -> dict[str, Any]:
    return {
        "metadata": {"name": f"frame-001-1.{reason}", "creationTimestamp": times.pop("c", T0)},
        "involvedObject": {"kind": "Pod", "name": "frame-001-1", "uid": "pod-uid"},
        "type": "Warning",
        "reason": reason,
        "message": message,
        **times,
    }


def test_warnings_are_parsed_newest_first_by_last_seen() -> None:
    events = [
        event("FailedMount", ' configmap "a" not found \n', lastTimestamp=T0),
        event("DNSConfigForming", "limits", eventTime="2026-03-01T12:00:30.123456Z"),
        event("FailedCreatePodSandBox", "no network", c=T1),
    ]
    t0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
    assert pod_warnings(events) == (
        PodWarning("FailedCreatePodSandBox", "no network", t0 + timedelta(seconds=90)),
        PodWarning("DNSConfigForming", "limits", t0 + timedelta(seconds=30, microseconds=123456)),
        PodWarning("FailedMount", 'configmap "a" not found', t0),
    )
    assert pod_warnings([]) == ()
