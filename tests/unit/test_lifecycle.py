"""The Job lifecycle (DESIGN.md section 2): one observation in, one plan out."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from typing import Any

import pytest

from ferry.api.common import MAX_CONDITION_MESSAGE, ConditionStatus
from ferry.api.job import MAX_HISTORY, HistoryEntry, JobStatus, State
from ferry.config import OperatorConfig
from ferry.decisions import lifecycle, parse, run
from ferry.decisions.observation import Observation, ParentView, PodView, PodWarning
from ferry.decisions.plan import CreateObject, DeleteJob, DeleteObject, Plan
from ferry.runners import pod as pod_runner

from .factories import (
    CONFIG,
    CREATED,
    JOB,
    NOW,
    NS,
    UID,
    app_spec,
    app_view,
    archive_pod,
    at,
    container,
    decide,
    disrupted,
    evicted,
    exited,
    job_spec,
    job_view,
    observe,
    parent,
    run_pod,
    run_steps,
    running,
    stage_failed,
    staging,
    unscheduled,
    waiting,
    with_status,
)

pytestmark = pytest.mark.unit

T, F, U = ConditionStatus.TRUE, ConditionStatus.FALSE, ConditionStatus.UNKNOWN
SUMMARY: dict[str, Any] = {
    "uri": f"s3://ferry/{NS}/{JOB}/{UID}/attempt-1/",
    "files": 12,
    "bytes": 123456,
    "manifest": f"s3://ferry/{NS}/{JOB}/{UID}/attempt-1/manifest.json",
}


def cond(plan: Plan, type_: str) -> tuple[ConditionStatus, str]:
    c = plan.status.condition(type_)
    assert c is not None, f"condition {type_} missing"
    return c.status, c.reason


def names(plan: Plan, action: type[CreateObject] | type[DeleteObject]) -> list[str]:
    return [
        a.name
        for a in plan.actions
        if isinstance(a, (CreateObject, DeleteObject)) and isinstance(a, action)
    ]


def kinds(plan: Plan) -> list[tuple[str, str, str]]:
    out = []
    for a in plan.actions:
        if isinstance(a, CreateObject):
            out.append(("create", a.kind, a.name))
        elif isinstance(a, DeleteObject):
            out.append(("delete", a.kind, a.name))
        else:
            out.append(("deleteJob", "", ""))
    return out


def started(**spec: Any) -> Observation:
    """The first observation of a fresh Job (no status yet)."""
    return observe(job_view(job_spec(**spec)))


def to_running(**spec: Any) -> list[Plan]:
    return run_steps(started(**spec), [{"pods": [running()], "now": at(10)}])


def at_state(steps: list[dict[str, Any]], **spec: Any) -> tuple[Observation, Plan]:
    """Run the steps; return the last observation (with the previous status) and its plan."""
    obs = started(**spec)
    plan = decide(obs)
    for step in steps:
        obs = with_status(obs, plan.status, **step)
        plan = decide(obs)
    return obs, plan


# --------------------------------------------------------------------------- Pending / Queued


@pytest.mark.parametrize(
    "status",
    [JobStatus(), JobStatus(state=State.PENDING, reason="Pending")],
    ids=["no-status", "pending"],
)
def test_first_pass_creates_workspace_and_run_pod_and_queues(status: JobStatus) -> None:
    plan = decide(observe(job_view(status=status)))
    assert plan.state == State.QUEUED
    assert plan.changed
    assert kinds(plan) == [
        ("create", "PersistentVolumeClaim", f"{JOB}-1"),
        ("create", "Pod", f"{JOB}-1"),
    ]
    st = plan.status
    assert st.attempt == 1
    assert st.pod_name == f"{JOB}-1"
    assert st.submit_time == CREATED
    assert st.observed_generation == 1
    assert st.app is not None
    assert (st.app.name, st.app.version, st.app.image) == (
        "solver",
        "1.0",
        "registry.example.org/solver:1.0",
    )
    assert st.app.spec_hash == parse.app_spec_hash(app_spec().wire())
    assert cond(plan, "Accepted") == (T, "Accepted")
    assert cond(plan, "Succeeded")[0] == U
    assert cond(plan, "Reconciling") == (T, "Queued")
    assert cond(plan, "Stalled")[0] == F
    assert cond(plan, "Ready")[0] == F
    assert cond(plan, "InputsStaged")[0] == U
    assert cond(plan, "Archived")[0] == U
    assert [h.state for h in st.history] == [State.QUEUED]
    assert plan.events == (), "Queued is a routine step: history, no Event"


def test_queued_unscheduled_pod_reports_the_scheduler_message() -> None:
    msg = "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."
    plans = run_steps(started(), [{"pods": [unscheduled(message=msg)]}])
    plan = plans[-1]
    assert (plan.state, plan.status.reason, plan.status.message) == (
        State.QUEUED,
        "Unschedulable",
        msg,
    )
    assert plan.actions == ()


def test_queued_pod_without_scheduler_verdict_is_pending() -> None:
    plans = run_steps(started(), [{"pods": [unscheduled(message="")]}])
    assert (plans[-1].state, plans[-1].status.reason) == (State.QUEUED, "PodPending")


# --------------------------------------------------------------------------- StagingInputs


def test_staging_inputs_names_the_running_stager() -> None:
    plan = run_steps(started(), [{"pods": [staging()]}])[-1]
    assert plan.state == State.STAGING_INPUTS
    assert plan.status.reason == "StagingInputs"
    assert "stage-model" in (plan.status.message or "")
    assert cond(plan, "InputsStaged")[0] == U
    assert cond(plan, "Reconciling") == (T, "StagingInputs")


def test_inputs_staged_while_app_container_is_created() -> None:
    pod = waiting(reason="ContainerCreating")
    plan = run_steps(started(), [{"pods": [pod]}])[-1]
    assert (plan.state, plan.status.reason) == (State.STAGING_INPUTS, "StartingApp")
    assert cond(plan, "InputsStaged") == (T, "Staged")


# --------------------------------------------------------------------------- Running / TimedOut


def test_running_sets_start_time_and_requeues_at_the_deadline() -> None:
    _obs, plan = at_state([{"pods": [running(started=at(-100))]}], maxRunSeconds=600)
    assert plan.state == State.RUNNING
    assert plan.status.reason == "AppRunning"
    assert plan.status.start_time == at(-100)
    assert plan.requeue_after == pytest.approx(500.0)
    assert cond(plan, "InputsStaged") == (T, "Staged")
    assert cond(plan, "Reconciling") == (T, "Running")
    assert cond(plan, "Succeeded")[0] == U


def test_app_max_run_seconds_applies_when_the_job_sets_none() -> None:
    obs = observe(job_view(job_spec()), app=app_view(app_spec(maxRunSeconds=300)), now=at(0))
    plan = decide(obs)
    plan = decide(with_status(obs, plan.status, pods=(running(started=at(-60)),)))
    assert plan.requeue_after == pytest.approx(240.0)


def test_job_max_run_seconds_overrides_the_app() -> None:
    obs = observe(job_view(job_spec(maxRunSeconds=1000)), app=app_view(app_spec(maxRunSeconds=300)))
    plan = decide(obs)
    plan = decide(with_status(obs, plan.status, pods=(running(started=at(-60)),)))
    assert plan.requeue_after == pytest.approx(940.0)


def test_past_the_deadline_the_app_is_stopped_and_archived_then_timed_out() -> None:
    obs, plan = at_state([{"pods": [running(started=NOW)]}], maxRunSeconds=60)
    assert plan.state == State.RUNNING
    late = with_status(obs, plan.status, now=at(61))
    plan = decide(late)
    assert plan.state == State.ARCHIVING
    assert plan.status.reason == "StoppingApp"
    assert plan.status.run_outcome is not None
    assert plan.status.run_outcome.value == "TimedOut"
    assert names(plan, DeleteObject) == [f"{JOB}-1"]
    # The pod is gone: archive, then judge.
    obs2 = with_status(late, plan.status, pods=(), now=at(70))
    plan = decide(obs2)
    assert plan.state == State.ARCHIVING
    assert names(plan, CreateObject) == [f"{JOB}-1-archive-1"]
    obs3 = with_status(
        obs2, plan.status, pods=(archive_pod(phase="Succeeded", summary=SUMMARY),), now=at(80)
    )
    plan = decide(obs3)
    assert plan.state == State.TIMED_OUT
    assert plan.status.reason == "MaxRunSecondsExceeded"
    assert "60s" in (plan.status.message or "")
    assert cond(plan, "Stalled") == (T, "MaxRunSecondsExceeded")
    assert cond(plan, "Ready")[0] == F
    assert cond(plan, "Succeeded") == (F, "MaxRunSecondsExceeded")
    assert cond(plan, "Archived")[0] == T
    assert plan.status.completion_time == at(80)
    assert [(e.type, e.reason) for e in plan.events] == [("Warning", "MaxRunSecondsExceeded")]


def test_timed_out_without_archive_on_failure_ends_at_once() -> None:
    obs, plan = at_state(
        [{"pods": [running(started=NOW)]}], maxRunSeconds=60, archive={"onFailure": False}
    )
    plan = decide(with_status(obs, plan.status, now=at(60)))
    assert plan.state == State.TIMED_OUT
    assert names(plan, DeleteObject) == [f"{JOB}-1"]
    assert names(plan, CreateObject) == []
    assert cond(plan, "Archived") == (F, "NotArchived")


def test_raising_max_run_seconds_extends_a_running_job() -> None:
    obs, plan = at_state([{"pods": [running(started=NOW)]}], maxRunSeconds=60)
    late = with_status(obs, plan.status, now=at(90))
    assert decide(late).status.run_outcome is not None  # would time out...
    extended = with_status(obs, plan.status, now=at(90), spec=job_spec(maxRunSeconds=120))
    plan = decide(extended)
    assert plan.state == State.RUNNING
    assert plan.status.run_outcome is None
    assert plan.requeue_after == pytest.approx(30.0)


# --------------------------------------------------------------------------- Archiving / Finished


def succeeded_then(*archive_pods: Any, **spec: Any) -> tuple[Observation, Plan]:
    steps: list[dict[str, Any]] = [{"pods": [running()]}, {"pods": [exited(code=0)]}]
    steps += [{"pods": [exited(code=0), *pods]} for pods in archive_pods]
    return at_state(steps, **spec)


def test_success_creates_the_archive_pod() -> None:
    _, plan = succeeded_then()
    assert plan.state == State.ARCHIVING
    assert plan.status.reason == "Archiving"
    assert names(plan, CreateObject) == [f"{JOB}-1-archive-1"]
    assert plan.status.exit_code == 0
    assert plan.status.runtime == "1m30s"
    assert plan.status.archive_try == 1
    assert cond(plan, "Succeeded")[0] == U
    assert cond(plan, "Ready")[0] == F


def test_running_archive_pod_keeps_archiving_without_changes() -> None:
    _obs, plan = succeeded_then([archive_pod()])
    assert plan.state == State.ARCHIVING
    assert plan.actions == ()
    assert not plan.changed


def test_finished_after_archive_pod_succeeds_with_outputs_from_its_message() -> None:
    _, plan = succeeded_then([archive_pod(phase="Succeeded", summary=SUMMARY)])
    assert plan.state == State.FINISHED
    assert plan.status.reason == "Succeeded"
    outputs = plan.status.outputs
    assert outputs is not None
    assert outputs.wire() == SUMMARY
    assert cond(plan, "Archived") == (T, "Archived")
    assert cond(plan, "Ready")[0] == T
    assert cond(plan, "Succeeded")[0] == T
    assert cond(plan, "Reconciling")[0] == F
    assert cond(plan, "Stalled")[0] == F
    assert plan.status.completion_time == NOW
    assert [(e.type, e.reason) for e in plan.events] == [("Normal", "Succeeded")]


def test_outputs_fall_back_to_the_archive_destination_when_the_message_is_not_json() -> None:
    _, plan = succeeded_then([archive_pod(phase="Succeeded", message="done")])
    assert plan.state == State.FINISHED
    dest = f"s3://{CONFIG.default_s3_bucket}/{NS}/{JOB}/{UID}/attempt-1/"
    assert plan.status.outputs is not None
    assert plan.status.outputs.uri == dest
    assert plan.status.outputs.manifest == dest + "manifest.json"


@pytest.mark.parametrize("tries", [1, 2, 3])
def test_archive_failure_is_retried_up_to_archive_tries_then_archive_failed(tries: int) -> None:
    config = OperatorConfig(archive_tries=tries)
    obs = observe(job_view(), config=config)
    steps: list[dict[str, Any]] = [{"pods": [running()]}, {"pods": [exited(code=0)]}]
    failed = []
    for t in range(1, tries + 1):
        failed.append(archive_pod(try_=t, phase="Failed", message=f"upload failed {t}"))
        steps.append({"pods": [exited(code=0), *failed]})
    plans = run_steps(obs, steps)
    retries = plans[3:-1]
    for t, plan in enumerate(retries, start=2):
        assert (plan.state, plan.status.reason) == (State.ARCHIVING, "ArchiveRetrying")
        assert names(plan, CreateObject) == [f"{JOB}-1-archive-{t}"]
    final = plans[-1]
    assert (final.state, final.status.reason) == (State.FAILED, "ArchiveFailed")
    assert f"upload failed {tries}" in (final.status.message or "")
    assert cond(final, "Archived") == (F, "ArchiveFailed")
    assert cond(final, "Ready")[0] == F
    assert cond(final, "Stalled")[0] == T
    assert all(p.state != State.FINISHED for p in plans)


def test_archive_pod_being_deleted_is_waited_for() -> None:
    _, plan = succeeded_then([archive_pod(deleting=True)])
    assert (plan.state, plan.status.reason) == (State.ARCHIVING, "ArchiveRetrying")
    assert plan.actions == ()


# --------------------------------------------------------------------------- app failures


def test_app_failure_is_archived_then_failed_with_the_exit_code() -> None:
    plans = run_steps(
        started(),
        [
            {"pods": [running()]},
            {"pods": [exited(code=3)]},
            {"pods": [exited(code=3), archive_pod(phase="Succeeded", summary=SUMMARY)]},
        ],
    )
    archiving, final = plans[-2], plans[-1]
    assert archiving.state == State.ARCHIVING
    assert archiving.status.exit_code == 3
    assert (final.state, final.status.reason) == (State.FAILED, "AppFailed")
    assert final.status.exit_code == 3
    assert "code 3" in (final.status.message or "")
    assert cond(final, "Stalled") == (T, "AppFailed")
    assert cond(final, "Succeeded") == (F, "AppFailed")
    assert cond(final, "Archived")[0] == T
    assert [(e.type, e.reason) for e in final.events] == [("Warning", "AppFailed")]


def test_archive_on_failure_false_skips_archiving() -> None:
    plans = run_steps(
        started(archive={"onFailure": False}), [{"pods": [running()]}, {"pods": [exited(code=3)]}]
    )
    final = plans[-1]
    assert (final.state, final.status.reason) == (State.FAILED, "AppFailed")
    assert final.status.exit_code == 3
    assert "code 3" in (final.status.message or "")
    assert names(final, CreateObject) == []
    assert cond(final, "Archived") == (F, "NotArchived")


def test_archive_on_failure_false_still_archives_success() -> None:
    plans = run_steps(
        started(archive={"onFailure": False}), [{"pods": [running()]}, {"pods": [exited(code=0)]}]
    )
    assert plans[-1].state == State.ARCHIVING
    assert names(plans[-1], CreateObject) == [f"{JOB}-1-archive-1"]


def test_app_failure_retried_when_budget_allows_then_failed() -> None:
    spec: dict[str, Any] = {"retry": {"appFailures": 1, "infraFailures": 0}}
    spec["archive"] = {"onFailure": False}
    plans = run_steps(
        started(**spec),
        [
            {"pods": [running()]},
            {"pods": [exited(code=3)]},
            {"now": at(9)},
            {"now": at(10)},
            {"pods": [exited(code=3), running(2)]},
            {"pods": [exited(code=3), exited(2, code=4)]},
        ],
    )
    retrying = plans[2]
    assert (retrying.state, retrying.status.reason) == (State.RETRYING, "AppFailed")
    assert retrying.status.attempt == 1  # attempt 2 starts after the backoff
    assert retrying.status.retries is not None
    assert (retrying.status.retries.app_failures, retrying.status.retries.infra_failures) == (1, 0)
    assert "code 3" in (retrying.status.message or "")
    assert "attempt 2 starts at 2026-03-01T12:00:10Z after a 10s backoff" in (
        retrying.status.message or ""
    )
    assert kinds(retrying) == []
    assert retrying.requeue_after == 10
    assert retrying.status.run_outcome is None
    assert [(e.type, e.reason) for e in retrying.events] == [("Warning", "AppFailed")]
    waiting = plans[3]
    assert (waiting.state, waiting.changed, waiting.actions) == (State.RETRYING, False, ())
    assert waiting.requeue_after == 1
    started2 = plans[4]
    assert (started2.state, started2.status.reason) == (State.QUEUED, "PodCreated")
    assert started2.status.attempt == 2
    assert kinds(started2) == [
        ("create", "PersistentVolumeClaim", f"{JOB}-2"),
        ("create", "Pod", f"{JOB}-2"),
    ]
    assert started2.events == ()
    assert plans[5].state == State.RUNNING
    final = plans[6]
    assert (final.state, final.status.reason) == (State.FAILED, "AppFailed")
    assert final.status.attempt == 2
    assert final.status.exit_code == 4
    assert final.status.retries is not None
    assert final.status.retries.app_failures == 1


def test_app_failure_retry_after_archiving() -> None:
    plans = run_steps(
        started(retry={"appFailures": 2}),
        [
            {"pods": [running()]},
            {"pods": [exited(code=1)]},
            {"pods": [exited(code=1), archive_pod(phase="Succeeded", summary=SUMMARY)]},
            {"now": at(10)},
        ],
    )
    plan = plans[-2]
    assert (plan.state, plan.status.attempt) == (State.RETRYING, 1)
    assert cond(plan, "Archived")[0] == T  # attempt 1 is archived
    assert plan.actions == ()
    plan = plans[-1]
    assert (plan.state, plan.status.attempt) == (State.QUEUED, 2)
    assert cond(plan, "Archived")[0] == U  # the new attempt is not archived yet
    assert plan.status.archive_try is None


def test_the_retried_attempt_is_archived_too() -> None:
    done = archive_pod(phase="Succeeded", summary=SUMMARY)
    summary2 = {**SUMMARY, "uri": str(SUMMARY["uri"]).replace("attempt-1", "attempt-2")}
    plans = run_steps(
        started(retry={"appFailures": 1}),
        [
            {"pods": [running()]},
            {"pods": [exited(code=1)]},
            {"pods": [exited(code=1), done]},
            {"now": at(10)},
            {"pods": [exited(code=1), done, running(2)]},
            {"pods": [exited(code=1), done, exited(2, code=0)]},
            {
                "pods": [
                    exited(code=1),
                    done,
                    exited(2, code=0),
                    archive_pod(2, phase="Succeeded", summary=summary2),
                ]
            },
        ],
    )
    assert [p.state for p in plans[-3:]] == [State.RUNNING, State.ARCHIVING, State.FINISHED]
    assert names(plans[-2], CreateObject) == [f"{JOB}-2-archive-1"]
    outputs = plans[-1].status.outputs
    assert outputs is not None
    assert "attempt-2" in outputs.uri


# --------------------------------------------------------------------------- infra failures


@pytest.mark.parametrize(
    ("pods", "deleted", "why"),
    [
        ([evicted()], [], "Evicted"),
        ([disrupted()], [f"{JOB}-1"], "PreemptionByScheduler"),
        ([disrupted(reason="DeletionByTaintManager")], [f"{JOB}-1"], "DeletionByTaintManager"),
        ([], [], "disappeared"),
    ],
    ids=["evicted", "disruption-target", "taint-manager", "pod-disappeared"],
)
def test_infra_failure_retries_against_the_infra_budget(
    pods: list[Any], deleted: list[str], why: str
) -> None:
    plans = run_steps(
        started(retry={"appFailures": 0, "infraFailures": 2}),
        [{"pods": [running()]}, {"pods": pods}, {"now": at(10)}],
    )
    plan = plans[-2]
    assert (plan.state, plan.status.reason) == (State.RETRYING, "InfraFailure")
    assert why in (plan.status.message or "")
    assert plan.status.attempt == 1
    assert plan.status.retries is not None
    assert (plan.status.retries.infra_failures, plan.status.retries.app_failures) == (1, 0)
    assert names(plan, DeleteObject) == deleted
    assert names(plan, CreateObject) == []
    assert [(e.type, e.reason) for e in plan.events] == [("Warning", "InfraFailure")]
    plan = plans[-1]
    assert (plan.state, plan.status.attempt) == (State.QUEUED, 2)
    assert names(plan, CreateObject) == [f"{JOB}-2", f"{JOB}-2"]


def test_infra_failure_with_budget_exhausted_fails() -> None:
    plans = run_steps(
        started(retry={"appFailures": 5, "infraFailures": 1}),
        [
            {"pods": [running()]},
            {"pods": [evicted()]},
            {"now": at(10)},
            {"pods": [evicted(), running(2)]},
            {"pods": [evicted(), evicted(2)]},
        ],
    )
    assert plans[2].state == State.RETRYING
    final = plans[-1]
    assert (final.state, final.status.reason) == (State.FAILED, "InfraFailed")
    assert final.status.retries is not None
    assert final.status.retries.infra_failures == 1
    assert final.status.retries.app_failures == 0
    assert cond(final, "Stalled") == (T, "InfraFailed")


def test_infra_and_app_budgets_are_separate() -> None:
    plans = run_steps(
        started(retry={"appFailures": 1, "infraFailures": 1}, archive={"onFailure": False}),
        [
            {"pods": [running()]},
            {"pods": [evicted()]},  # infra 1/1 -> attempt 2 after 10 s
            {"now": at(10)},
            {"pods": [evicted(), running(2)]},
            {"pods": [evicted(), exited(2, code=5)]},  # app 1/1 -> attempt 3 after 20 s
            {"now": at(29)},
            {"now": at(30)},
            {"pods": [evicted(), exited(2, code=5), running(3)]},
            {"pods": [evicted(), exited(2, code=5), exited(3, code=6)]},
        ],
    )
    assert [p.state for p in plans] == [
        State.QUEUED,
        State.RUNNING,
        State.RETRYING,
        State.QUEUED,
        State.RUNNING,
        State.RETRYING,
        State.RETRYING,
        State.QUEUED,
        State.RUNNING,
        State.FAILED,
    ]
    # The second failure (one per budget, counted together) doubles the backoff.
    assert "after a 20s backoff" in (plans[5].status.message or "")
    assert plans[6].requeue_after == 1
    final = plans[-1]
    assert final.status.reason == "AppFailed"
    assert final.status.attempt == 3
    assert final.status.retries is not None
    assert (final.status.retries.app_failures, final.status.retries.infra_failures) == (1, 1)


def test_a_retry_runs_the_app_as_accepted_even_when_the_app_is_gone() -> None:
    """The App is pinned at acceptance (status.app.spec): deleting it does not block a
    restart, and the restart runs what was accepted."""
    obs, plan = at_state([{"pods": [running()]}], retry={"infraFailures": 2})
    assert plan.status.app is not None
    assert plan.status.app.spec is not None
    gone = with_status(obs, plan.status, pods=(), app=None)
    retrying = decide(gone)
    assert (retrying.state, retrying.status.attempt) == (State.RETRYING, 1)
    back = decide(with_status(gone, retrying.status, now=at(10)))
    assert (back.state, back.status.attempt) == (State.QUEUED, 2)
    assert back.status.retries is not None
    assert back.status.retries.infra_failures == 1
    pods = [a.manifest for a in back.actions if isinstance(a, CreateObject) and a.kind == "Pod"]
    assert [p["spec"]["containers"][0]["image"] for p in pods] == [plan.status.app.image]


def test_a_retry_runs_the_app_as_accepted_when_the_app_changed() -> None:
    obs, plan = at_state([{"pods": [running()]}], retry={"infraFailures": 2})
    changed = app_view(app_spec(image="example.org/other:9", args=["--evil"]))
    retrying = decide(with_status(obs, plan.status, pods=(), app=changed))
    back = decide(with_status(obs, retrying.status, pods=(), app=changed, now=at(10)))
    assert back.state == State.QUEUED
    pods = [a.manifest for a in back.actions if isinstance(a, CreateObject) and a.kind == "Pod"]
    (app_container,) = pods[0]["spec"]["containers"]
    assert app_container["image"] != "example.org/other:9"
    assert "--evil" not in app_container.get("args", [])


def test_a_snapshot_without_the_spec_still_needs_the_app_to_restart() -> None:
    """A Job accepted before snapshots kept the spec (an upgrade) falls back to the live App:
    a missing one blocks the restart after the backoff (the lost pod counted once)."""
    obs, plan = at_state([{"pods": [running()]}], retry={"infraFailures": 2})
    assert plan.status.app is not None
    old = plan.status.model_copy(update={"app": plan.status.app.model_copy(update={"spec": None})})
    gone = with_status(obs, old, pods=(), app=None)
    retrying = decide(gone)
    assert retrying.state == State.RETRYING
    first = decide(with_status(gone, retrying.status, now=at(10)))
    assert (first.state, first.status.reason) == (State.BLOCKED, "AppNotFound")
    assert first.status.attempt == 1
    back = decide(with_status(gone, first.status, app=app_view(), now=at(11)))
    assert (back.state, back.status.attempt) == (State.QUEUED, 2)
    assert back.status.retries is not None
    assert back.status.retries.infra_failures == 1


@pytest.mark.parametrize(("wanted", "blocked"), [("2.0", True), ("1.0", False), (None, False)])
def test_app_ref_version_runs_only_that_version(wanted: str | None, blocked: bool) -> None:
    spec = job_spec(appRef={"name": "solver", **({"version": wanted} if wanted else {})})
    plan = decide(observe(job_view(spec), app=app_view(app_spec(version="1.0"))))
    if blocked:
        assert (plan.state, plan.status.reason) == (State.BLOCKED, "AppVersionMismatch")
        assert "'2.0'" in (plan.status.message or "")
        assert "'1.0'" in (plan.status.message or "")
        assert cond(plan, "Accepted") == (F, "AppVersionMismatch")
        assert plan.actions == ()
    else:
        assert plan.state == State.QUEUED


# --------------------------------------------------------------------------- Blocked


@pytest.mark.parametrize(
    ("app", "mpi", "reason", "needle"),
    [
        (None, True, "AppNotFound", "'solver' not found"),
        (app_view(error="spec.image: Field required"), True, "AppInvalid", "spec.image"),
        (app_view(app_spec(args=["{{params.nope}}"])), True, "AppInvalid", "params.nope"),
        (
            app_view(app_spec(runtime={"type": "MPI", "mpi": {"workers": 2}})),
            False,
            "MPIOperatorMissing",
            "MPIJob",
        ),
    ],
    ids=[
        "app-missing",
        "app-unparsable",
        "app-unsound",
        "mpi-operator-missing",
    ],
)
def test_blocked_before_acceptance(app: Any, mpi: bool, reason: str, needle: str) -> None:
    plan = decide(observe(job_view(), app=app, mpi_available=mpi))
    assert (plan.state, plan.status.reason) == (State.BLOCKED, reason)
    assert needle in (plan.status.message or "")
    assert plan.actions == ()
    assert cond(plan, "Accepted") == (F, reason)
    assert cond(plan, "Reconciling") == (T, "Blocked")
    assert cond(plan, "Stalled")[0] == F
    assert cond(plan, "Succeeded")[0] == U
    assert [(e.type, e.reason) for e in plan.events] == [("Warning", reason)]


def test_a_runtime_without_a_runner_is_never_run_as_one_pod() -> None:
    """A Ferry without a runner for the App's runtime (here: only the Pod runner) stops an MPI
    Job at RuntimeUnavailable, accepted or not: no PVC, no pod."""
    app = app_view(app_spec(runtime={"type": "MPI", "mpi": {"workers": 2}}))
    accepted = JobStatus.model_validate(
        {"app": {"name": "solver", "version": "1", "image": "x", "specHash": "0"}}
    )
    for status in (JobStatus(), accepted):
        obs = observe(job_view(status=status), app=app, mpi_available=True)
        plan = lifecycle.decide(obs, {"Pod": pod_runner.PodRunner()})
        assert (plan.state, plan.status.reason) == (State.BLOCKED, "RuntimeUnavailable")
        assert "runs as MPI" in (plan.status.message or "")
        assert not [a for a in plan.actions if isinstance(a, CreateObject)]


def test_an_mpi_app_runs_as_an_mpijob_never_as_one_pod() -> None:
    """With the MPIJob CRD installed, an MPI App's first attempt is its workspace and one
    MPIJob, accepted or not: never a pod of Ferry's own."""
    app = app_view(app_spec(runtime={"type": "MPI", "mpi": {"workers": 2}}))
    accepted = JobStatus.model_validate(
        {"app": {"name": "solver", "version": "1", "image": "x", "specHash": "0"}}
    )
    for status in (JobStatus(), accepted):
        plan = decide(observe(job_view(status=status), app=app, mpi_available=True))
        assert plan.state == State.QUEUED
        created = [a.manifest["kind"] for a in plan.actions if isinstance(a, CreateObject)]
        assert created == ["PersistentVolumeClaim", "MPIJob"]
        assert plan.status.pod_name == f"{JOB}-1"


