"""The backoff between a failed attempt and the next (the Job controller's rule), with an
injected clock: the pass that sees an attempt fail counts it and enters Retrying; the next
attempt starts no earlier than base · 2^(failures - 1) (at most the maximum) after that, a
restarted operator waits until the same time (read from the status alone), and suspending,
cancelling or a refused create during the wait behave."""

from __future__ import annotations

from typing import Any

import pytest

from ferry.api.job import JobStatus, RetryCounts, State
from ferry.config import OperatorConfig
from ferry.decisions import attempts, records
from ferry.decisions.expected import run_pod_looks_lost
from ferry.decisions.observation import Observation
from ferry.decisions.plan import CreateObject, Plan

from .factories import (
    JOB,
    at,
    decide,
    evicted,
    exited,
    job_spec,
    job_view,
    observe,
    run_steps,
    running,
    with_status,
)

pytestmark = pytest.mark.unit

CONFIG = OperatorConfig()


@pytest.mark.parametrize(
    ("failures", "seconds"),
    [(0, 0), (1, 10), (2, 20), (3, 40), (4, 80), (5, 160), (6, 320), (7, 360), (40, 360)],
)
def test_the_job_controller_s_rule(failures: int, seconds: float) -> None:
    assert attempts.backoff_seconds(failures, CONFIG) == seconds


@pytest.mark.parametrize(
    ("base", "cap", "failures", "seconds"),
    [(1, 360, 1, 1), (1, 360, 3, 4), (2, 5, 3, 5), (0.5, 60, 2, 1)],
)
def test_base_and_maximum_are_settings(
    base: float, cap: float, failures: int, seconds: float
) -> None:
    config = OperatorConfig(retry_backoff_base_seconds=base, retry_backoff_max_seconds=cap)
    assert attempts.backoff_seconds(failures, config) == seconds


def test_a_maximum_below_the_base_is_refused() -> None:
    with pytest.raises(ValueError, match="backoff"):
        OperatorConfig(retry_backoff_base_seconds=30, retry_backoff_max_seconds=10)


def _job(**spec: Any) -> Observation:
    return observe(job_view(job_spec(archive={"onFailure": False}, **spec)))


def _creates(plan: Plan) -> list[str]:
    return [a.name for a in plan.actions if isinstance(a, CreateObject)]


# (pods of the failing attempt, the budget it is counted against)
FAILURES = [
    ([exited(code=2)], "app_failures"),
    ([evicted()], "infra_failures"),
    ([], "infra_failures"),  # the run pod disappeared
]


@pytest.mark.parametrize(("failed", "budget"), FAILURES, ids=["app", "evicted", "pod-gone"])
@pytest.mark.parametrize(("earlier", "wait"), [(0, 10), (1, 20), (3, 80), (9, 360)])
def test_the_next_attempt_waits_for_the_backoff(
    failed: list[Any], budget: str, earlier: int, wait: float
) -> None:
    # Earlier failures on the other budget: both count towards the backoff.
    other = "infra_failures" if budget == "app_failures" else "app_failures"
    counts = RetryCounts.model_validate({other: earlier})
    obs = _job(retry={"appFailures": 20, "infraFailures": 20})
    running_plan = decide(with_status(obs, decide(obs).status, pods=[running()]))
    status = running_plan.status.model_copy(update={"retries": counts})
    ended = decide(with_status(obs, status, pods=failed))
    assert (ended.state, ended.status.attempt) == (State.RETRYING, 1)
    assert _creates(ended) == []
    assert ended.requeue_after == wait
    assert ended.status.retries is not None
    assert ended.status.retries.app_failures + ended.status.retries.infra_failures == earlier + 1
    assert records.retry_pending(ended.status)
    # Every pass before the time changes nothing and comes back at the time.
    for before in (1.0, wait / 2, wait - 0.5):
        again = decide(with_status(obs, ended.status, pods=failed, now=at(before)))
        assert (again.state, again.changed, again.actions) == (State.RETRYING, False, ())
        assert again.requeue_after == pytest.approx(wait - before)
    due = decide(with_status(obs, ended.status, pods=failed, now=at(wait)))
    assert (due.state, due.status.reason, due.status.attempt) == (State.QUEUED, "PodCreated", 2)
    assert _creates(due) == [f"{JOB}-2", f"{JOB}-2"]
    assert not records.retry_pending(due.status)


