"""Outages waited out and the phases' deadlines (DESIGN.md section 3): a store or input server
that is down leaves the Job in its state with a reason and a backoff, the workspace kept, until
the operator's outage deadline; staging, archive pods and pods stuck Terminating are bounded."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Any

import pytest

from ferry.api.common import ConditionStatus
from ferry.api.job import State
from ferry.api.job_status import Outage
from ferry.api.names import EXIT_UNAVAILABLE
from ferry.config import OperatorConfig
from ferry.decisions import builders, outages
from ferry.decisions.observation import Observation, PodView, stuck_terminating
from ferry.decisions.plan import CreateObject, DeleteObject, Plan

from .factories import (
    CONFIG,
    JOB,
    NOW,
    UID,
    app_spec,
    archive_pod,
    at,
    container,
    decide,
    exited,
    job_spec,
    job_view,
    observe,
    run_pod,
    running,
    stage_failed,
    staging,
    with_status,
)

pytestmark = pytest.mark.unit

F = ConditionStatus.FALSE
ENDPOINT = CONFIG.default_s3_endpoint
DOWN = f"archive: s3://ferry/x: cannot reach {ENDPOINT}: connection refused (gave up after 6 tries)"
S3_INPUT = [{"name": "model", "source": {"s3": {"bucket": "models", "key": "frame.tcl"}}}]
HTTP_INPUT = [{"name": "model", "source": {"http": {"url": "https://data.example.org/m.tcl"}}}]
SUMMARY = {"uri": "s3://ferry/x/", "files": 2, "bytes": 10, "manifest": "s3://ferry/x/m.json"}


def cond(plan: Plan, type_: str) -> ConditionStatus:
    found = plan.status.condition(type_)
    assert found is not None
    return found.status


def kinds(plan: Plan) -> list[tuple[str, str, str]]:
    out = []
    for a in plan.actions:
        if isinstance(a, CreateObject):
            out.append(("create", a.kind, a.name))
        elif isinstance(a, DeleteObject):
            out.append(("delete", a.kind, a.name))
    return out


def unavailable_archive(try_: int, started: datetime = NOW, message: str = DOWN) -> PodView:
    """An archive pod whose stager found the store down (exit 75)."""
    pod = archive_pod(try_=try_, phase="Failed", message=message)
    assert pod.main is not None
    main = dataclasses.replace(pod.main, exit_code=EXIT_UNAVAILABLE, started_at=started)
    return dataclasses.replace(pod, main=main, uid=f"uid-archive-{try_}")


def failed_archive(try_: int, message: str = "access denied", reason: str = "") -> PodView:
    pod = archive_pod(try_=try_, phase="Failed", message=message)
    return dataclasses.replace(pod, reason=reason, uid=f"uid-archive-{try_}")


def archiving(config: OperatorConfig = CONFIG, **spec: Any) -> tuple[Observation, Plan]:
    """A Job whose app succeeded, its first archive pod created (at NOW)."""
    obs = observe(job_view(job_spec(**spec)), config=config, pvcs={f"{JOB}-1"})
    plan = decide(obs)
    for pods in ([running()], [exited(code=0)]):
        obs = with_status(obs, plan.status, pods=pods)
        plan = decide(obs)
    assert (plan.state, plan.status.archive_try) == (State.ARCHIVING, 1)
    return obs, plan


def step(obs: Observation, plan: Plan, now: datetime, *pods: PodView) -> tuple[Observation, Plan]:
    obs = with_status(obs, plan.status, pods=(exited(code=0), *pods), now=now)
    return obs, decide(obs)


# --------------------------------------------------------------------------- the backoff


@pytest.mark.parametrize(
    ("tries", "seconds"),
    [(1, 10), (2, 20), (3, 40), (4, 80), (5, 160), (6, 300), (7, 300), (40, 300)],
)
def test_the_backoff_doubles_from_10s_to_5min(tries: int, seconds: float) -> None:
    assert outages.backoff(CONFIG, tries) == seconds


def test_the_defaults_wait_out_hours_and_bound_each_phase() -> None:
    assert CONFIG.outage_deadline_seconds == 6 * 3600
    assert CONFIG.staging_deadline_seconds == 3600
    assert CONFIG.archive_pod_deadline_seconds == 3600
    assert CONFIG.pod_terminating_grace_seconds == 300
    settings = OperatorConfig.from_env(
        {"FERRY_OUTAGE_DEADLINE_SECONDS": "90", "FERRY_OUTAGE_BACKOFF_SECONDS": "2"}
    )
    assert (settings.outage_deadline_seconds, settings.outage_backoff_seconds) == (90, 2)


def test_a_try_is_counted_once_however_many_passes_see_it() -> None:
    first = outages.count(None, "Archive", 1, 1, at(-30), CONFIG, NOW)
    assert first.counted_now
    assert first.outage == Outage(
        phase="Archive", attempt=1, since=at(-30), tries=1, counted=1, retry_time=at(10)
    )
    again = outages.count(first.outage, "Archive", 1, 1, at(-30), CONFIG, at(5))
    assert (again.counted_now, again.outage) == (False, first.outage)
    second = outages.count(first.outage, "Archive", 1, 2, at(20), CONFIG, at(50))
    assert (second.outage.tries, second.outage.since, second.outage.retry_time) == (
        2,
        at(-30),
        at(70),
    )


# --------------------------------------------------------------------------- archiving


def test_a_store_outage_leaves_the_job_archiving_with_the_endpoint_and_the_error() -> None:
    obs, plan = archiving()
    obs, plan = step(obs, plan, at(40), unavailable_archive(1, started=at(5)))
    assert (plan.state, plan.status.reason) == (State.ARCHIVING, "StoreUnavailable")
    message = plan.status.message or ""
    assert f"the store at {ENDPOINT} is unavailable since 2026-03-01T12:00:05Z (1 try)" in message
    assert "archive try 2 at 2026-03-01T12:00:50Z" in message
    assert "waited out until 2026-03-01T18:00:05Z" in message
    assert "connection refused" in message
    assert plan.actions == ()  # no new pod yet, and nothing deleted: the workspace is kept
    assert plan.requeue_after == pytest.approx(10)
    assert [(e.type, e.reason) for e in plan.events] == [("Warning", "StoreUnavailable")]
    assert plan.status.outage is not None
    assert plan.status.outage.tries == 1
    assert cond(plan, "Archived") == ConditionStatus.UNKNOWN


def test_waiting_for_the_next_try_writes_nothing() -> None:
    obs, plan = archiving()
    obs, plan = step(obs, plan, at(40), unavailable_archive(1))
    obs, again = step(obs, plan, at(45), unavailable_archive(1))
    assert not again.changed
    assert again.actions == ()
    assert again.events == ()
    assert again.requeue_after == pytest.approx(5)


def test_after_the_backoff_the_next_archive_pod_is_made_and_the_spent_one_deleted() -> None:
    obs, plan = archiving()
    obs, plan = step(obs, plan, at(40), unavailable_archive(1))
    obs, plan = step(obs, plan, at(50), unavailable_archive(1))
    assert (plan.state, plan.status.reason) == (State.ARCHIVING, "StoreUnavailable")
    assert kinds(plan) == [
        ("create", "Pod", f"{JOB}-1-archive-2"),
        ("delete", "Pod", f"{JOB}-1-archive-1"),
    ]
    assert plan.status.archive_try == 2
    obs, plan = step(obs, plan, at(51), archive_pod(try_=2))
    assert (plan.state, plan.status.reason) == (State.ARCHIVING, "StoreUnavailable")
    assert "trying the store" in (plan.status.message or "")


def test_an_outage_longer_than_the_archive_tries_is_waited_out_then_finished() -> None:
    """Today's ~30 s of three archive pods is no limit: ten tries over 40 minutes find the
    store down, none counts against FERRY_ARCHIVE_TRIES, the workspace is never deleted, and
    the Job Finishes once the store answers."""
    obs, plan = archiving()
    now = NOW
    for try_ in range(1, 11):
        now += timedelta(seconds=30)
        obs, plan = step(
            obs, plan, now, unavailable_archive(try_, started=now - timedelta(seconds=30))
        )
        assert (plan.state, plan.status.reason) == (State.ARCHIVING, "StoreUnavailable")
        assert plan.requeue_after == pytest.approx(outages.backoff(CONFIG, try_))
        now += timedelta(seconds=plan.requeue_after or 0)
        obs, plan = step(obs, plan, now, unavailable_archive(try_))
        assert ("create", "Pod", f"{JOB}-1-archive-{try_ + 1}") in kinds(plan)
        assert all(kind != "PersistentVolumeClaim" for _, kind, _ in kinds(plan))
    assert plan.status.outage is not None
    assert plan.status.outage.tries == 10
    obs, plan = step(
        obs,
        plan,
        now + timedelta(seconds=5),
        archive_pod(try_=11, phase="Succeeded", summary=SUMMARY),
    )
    assert (plan.state, plan.status.reason) == (State.FINISHED, "Succeeded")
    assert plan.status.outage is None
    assert plan.status.outputs is not None
    assert plan.status.outputs.files == 2


def test_past_the_outage_deadline_archive_failed_says_since_when() -> None:
    config = OperatorConfig(outage_deadline_seconds=120)
    obs, plan = archiving(config)
    obs, plan = step(obs, plan, at(30), unavailable_archive(1, started=at(1)))
    obs, plan = step(obs, plan, at(40), unavailable_archive(1))
    assert plan.state == State.ARCHIVING
    # The second try finds the store down past the deadline (at(1) + 120 s).
    obs, plan = step(obs, plan, at(125), unavailable_archive(2, started=at(95)))
    assert (plan.state, plan.status.reason) == (State.FAILED, "ArchiveFailed")
    message = plan.status.message or ""
    assert f"the store at {ENDPOINT} was unreachable since 2026-03-01T12:00:01Z" in message
    assert "2 tries over 2m4s, past FERRY_OUTAGE_DEADLINE_SECONDS (2m0s)" in message
    assert "outputs were not archived" in message
    assert cond(plan, "Archived") == F


@pytest.mark.parametrize(
    ("pod", "words"),
    [
        (
            failed_archive(1, "archive: s3://ferry/x: access denied (InvalidAccessKeyId)"),
            "access denied",
        ),
        (
            failed_archive(1, "archive: s3://nope/x not found: the bucket does not exist"),
            "bucket does not exist",
        ),
        (
            failed_archive(1, "", reason="DeadlineExceeded"),
            "ran longer than FERRY_ARCHIVE_POD_DEADLINE_SECONDS (1h0m0s) and was stopped",
        ),
    ],
)
def test_refusals_and_a_pod_past_its_deadline_are_failures_not_outages(
    pod: PodView, words: str
) -> None:
    obs, plan = archiving(OperatorConfig(archive_tries=1))
    obs, plan = step(obs, plan, at(30), pod)
    assert (plan.state, plan.status.reason) == (State.FAILED, "ArchiveFailed")
    assert words in (plan.status.message or "")
    assert "failed 1 time(s)" in (plan.status.message or "")


def test_tries_that_met_an_outage_do_not_count_against_archive_tries() -> None:
    obs, plan = archiving(OperatorConfig(archive_tries=2))
    obs, plan = step(obs, plan, at(30), unavailable_archive(1))
    obs, plan = step(obs, plan, at(40), unavailable_archive(1))
    obs, plan = step(obs, plan, at(60), failed_archive(2, "archive: boom"))
    assert (plan.state, plan.status.reason) == (State.ARCHIVING, "ArchiveRetrying")
    assert "trying again (2/2)" in (plan.status.message or "")
    obs, plan = step(obs, plan, at(90), failed_archive(3, "archive: boom again"))
    assert (plan.state, plan.status.reason) == (State.FAILED, "ArchiveFailed")
    assert "failed 2 time(s)" in (plan.status.message or "")


def test_the_archive_pod_has_a_deadline() -> None:
    config = OperatorConfig(archive_pod_deadline_seconds=900)
    pod = builders.archive_pod(
        builders.JobMeta(JOB, "ns", UID), app_spec(), job_spec(), 1, 1, {}, config
    )
    assert pod["spec"]["activeDeadlineSeconds"] == 900


# --------------------------------------------------------------------------- staging


def stage_unavailable(attempt: int = 1, message: str = "") -> PodView:
    words = message or (
        f"input 'model': s3://models/frame.tcl: cannot reach {ENDPOINT}: connection refused "
        "(gave up after 4 tries)"
    )
    pod = stage_failed(attempt, message=words)
    init = tuple(
        dataclasses.replace(c, exit_code=EXIT_UNAVAILABLE) if c.name == "stage-model" else c
        for c in pod.init
    )
    return dataclasses.replace(pod, init=init, uid=f"uid-run-{attempt}")


def queued(config: OperatorConfig = CONFIG, **spec: Any) -> tuple[Observation, Plan]:
    obs = observe(job_view(job_spec(**spec)), config=config)
    return obs, decide(obs)


def then(obs: Observation, plan: Plan, now: datetime, *pods: PodView) -> tuple[Observation, Plan]:
    obs = with_status(obs, plan.status, pods=pods, now=now)
    return obs, decide(obs)


@pytest.mark.parametrize(
    ("inputs", "reason", "words"),
    [
        (S3_INPUT, "StoreUnavailable", f"its store ({ENDPOINT}) is unavailable since"),
        (HTTP_INPUT, "InputUnavailable", "its server is unavailable since"),
    ],
)
def test_a_stage_in_outage_waits_in_staging_inputs(
    inputs: list[dict[str, Any]], reason: str, words: str
) -> None:
    obs, plan = queued(inputs=inputs)
    obs, plan = then(obs, plan, at(20), stage_unavailable())
    assert (plan.state, plan.status.reason) == (State.STAGING_INPUTS, reason)
    assert words in (plan.status.message or "")
    assert "attempt 2 at 2026-03-01T12:00:30Z" in (plan.status.message or "")
    assert plan.actions == ()
    assert [(e.type, e.reason) for e in plan.events] == [("Warning", reason)]
    assert plan.requeue_after == pytest.approx(10)


def test_after_the_backoff_a_new_attempt_stages_again_not_counted_as_infra_failure() -> None:
    obs, plan = queued(inputs=S3_INPUT)
    obs, plan = then(obs, plan, at(20), stage_unavailable())
    obs, plan = then(obs, plan, at(30), stage_unavailable())
    assert (plan.state, plan.status.reason) == (State.STAGING_INPUTS, "StoreUnavailable")
    assert plan.status.attempt == 2
    assert kinds(plan) == [
        ("create", "PersistentVolumeClaim", f"{JOB}-2"),
        ("create", "Pod", f"{JOB}-2"),
        ("delete", "Pod", f"{JOB}-1"),
        ("delete", "PersistentVolumeClaim", f"{JOB}-1"),
    ]
    assert plan.status.retries is None  # no retry budget spent
    obs, plan = then(obs, plan, at(31), staging(2))
    assert (plan.state, plan.status.reason) == (State.STAGING_INPUTS, "StoreUnavailable")
    assert "staging again" in (plan.status.message or "")
    obs, plan = then(obs, plan, at(40), running(2, started=at(40)))
    assert (plan.state, plan.status.reason) == (State.RUNNING, "AppRunning")
    assert plan.status.outage is None


def test_an_http_input_staging_again_keeps_input_unavailable() -> None:
    obs, plan = queued(inputs=HTTP_INPUT)
    obs, plan = then(obs, plan, at(20), stage_unavailable(message="input 'model': HTTP 503"))
    obs, plan = then(obs, plan, at(30), stage_unavailable(message="input 'model': HTTP 503"))
    obs, plan = then(obs, plan, at(31), run_pod(2, phase="Pending", scheduled=False))
    obs, plan = then(obs, plan, at(32), staging(2))
    assert (plan.state, plan.status.reason) == (State.STAGING_INPUTS, "InputUnavailable")


def test_past_the_outage_deadline_stage_in_failed_says_since_when() -> None:
    obs, plan = queued(OperatorConfig(outage_deadline_seconds=60), inputs=S3_INPUT)
    obs, plan = then(obs, plan, at(20), stage_unavailable())
    obs, plan = then(obs, plan, at(30), stage_unavailable())
    obs, plan = then(obs, plan, at(90), stage_unavailable(2))
    assert (plan.state, plan.status.reason) == (State.FAILED, "StageInFailed")
    assert "was unreachable since 2026-03-01T12:00:20Z: 2 tries over 1m10s" in (
        plan.status.message or ""
    )
    assert cond(plan, "InputsStaged") == F


def test_a_refused_input_still_fails_at_once() -> None:
    obs, plan = queued(inputs=HTTP_INPUT)
    obs, plan = then(obs, plan, at(20), stage_failed(message="input 'model': HTTP 404 Not Found"))
    assert (plan.state, plan.status.reason) == (State.FAILED, "StageInFailed")
    assert plan.status.outage is None


def staging_since(started: datetime) -> PodView:
    pod = staging()
    init = tuple(dataclasses.replace(c, started_at=started) for c in pod.init)
    return dataclasses.replace(pod, init=init)


def test_staging_has_a_deadline() -> None:
    obs, plan = queued(OperatorConfig(staging_deadline_seconds=600))
    obs, plan = then(obs, plan, at(100), staging_since(at(10)))
    assert (plan.state, plan.status.reason) == (State.STAGING_INPUTS, "StagingInputs")
    assert plan.requeue_after == pytest.approx(510)
    obs, plan = then(obs, plan, at(610), staging_since(at(10)))
    assert (plan.state, plan.status.reason) == (State.FAILED, "StageInFailed")
    assert plan.status.message == (
        f"inputs not staged within FERRY_STAGING_DEADLINE_SECONDS (10m0s): stage-model still "
        f"running in {JOB}-1"
    )
    assert kinds(plan)[0] == ("delete", "Pod", f"{JOB}-1")


# --------------------------------------------------------------------------- stuck Terminating


def deleted_at(pod: PodView, when: datetime) -> PodView:
    return dataclasses.replace(pod, deleting=True, deletion_time=when)


@pytest.mark.parametrize(("now", "stuck"), [(at(299), False), (at(300), True), (at(-10), False)])
def test_a_pod_is_stuck_terminating_grace_seconds_past_its_deletion(
    now: datetime, stuck: bool
) -> None:
    assert stuck_terminating(deleted_at(running(), NOW), now, 300) is stuck


def test_a_run_pod_stuck_terminating_is_not_waited_for_and_an_event_says_so() -> None:
    obs, plan = queued()
    obs, plan = then(obs, plan, at(10), running())
    gone = deleted_at(running(), at(20))
    obs, plan = then(obs, plan, at(100), gone)
    assert (plan.state, plan.status.reason) == (State.RUNNING, "PodTerminating")
    assert plan.requeue_after == pytest.approx(220)
    obs, plan = then(obs, plan, at(320), gone)
    assert (plan.state, plan.status.reason) == (State.RETRYING, "InfraFailure")
    stuck = [e for e in plan.events if e.reason == "PodStuckTerminating"]
    assert len(stuck) == 1
    assert "Terminating since 2026-03-01T12:00:20Z (its node may be lost)" in stuck[0].message
    # The next attempt starts after the backoff between attempts, the stuck pod still there.
    assert plan.requeue_after == pytest.approx(10)
    obs, plan = then(obs, plan, at(330), gone)
    assert ("create", "Pod", f"{JOB}-2") in kinds(plan)


def test_a_stuck_archive_pod_is_not_waited_for() -> None:
    obs, plan = archiving()
    pod = deleted_at(archive_pod(try_=1), at(10))
    obs, plan = step(obs, plan, at(50), pod)
    assert (plan.state, plan.status.reason) == (State.ARCHIVING, "ArchiveRetrying")
    assert plan.requeue_after == pytest.approx(260)
    obs, plan = step(obs, plan, at(310), pod)
    assert ("create", "Pod", f"{JOB}-1-archive-2") in kinds(plan)
    assert [e.reason for e in plan.events] == ["PodStuckTerminating"]


def test_a_run_pod_stuck_terminating_before_archiving_is_not_waited_for() -> None:
    obs, plan = queued()
    obs, plan = then(obs, plan, at(10), running())
    ended = run_pod(
        phase="Running",
        main=container("app", "terminated", exit_code=0, started_at=at(10), finished_at=at(20)),
    )
    obs, plan = then(obs, plan, at(30), ended)
    assert (plan.state, plan.status.reason) == (State.ARCHIVING, "StoppingApp")
    stuck = deleted_at(ended, at(31))
    obs, plan = then(obs, plan, at(400), stuck)
    assert (plan.state, plan.status.reason) == (State.ARCHIVING, "Archiving")
    assert ("create", "Pod", f"{JOB}-1-archive-1") in kinds(plan)
    assert [e.reason for e in plan.events] == ["PodStuckTerminating"]


def test_resuming_does_not_wait_for_a_pod_stuck_terminating() -> None:
    obs, plan = queued()
    obs, plan = then(obs, plan, at(10), running())
    suspend = with_status(obs, plan.status, spec=job_spec(suspend=True), now=at(20))
    plan = decide(suspend)
    assert plan.state == State.SUSPENDED
    stuck = deleted_at(running(), at(50))
    resumed = with_status(suspend, plan.status, spec=job_spec(), pods=(stuck,), now=at(100))
    plan = decide(resumed)
    assert (plan.state, plan.status.reason) == (State.SUSPENDED, "Resuming")
    assert plan.requeue_after == pytest.approx(250)
    plan = decide(with_status(resumed, plan.status, now=at(350)))
    assert (plan.state, plan.status.reason) == (State.QUEUED, "Resumed")
    assert ("create", "Pod", f"{JOB}-2") in kinds(plan)
    assert [e.reason for e in plan.events if e.reason == "PodStuckTerminating"] == [
        "PodStuckTerminating"
    ]


def test_cancelling_does_not_wait_for_a_pod_stuck_terminating() -> None:
    obs, plan = queued()
    obs, plan = then(obs, plan, at(10), running())
    cancel = with_status(obs, plan.status, spec=job_spec(cancel=True), now=at(20))
    plan = decide(cancel)
    assert plan.state == State.CANCELLING
    stuck = deleted_at(running(), at(50))
    obs = with_status(cancel, plan.status, pods=(stuck,), now=at(100))
    plan = decide(obs)
    assert plan.state == State.CANCELLING
    assert plan.requeue_after == pytest.approx(250)
    plan = decide(with_status(obs, plan.status, now=at(350)))
    assert (plan.state, plan.status.reason) == (State.CANCELLED, "Cancelled")
    assert "PodStuckTerminating" in [e.reason for e in plan.events]