def test_blocked_recovers_when_the_app_appears() -> None:
    obs = observe(job_view(), app=None)
    plan = decide(obs)
    assert plan.state == State.BLOCKED
    plan = decide(with_status(obs, plan.status, app=app_view()))
    assert plan.state == State.QUEUED
    assert cond(plan, "Accepted") == (T, "Accepted")
    assert names(plan, CreateObject) == [f"{JOB}-1", f"{JOB}-1"]
    assert [h.state for h in plan.status.history] == [State.BLOCKED, State.QUEUED]


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("CreateContainerConfigError", "ConfigError"),
        ("CreateContainerError", "ConfigError"),
        ("ErrImagePull", "ImagePullFailed"),
        ("ImagePullBackOff", "ImagePullFailed"),
        ("InvalidImageName", "ImagePullFailed"),
    ],
)
def test_container_waiting_errors_block_and_recover(reason: str, expected: str) -> None:
    message = 'secret "ferry-s3" not found'
    obs, plan = at_state([{"pods": [waiting(reason=reason, message=message)]}])
    assert (plan.state, plan.status.reason) == (State.BLOCKED, expected)
    assert "container app" in (plan.status.message or "")
    assert plan.requeue_after == run.BLOCKED_RECHECK_SECONDS
    assert plan.actions == ()
    assert cond(plan, "Accepted")[0] == T
    recovered = decide(with_status(obs, plan.status, pods=(running(),)))
    assert recovered.state == State.RUNNING