def test_a_restarted_operator_waits_until_the_same_time() -> None:
    """The wait counts from the history's Retrying entry: nothing else is needed."""
    obs = _job(retry={"appFailures": 2})
    plans = run_steps(obs, [{"pods": [running()]}, {"pods": [exited(code=1)]}])
    retrying = plans[-1].status
    assert "attempt 2 starts at 2026-03-01T12:00:10Z" in (retrying.message or "")
    # A new process, a wire round trip of the status, 7 s later.
    reread = JobStatus.model_validate(retrying.wire())
    assert attempts.retry_due(reread, CONFIG) == at(10)
    plan = decide(with_status(obs, reread, pods=[exited(code=1)], now=at(7)))
    assert (plan.state, plan.changed, plan.requeue_after) == (State.RETRYING, False, 3)


def test_a_wait_does_not_look_for_the_failed_attempt_s_pod() -> None:
    """The evicted pod is deleted by the pass that counts it; its absence during the wait is
    not a lost pod (which would LIST pods on every pass)."""
    obs = _job(retry={"infraFailures": 2})
    plans = run_steps(obs, [{"pods": [running()]}, {"pods": [evicted()]}])
    job = with_status(obs, plans[-1].status).job
    assert not run_pod_looks_lost(job, [])
    again = decide(with_status(obs, plans[-1].status, pods=[], now=at(5)))
    assert (again.state, again.changed) == (State.RETRYING, False)


def test_suspending_during_the_wait_and_resuming_after_it() -> None:
    obs = _job(retry={"appFailures": 2})
    plans = run_steps(
        obs,
        [
            {"pods": [running()]},
            {"pods": [exited(code=1)]},
            {"spec": job_spec(archive={"onFailure": False}, suspend=True), "now": at(2)},
            {"now": at(4)},
            {"spec": job_spec(archive={"onFailure": False}, retry={"appFailures": 2})},
        ],
    )
    assert [p.state for p in plans[2:]] == [
        State.RETRYING,
        State.SUSPENDED,
        State.SUSPENDED,
        State.RETRYING,
    ]
    assert _creates(plans[3]) == []
    assert _creates(plans[4]) == []
    # Resumed within the backoff: the wait goes on as announced, no failure counted again.
    resumed = plans[5]
    assert resumed.requeue_after == 6
    assert resumed.status.retries == plans[2].status.retries
    assert resumed.status.message == plans[2].status.message
    due = decide(with_status(obs, resumed.status, spec=obs.job.spec, now=at(10)))
    assert (due.state, due.status.attempt) == (State.QUEUED, 2)


def test_resumed_after_the_wait_starts_at_once() -> None:
    obs = _job(retry={"appFailures": 2})
    suspended = job_spec(archive={"onFailure": False}, suspend=True)
    plans = run_steps(
        obs,
        [
            {"pods": [running()]},
            {"pods": [exited(code=1)]},
            {"spec": suspended, "now": at(2)},
            {"spec": obs.job.spec, "now": at(60)},
        ],
    )
    resumed = plans[-1]
    assert (resumed.state, resumed.status.reason, resumed.status.attempt) == (
        State.QUEUED,
        "Resumed",
        2,
    )
    assert resumed.status.retries is not None
    assert resumed.status.retries.app_failures == 1


def test_cancelling_during_the_wait_cancels() -> None:
    obs = _job(retry={"appFailures": 2})
    plans = run_steps(obs, [{"pods": [running()]}, {"pods": [exited(code=1)]}])
    cancelled = decide(
        with_status(obs, plans[-1].status, spec=job_spec(cancel=True), pods=[exited(code=1)])
    )
    assert cancelled.state == State.CANCELLED


def test_a_refused_create_after_the_wait_is_tried_again_without_counting() -> None:
    obs = _job(retry={"appFailures": 2})
    plans = run_steps(obs, [{"pods": [running()]}, {"pods": [exited(code=1)]}])
    refused = {f"Pod/{JOB}-2": "exceeded quota"}
    blocked = decide(with_status(obs, plans[-1].status, now=at(10), refused=refused))
    assert (blocked.state, blocked.status.reason, blocked.status.attempt) == (
        State.BLOCKED,
        "CreateRefused",
        1,
    )
    later = decide(with_status(obs, blocked.status, now=at(30)))
    assert (later.state, later.status.attempt) == (State.QUEUED, 2)
    assert later.status.retries is not None
    assert later.status.retries.app_failures == 1


def test_an_exhausted_budget_fails_without_waiting() -> None:
    obs = _job(retry={"appFailures": 0})
    plans = run_steps(obs, [{"pods": [running()]}, {"pods": [exited(code=1)]}])
    assert (plans[-1].state, plans[-1].status.reason) == (State.FAILED, "AppFailed")