def test_config_error_in_a_stager_blocks_too() -> None:
    init = (
        container("ferry-setup", "terminated", exit_code=0),
        container("stage-model", "waiting", reason="CreateContainerConfigError", message="x"),
    )
    pod = run_pod(phase="Pending", init=init, main=None)
    _, plan = at_state([{"pods": [pod]}])
    assert (plan.state, plan.status.reason) == (State.BLOCKED, "ConfigError")
    assert "stage-model" in (plan.status.message or "")


FAILED_MOUNT = PodWarning(
    "FailedMount",
    'MountVolume.SetUp failed for volume "in-model" : configmap "frames" not found',
    at(-5),
)
DNS = PodWarning("DNSConfigForming", "Nameserver limits were exceeded", at(-1))


def not_started(scheduled_at: float = -90.0, *warnings: PodWarning) -> PodView:
    """A run pod scheduled `scheduled_at` s from NOW whose containers never ran, with its
    Warning Events (newest first)."""
    return dataclasses.replace(
        unscheduled(),
        scheduled=True,
        schedule_message="",
        scheduled_at=at(scheduled_at),
        warnings=warnings,
    )


def test_a_pod_slow_to_start_blocks_with_its_warning_naming_the_input() -> None:
    obs, plan = at_state([{"pods": [not_started(-90, DNS, FAILED_MOUNT)]}])
    assert (plan.state, plan.status.reason) == (State.BLOCKED, "PodNotStarting")
    assert plan.status.message == (
        f"input 'model': pod {JOB}-1 has not started: FailedMount: {FAILED_MOUNT.message}"
    )
    assert plan.requeue_after == run.BLOCKED_RECHECK_SECONDS
    assert plan.actions == ()
    assert [e.type for e in plan.events] == ["Warning"]
    recovered = decide(with_status(obs, plan.status, pods=(staging(),)))
    assert (recovered.state, recovered.status.reason) == (State.STAGING_INPUTS, "StagingInputs")
    assert "has not started" not in (recovered.status.message or "")


def test_a_start_failure_not_about_an_input_volume_is_shown_as_it_is() -> None:
    sandbox = PodWarning("FailedCreatePodSandBox", 'failed to setup network for sandbox "abc"')
    _, plan = at_state([{"pods": [not_started(-90, sandbox)]}])
    assert (plan.state, plan.status.reason) == (State.BLOCKED, "PodNotStarting")
    assert plan.status.message == f"pod {JOB}-1 has not started: {sandbox.reason}: " + (
        sandbox.message
    )


def test_a_start_failure_not_repeated_for_minutes_is_taken_as_overcome() -> None:
    fresh = pod_runner.START_FAILURE_FRESH_SECONDS
    old = dataclasses.replace(FAILED_MOUNT, last_seen=at(-fresh - 1))
    _, plan = at_state([{"pods": [not_started(-900, old)]}])
    assert (plan.state, plan.status.reason) == (State.STAGING_INPUTS, "StagingInputs")
    recent = dataclasses.replace(FAILED_MOUNT, last_seen=at(-fresh + 1))
    _, plan = at_state([{"pods": [not_started(-900, recent)]}])
    assert plan.state == State.BLOCKED


def test_warnings_that_do_not_stop_a_pod_starting_do_not_block() -> None:
    _, plan = at_state([{"pods": [not_started(-90, DNS)]}])
    assert (plan.state, plan.status.reason) == (State.STAGING_INPUTS, "StagingInputs")
    assert plan.requeue_after == run.BLOCKED_RECHECK_SECONDS


def test_a_pod_within_its_start_grace_is_staging_and_looked_at_when_it_ends() -> None:
    grace = CONFIG.pod_start_grace_seconds
    _, plan = at_state([{"pods": [not_started(-10, FAILED_MOUNT)]}])
    assert (plan.state, plan.status.reason) == (State.STAGING_INPUTS, "StagingInputs")
    assert plan.requeue_after == pytest.approx(grace - 10)


def test_a_slow_pod_without_warnings_stays_staging_and_is_looked_at_again() -> None:
    _, plan = at_state([{"pods": [not_started(-90)]}])
    assert (plan.state, plan.status.reason) == (State.STAGING_INPUTS, "StagingInputs")
    assert plan.requeue_after == run.BLOCKED_RECHECK_SECONDS


def test_the_start_grace_is_a_setting() -> None:
    obs, _ = at_state([{"pods": [not_started(-10, FAILED_MOUNT)]}])
    quick = dataclasses.replace(obs, config=OperatorConfig(pod_start_grace_seconds=5))
    assert decide(quick).state == State.BLOCKED


def test_a_running_pod_is_never_looked_into() -> None:
    pod = dataclasses.replace(running(), scheduled_at=at(-3600), warnings=(FAILED_MOUNT,))
    _, plan = at_state([{"pods": [pod]}])
    assert (plan.state, plan.status.reason) == (State.RUNNING, "AppRunning")
    assert plan.requeue_after != run.BLOCKED_RECHECK_SECONDS


# --------------------------------------------------------------------------- parents


@pytest.mark.parametrize(
    ("parents", "needle"),
    [
        ({"mesh-001": parent("mesh-001", State.RUNNING)}, "mesh-001 (Running)"),
        ({"mesh-001": parent("mesh-001", None)}, "mesh-001 (Pending)"),
        ({"mesh-001": parent("mesh-001", State.RETRYING)}, "mesh-001 (Retrying)"),
    ],
    ids=["running", "no-status", "retrying"],
)
def test_awaiting_parents(parents: dict[str, Any], needle: str) -> None:
    plan = decide(observe(job_view(job_spec(parents=["mesh-001"])), parents=parents))
    assert (plan.state, plan.status.reason) == (State.AWAITING_PARENTS, "AwaitingParents")
    assert needle in (plan.status.message or "")
    assert plan.actions == ()
    assert plan.requeue_after == CONFIG.resync_seconds
    assert cond(plan, "Accepted")[0] == T
    assert plan.status.attempt is None


def test_job_starts_when_every_parent_finished() -> None:
    spec = job_spec(parents=["a", "b"])
    parents = {"a": parent("a", State.FINISHED), "b": parent("b", State.RUNNING)}
    obs = observe(job_view(spec), parents=parents)
    plan = decide(obs)
    assert plan.state == State.AWAITING_PARENTS
    assert "b (Running)" in (plan.status.message or "")
    assert "a (" not in (plan.status.message or "")
    done = {"a": parent("a", State.FINISHED), "b": parent("b", State.FINISHED)}
    plan = decide(with_status(obs, plan.status, parents=done))
    assert plan.state == State.QUEUED
    assert plan.status.attempt == 1


@pytest.mark.parametrize("state", [State.FAILED, State.TIMED_OUT, State.CANCELLED])
def test_parent_ending_unsuccessfully_fails_the_job(state: State) -> None:
    parents = {"mesh-001": parent("mesh-001", state, "AppFailed")}
    plan = decide(observe(job_view(job_spec(parents=["mesh-001"])), parents=parents))
    assert (plan.state, plan.status.reason) == (State.FAILED, "ParentFailed")
    assert "mesh-001" in (plan.status.message or "")
    assert state.value in (plan.status.message or "")
    assert plan.actions == ()
    assert cond(plan, "Stalled") == (T, "ParentFailed")


# --------------------------------------------------------------------------- Suspended


def test_suspended_before_start_creates_nothing_and_resume_starts_attempt_1() -> None:
    obs = started(suspend=True)
    plan = decide(obs)
    assert (plan.state, plan.status.reason) == (State.SUSPENDED, "Suspended")
    assert plan.actions == ()
    assert cond(plan, "Reconciling") == (T, "Suspended")
    assert cond(plan, "Succeeded")[0] == U
    resumed = decide(with_status(obs, plan.status, spec=job_spec(suspend=False)))
    assert resumed.state == State.QUEUED
    assert resumed.status.attempt == 1
    assert names(resumed, CreateObject) == [f"{JOB}-1", f"{JOB}-1"]


def test_suspend_while_running_deletes_the_pod_and_resume_starts_the_next_attempt() -> None:
    plans = run_steps(
        started(),
        [
            {"pods": [running()]},
            {"spec": job_spec(suspend=True)},
            {"pods": [run_pod(main=running().main, deleting=True)]},
            {"pods": []},
            {"spec": job_spec(suspend=False)},
        ],
    )
    suspending = plans[2]
    assert suspending.state == State.SUSPENDED
    assert names(suspending, DeleteObject) == [f"{JOB}-1"]
    assert names(plans[3], DeleteObject) == []  # already being deleted
    assert plans[4].state == State.SUSPENDED
    assert plans[4].actions == ()
    resumed = plans[5]
    assert (resumed.state, resumed.status.reason) == (State.QUEUED, "Resumed")
    assert resumed.status.attempt == 2
    assert names(resumed, CreateObject) == [f"{JOB}-2", f"{JOB}-2"]
    assert resumed.status.retries is None  # suspension is not a failure


def test_suspending_a_run_not_yet_recorded_running_keeps_running_in_the_history() -> None:
    # The pod's start and the suspend are seen in one pass (Running was held, or the pod's
    # progress not yet looked at): the history still says the app ran, at its start time.
    plans = run_steps(started(), [{"pods": [running()], "spec": job_spec(suspend=True)}])
    history = plans[-1].status.history
    assert [h.state for h in history][-2:] == [State.RUNNING, State.SUSPENDED]
    assert history[-2].time == NOW
    assert names(plans[-1], DeleteObject) == [f"{JOB}-1"]


def test_suspending_before_the_app_started_records_no_running() -> None:
    plans = run_steps(started(), [{"pods": [staging()], "spec": job_spec(suspend=True)}])
    assert State.RUNNING not in [h.state for h in plans[-1].status.history]


def test_resume_waits_for_the_old_pod_to_stop() -> None:
    plans = run_steps(
        started(),
        [
            {"pods": [running()]},
            {"spec": job_spec(suspend=True)},
            {
                "spec": job_spec(suspend=False),
                "pods": [run_pod(main=running().main, deleting=True)],
            },
        ],
    )
    assert (plans[-1].state, plans[-1].status.reason) == (State.SUSPENDED, "Resuming")
    assert plans[-1].actions == ()


# --------------------------------------------------------------------------- StageInFailed


def test_stage_in_failure_names_the_input() -> None:
    _obs, plan = at_state([{"pods": [stage_failed(name="model", message="HTTP 404")]}])
    assert (plan.state, plan.status.reason) == (State.FAILED, "StageInFailed")
    assert "'model'" in (plan.status.message or "")
    assert "HTTP 404" in (plan.status.message or "")
    assert cond(plan, "InputsStaged") == (F, "StageInFailed")
    assert cond(plan, "Stalled") == (T, "StageInFailed")


def test_stage_in_failure_names_the_input_once() -> None:
    """The stager's termination message already starts with "input 'model': "."""
    message = "input 'model': s3://models/frame.tcl not found (NoSuchKey)"
    _obs, plan = at_state([{"pods": [stage_failed(name="model", message=message)]}])
    assert plan.status.message == f"{message} (exit code 2)"


def test_stage_in_failure_in_a_live_pod_deletes_it() -> None:
    pod = stage_failed()
    live = run_pod(phase="Pending", init=pod.init, main=pod.main)
    _, plan = at_state([{"pods": [live]}])
    assert plan.state == State.FAILED
    assert names(plan, DeleteObject) == [f"{JOB}-1"]


# --------------------------------------------------------------------------- InvalidSpec


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        (job_spec(parameters={"steps": 5, "bogus": 1}), "bogus"),
        (job_spec(parameters={"steps": 0}), "spec.parameters.steps"),
        (job_spec(parameters={"steps": "many"}), "spec.parameters.steps"),
        (job_spec(inputs=[]), "'model'"),
        (
            job_spec(
                inputs=[*job_spec().wire()["inputs"], {"name": "x", "source": {"inline": "1"}}]
            ),
            "'x'",
        ),
    ],
    ids=["unknown-param", "below-minimum", "wrong-type", "missing-input", "unknown-input"],
)
def test_invalid_spec_fails_without_creating_anything(spec: Any, needle: str) -> None:
    plan = decide(observe(job_view(spec)))
    assert (plan.state, plan.status.reason) == (State.FAILED, "InvalidSpec")
    assert needle in (plan.status.message or "")
    assert plan.actions == ()
    assert cond(plan, "Accepted") == (F, "InvalidSpec")
    assert cond(plan, "Stalled") == (T, "InvalidSpec")
    assert plan.status.completion_time == NOW
    assert [(e.type, e.reason) for e in plan.events] == [("Warning", "InvalidSpec")]


def test_unparsable_spec_fails_as_invalid_spec() -> None:
    job = job_view(spec=None, spec_error="spec.appRef.name: Field required")
    plan = decide(observe(job))
    assert (plan.state, plan.status.reason) == (State.FAILED, "InvalidSpec")
    assert "spec.appRef.name" in (plan.status.message or "")


def test_parameter_without_value_used_in_a_template_is_invalid_spec() -> None:
    app = app_spec(
        parameters=[{"name": "steps", "type": "integer"}], args=["--steps={{params.steps}}"]
    )
    plan = decide(observe(job_view(job_spec(parameters={})), app=app_view(app)))
    assert (plan.state, plan.status.reason) == (State.FAILED, "InvalidSpec")
    assert "steps" in (plan.status.message or "")


# --------------------------------------------------------------------------- Cancelling


def test_cancel_stops_live_pods_then_cancels() -> None:
    obs, plan = at_state([{"pods": [running()]}])
    cancel = with_status(obs, plan.status, spec=job_spec(cancel=True))
    plan = decide(cancel)
    assert (plan.state, plan.status.reason) == (State.CANCELLING, "CancelRequested")
    assert kinds(plan) == [("delete", "Pod", f"{JOB}-1")]
    assert cond(plan, "Reconciling") == (T, "Cancelling")
    again = decide(
        with_status(cancel, plan.status, pods=(run_pod(main=running().main, deleting=True),))
    )
    assert again.state == State.CANCELLING
    assert again.actions == ()
    done = decide(with_status(cancel, again.status, pods=(), pvcs={f"{JOB}-1"}))
    assert (done.state, done.status.reason) == (State.CANCELLED, "Cancelled")
    assert cond(done, "Stalled") == (T, "Cancelled")
    assert cond(done, "Ready")[0] == F
    assert cond(done, "Succeeded") == (F, "Cancelled")
    assert [(e.type, e.reason) for e in done.events] == [("Warning", "Cancelled")]
    assert done.status.completion_time == NOW
    # The terminal pass cleans the workspace left behind.
    leftover = decide(with_status(cancel, done.status, pods=(), pvcs={f"{JOB}-1"}))
    assert kinds(leftover) == [("delete", "PersistentVolumeClaim", f"{JOB}-1")]


def test_cancel_before_start() -> None:
    plan = decide(started(cancel=True))
    assert plan.state == State.CANCELLED
    assert plan.actions == ()
    assert cond(plan, "Accepted") == (F, "Cancelled")


def test_cancel_beats_suspend() -> None:
    plan = decide(started(cancel=True, suspend=True))
    assert plan.state == State.CANCELLED


# --------------------------------------------------------------------------- terminal


def finished_status() -> tuple[Observation, JobStatus]:
    obs, plan = succeeded_then(
        [archive_pod(phase="Succeeded", summary=SUMMARY)], ttlSecondsAfterFinished=600
    )
    assert plan.state == State.FINISHED
    return obs, plan.status


def test_terminal_state_deletes_leftover_pods_and_pvcs() -> None:
    obs, status = finished_status()
    plan = decide(
        with_status(
            obs,
            status,
            pods=(running(2), run_pod(3, deleting=True), exited(code=0)),
            pvcs={f"{JOB}-1", f"{JOB}-2"},
        )
    )
    assert plan.state == State.FINISHED
    # Finished pods go too: one that mounts a workspace keeps it from being deleted.
    assert kinds(plan) == [
        ("delete", "PersistentVolumeClaim", f"{JOB}-1"),
        ("delete", "PersistentVolumeClaim", f"{JOB}-2"),
        ("delete", "Pod", f"{JOB}-2"),
        ("delete", "Pod", f"{JOB}-1"),
    ]
    assert not plan.changed
    assert plan.events == ()


def test_finishing_pass_deletes_finished_pods_so_the_workspace_can_go() -> None:
    # A finished pod that mounts the workspace keeps the PVC's pvc-protection finalizer:
    # the workspace is only freed once the Job's pods are gone too.
    obs, plan = succeeded_then([archive_pod(phase="Succeeded", summary=SUMMARY)])
    assert plan.state == State.FINISHED
    obs = with_status(
        obs,
        obs.job.status,
        pods=(exited(code=0), archive_pod(phase="Succeeded", summary=SUMMARY)),
        pvcs={f"{JOB}-1"},
    )
    plan = decide(obs)
    assert plan.state == State.FINISHED
    # Workspaces first: a pass cut short leaves pods, whose events bring the Job back.
    assert kinds(plan) == [
        ("delete", "PersistentVolumeClaim", f"{JOB}-1"),
        ("delete", "Pod", f"{JOB}-1"),
        ("delete", "Pod", f"{JOB}-1-archive-1"),
    ]


@pytest.mark.parametrize(
    ("after", "deletes", "requeue"),
    [(0, False, 600.0), (599, False, 1.0), (600, True, None), (5000, True, None)],
)
def test_ttl_seconds_after_finished(after: int, deletes: bool, requeue: float | None) -> None:
    obs, status = finished_status()
    assert status.completion_time is not None
    now = status.completion_time + timedelta(seconds=after)
    plan = decide(with_status(obs, status, pods=(), now=now))
    assert (DeleteJob() in plan.actions) is deletes
    assert plan.requeue_after == (pytest.approx(requeue) if requeue is not None else None)
    assert plan.state == State.FINISHED


def test_no_ttl_never_deletes_the_job() -> None:
    _, plan = succeeded_then([archive_pod(phase="Succeeded", summary=SUMMARY)])
    obs = observe(job_view(status=plan.status), now=at(10**6))
    again = decide(obs)
    assert DeleteJob() not in again.actions
    assert again.requeue_after is None


def test_a_deleting_job_is_left_alone() -> None:
    obs, plan = at_state([{"pods": [running()]}])
    job = job_view(obs.job.spec, plan.status, deleting=True)
    out = decide(observe(job, pods=[running()]))
    assert not out.changed
    assert out.actions == ()
    assert out.status == plan.status


# --------------------------------------------------------------------------- conditions, history


def scenario_plans() -> list[Plan]:
    """Final plans of many scenarios, one per state reachable from decide."""
    plans = []
    plans += run_steps(
        started(),
        [
            {"pods": [unscheduled()]},
            {"pods": [staging()]},
            {"pods": [running()]},
            {"pods": [exited(code=0)]},
            {"pods": [exited(code=0), archive_pod(phase="Succeeded", summary=SUMMARY)]},
        ],
    )
    plans.append(decide(observe(job_view(), app=None)))
    plans.append(decide(started(suspend=True)))
    plans.append(decide(started(cancel=True)))
    plans.append(
        decide(observe(job_view(job_spec(parents=["p"])), parents={"p": parent("p", None)}))
    )
    plans.append(decide(observe(job_view(job_spec(parameters={"x": 1})))))
    plans += run_steps(started(), [{"pods": [running()]}, {"pods": [evicted()]}])
    plans += run_steps(
        started(maxRunSeconds=5, archive={"onFailure": False}),
        [{"pods": [running()]}, {"now": at(10)}],
    )
    obs, plan = at_state([{"pods": [running()]}])
    plans.append(decide(with_status(obs, plan.status, spec=job_spec(cancel=True))))
    return plans


SCENARIOS = scenario_plans()


def test_scenarios_cover_every_state_but_pending() -> None:
    seen = {p.state for p in SCENARIOS}
    assert seen == set(State) - {State.PENDING}


@pytest.mark.parametrize(
    "plan", SCENARIOS, ids=[f"{p.state.value}-{p.status.reason}" for p in SCENARIOS]
)
def test_kstatus_conditions_follow_the_state(plan: Plan) -> None:
    state = plan.state
    ready, _ = cond(plan, "Ready")
    stalled, _ = cond(plan, "Stalled")
    reconciling, _ = cond(plan, "Reconciling")
    succeeded, _ = cond(plan, "Succeeded")
    assert ready == (T if state == State.FINISHED else F)
    assert stalled == (T if state in (State.FAILED, State.TIMED_OUT, State.CANCELLED) else F)
    assert reconciling == (F if state.terminal else T)
    if state.terminal:
        assert succeeded == (T if state == State.FINISHED else F)
    else:
        assert succeeded == U
    types = [c.type for c in plan.status.conditions]
    assert sorted(types) == sorted(
        ["Accepted", "InputsStaged", "Archived", "Succeeded", "Reconciling", "Stalled", "Ready"]
    )
    for c in plan.status.conditions:
        assert c.observed_generation == 1
        assert len(c.message) <= MAX_CONDITION_MESSAGE


@pytest.mark.parametrize(
    "plan", SCENARIOS, ids=[f"{p.state.value}-{p.status.reason}" for p in SCENARIOS]
)
def test_events_on_state_change_are_warnings_for_bad_states(plan: Plan) -> None:
    if not plan.events:
        return
    (event,) = plan.events
    assert event.reason == plan.status.reason
    warning = {State.FAILED, State.TIMED_OUT, State.CANCELLED, State.BLOCKED, State.RETRYING}
    assert event.type == ("Warning" if plan.state in warning else "Normal")
    assert plan.state.value in event.message


def test_history_gets_one_entry_per_state_change() -> None:
    plans = run_steps(
        started(),
        [
            {"pods": [unscheduled()]},  # Queued again (reason changes only)
            {"pods": [unscheduled()]},
            {"pods": [staging()]},
            {"pods": [running()]},
            {"pods": [running()]},
            {"pods": [exited(code=0)]},
            {"pods": [exited(code=0), archive_pod()]},
            {"pods": [exited(code=0), archive_pod(phase="Succeeded", summary=SUMMARY)]},
        ],
    )
    history = plans[-1].status.history
    assert [h.state for h in history] == [
        State.QUEUED,
        State.STAGING_INPUTS,
        State.RUNNING,
        State.ARCHIVING,
        State.FINISHED,
    ]
    # An Event for the outcome; Queued, StagingInputs, Running and Archiving are routine
    # steps (history only).
    assert [bool(p.events) for p in plans] == [
        False,
        False,
        False,
        False,
        False,
        False,
        False,
        False,
        True,
    ]


def test_history_is_bounded_and_drops_the_oldest() -> None:
    states = [State.QUEUED, State.RUNNING]
    old = [
        HistoryEntry(state=states[i % 2], time=at(-1000 + i), reason=f"R{i}")
        for i in range(MAX_HISTORY)
    ]
    status = JobStatus(state=State.RUNNING, reason="R49", history=old)
    plan = decide(observe(job_view(job_spec(cancel=True), status)))
    assert plan.state == State.CANCELLED
    history = plan.status.history
    assert len(history) == MAX_HISTORY
    assert history[0].reason == "R1"
    assert history[-1].state == State.CANCELLED
    assert history[-1].time == NOW


def test_last_transition_time_moves_only_on_flips() -> None:
    plans = run_steps(
        started(),
        [{"pods": [unscheduled()], "now": at(5)}, {"pods": [running()], "now": at(20)}],
    )
    accepted = [p.status.condition("Accepted") for p in plans]
    assert {c.last_transition_time for c in accepted if c} == {NOW}
    staged = [p.status.condition("InputsStaged") for p in plans]
    assert [c.last_transition_time if c else None for c in staged] == [NOW, NOW, at(20)]
    reconciling = [p.status.condition("Reconciling") for p in plans]
    assert {c.last_transition_time for c in reconciling if c} == {NOW}
    assert [c.reason for c in reconciling if c] == ["Queued", "Queued", "Running"]


# --------------------------------------------------------------------------- idempotence


def test_deciding_twice_gives_the_same_plan() -> None:
    for steps in (
        [],
        [{"pods": [running()]}],
        [{"pods": [running()]}, {"pods": [exited(code=0)]}],
        [{"pods": [evicted()]}],
    ):
        obs, _ = at_state(steps)
        assert decide(obs) == decide(obs)


@pytest.mark.parametrize(
    "steps",
    [
        [{"pods": [unscheduled()]}],
        [{"pods": [staging()]}],
        [{"pods": [running()]}],
        [{"pods": [waiting(reason="ErrImagePull")]}],
        [{"pods": [running()]}, {"pods": [exited(code=0)]}, {"pods": [exited(0), archive_pod()]}],
        [{"pods": [running()]}, {"spec": job_spec(suspend=True), "pods": []}],
        [{"pods": [stage_failed()]}],
        [
            {"pods": [running()]},
            {"pods": [exited(code=0)]},
            {"pods": [exited(0), archive_pod(phase="Succeeded", summary=SUMMARY)]},
        ],
    ],
    ids=[
        "queued",
        "staging",
        "running",
        "blocked",
        "archiving",
        "suspended",
        "failed",
        "finished",
    ],
)
def test_applying_the_status_and_deciding_again_changes_nothing(
    steps: list[dict[str, Any]],
) -> None:
    obs, plan = at_state(steps)
    again = decide(with_status(obs, plan.status))
    assert not again.changed, again.status
    assert again.status == plan.status
    assert again.events == ()
    assert again.state == plan.state


@pytest.mark.parametrize("app", [None, app_view()], ids=["app-gone", "app-present"])
def test_blocked_and_parent_waits_are_stable(app: Any) -> None:
    obs = observe(job_view(job_spec(parents=["p"])), app=app)
    plan = decide(obs)
    assert not decide(with_status(obs, plan.status)).changed


def test_generation_is_recorded() -> None:
    plan = decide(observe(job_view(generation=7)))
    assert plan.status.observed_generation == 7
    assert all(c.observed_generation == 7 for c in plan.status.conditions)


# --------------------------------------------------------------------------- release on ending


def test_the_pass_that_finishes_releases_the_workspace() -> None:
    """A Job recorded as terminal is never listed again, so the ending pass itself deletes
    the workspace and stops anything still live."""
    obs, before = succeeded_then([archive_pod()])
    assert before.state == State.ARCHIVING
    ending = decide(
        with_status(
            obs,
            before.status,
            pods=(exited(code=0), archive_pod(phase="Succeeded", summary=SUMMARY)),
            pvcs={f"{JOB}-1"},
        )
    )
    assert ending.state == State.FINISHED
    # Ended pods go too: they would hold the workspace's pvc-protection finalizer.
    assert sorted(kinds(ending)) == [
        ("delete", "PersistentVolumeClaim", f"{JOB}-1"),
        ("delete", "Pod", f"{JOB}-1"),
        ("delete", "Pod", f"{JOB}-1-archive-1"),
    ]


def test_the_pass_that_fails_stops_live_pods() -> None:
    obs, plan = at_state([{"pods": [running()]}])
    failed = decide(
        with_status(obs, plan.status, spec=job_spec(), pods=(running(),), parents={}, app=None)
    )
    # App gone after acceptance while running: the Job keeps running, nothing released.
    assert failed.state == State.RUNNING
    assert kinds(failed) == []


# --------------------------------------------------------------------------- archive disabled


def no_data(**spec: Any) -> Observation:
    """A Job with no inputs and archiving off, of an App that needs no inputs."""
    app = app_view(app_spec(inputs=[], args=["--steps", "{{params.steps}}"]))
    return observe(job_view(job_spec(archive={"enabled": False}, inputs=[], **spec)), app=app)


def test_without_archive_or_inputs_an_attempt_is_one_pod() -> None:
    plan = decide(no_data())
    assert plan.state == State.QUEUED
    assert kinds(plan) == [("create", "Pod", f"{JOB}-1")]
    (create,) = [a for a in plan.actions if isinstance(a, CreateObject)]
    spec = create.manifest["spec"]
    assert "initContainers" not in spec
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes == {"workspace": {"name": "workspace", "emptyDir": {}}}
    # No launcher: the app's command runs as it is.
    command = spec["containers"][0].get("command") or []
    assert not any(c.endswith("ferry-launch") for c in command)


def test_without_archive_success_finishes_at_once_and_keeps_the_pod() -> None:
    plans = run_steps(no_data(), [{"pods": [running()]}, {"pods": [exited(code=0)]}])
    plan = plans[-1]
    assert (plan.state, plan.status.reason) == (State.FINISHED, "Succeeded")
    archived = plan.status.condition("Archived")
    assert archived is not None
    assert (archived.status, archived.reason) == (F, "NotArchived")
    assert archived.message == "archive.enabled is false"
    # Nothing pins a workspace, so the ended pod stays for `kubectl logs`.
    assert kinds(plan) == []


def test_without_archive_a_pod_whose_app_exited_is_kept_while_its_phase_says_running() -> None:
    """The kubelet writes the app's terminated state before the pod's phase: the Job ends on
    the first, and the pod, stopped, is kept for `kubectl logs` (it was deleted, one more write
    and its logs gone, on the real node)."""
    done = exited(code=0)
    stopping = dataclasses.replace(done, phase="Running", exited=True)
    plan = run_steps(no_data(), [{"pods": [running()]}, {"pods": [stopping]}])[-1]
    assert (plan.state, plan.status.reason) == (State.FINISHED, "Succeeded")
    assert kinds(plan) == []
    # A pod still running when its Job ends (cancelled, timed out) is stopped as before.
    still = dataclasses.replace(done, phase="Running", exited=False)
    plan = run_steps(no_data(), [{"pods": [running()]}, {"pods": [still]}])[-1]
    assert ("delete", "Pod", f"{JOB}-1") in kinds(plan)


def test_with_archive_a_workspace_and_setup_come_with_the_pod() -> None:
    plan = decide(started())
    assert [k[1] for k in kinds(plan)] == ["PersistentVolumeClaim", "Pod"]


# --------------------------------------------------------------------------- jobOutput inputs


def child_of(parent: ParentView | None, path: str = "results/mesh.txt") -> Observation:
    spec = job_spec(
        parents=["mesh-1"],
        inputs=[{"name": "model", "source": {"jobOutput": {"job": "mesh-1", "path": path}}}],
    )
    return observe(job_view(spec), parents={"mesh-1": parent})


MESH_PREFIX = "ns/mesh-1/uid-1/attempt-2/"
FINISHED_MESH = ParentView(
    name="mesh-1",
    state=State.FINISHED,
    outputs_uri="s3://results/ns/mesh-1/uid-1/attempt-2/",
)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (
            "results/mesh.txt",
            {"bucket": "results", "key": "ns/mesh-1/uid-1/attempt-2/outputs/results/mesh.txt"},
        ),
        ("results/", {"bucket": "results", "prefix": "ns/mesh-1/uid-1/attempt-2/outputs/results/"}),
    ],
)
def test_job_output_input_is_staged_from_the_parents_archive(
    path: str, expected: dict[str, str]
) -> None:
    plan = decide(child_of(FINISHED_MESH, path))
    assert plan.state == State.QUEUED
    (pod,) = [a.manifest for a in plan.actions if isinstance(a, CreateObject) and a.kind == "Pod"]
    stage = next(c for c in pod["spec"]["initContainers"] if c["name"] == "stage-model")
    env = {e["name"]: e.get("value") for e in stage["env"]}
    source = json.loads(env["FERRY_INPUT"])["source"]
    assert source == {"s3": expected}


def test_job_output_of_a_parent_without_outputs_fails_naming_the_input() -> None:
    parent = ParentView(name="mesh-1", state=State.FINISHED)
    plan = decide(child_of(parent))
    assert (plan.state, plan.status.reason) == (State.FAILED, "StageInFailed")
    assert "spec.inputs[0].source.jobOutput" in plan.status.message  # type: ignore[operator]
    assert "mesh-1" in plan.status.message  # type: ignore[operator]


def test_job_output_waits_for_the_parent() -> None:
    running_parent = ParentView(name="mesh-1", state=State.RUNNING)
    assert decide(child_of(running_parent)).state == State.AWAITING_PARENTS


def test_a_run_seen_only_once_it_ended_still_records_its_inputs_as_staged() -> None:
    """With pod progress batched, a short app may be seen first when it has already ended:
    it ran, so its inputs were staged."""
    _, plan = at_state([{"pods": [exited(code=0)], "now": at(10)}])
    assert cond(plan, "InputsStaged") == (T, "Staged")


def test_decide_leaves_its_observation_as_it_was() -> None:
    """The observer reuses a Job's parse while its cached dict is the same
    (`handlers/observe.py`), so a pass must never edit the observation it was given."""
    for first in (started(), no_data()):
        obs, status = first, None
        for step in ({}, {"pods": [running()]}, {"pods": [exited(code=0)]}):
            if status is not None:
                obs = with_status(obs, status, **step)
            before = (obs.job.status.model_dump(), obs.job.spec, obs.app, obs.pods)
            plan = decide(obs)
            assert decide(obs).status == plan.status
            assert (obs.job.status.model_dump(), obs.job.spec, obs.app, obs.pods) == before
            status = plan.status
