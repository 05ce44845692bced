"""The run-time histogram: one observation per attempt whose app run ended, by outcome, from
the status the reconciler writes (ferry.handlers.metrics.finished_run)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ferry.api.job import HistoryEntry, JobStatus, RetryCounts, RunOutcome, State
from ferry.api.job_status import AttemptRecord
from ferry.handlers.metrics import Metrics, finished_run

pytestmark = pytest.mark.unit

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def running(attempt: int = 1) -> JobStatus:
    return JobStatus(
        state=State.RUNNING,
        reason="AppRunning",
        attempt=attempt,
        start_time=T0,
        history=[HistoryEntry(state=State.RUNNING, time=T0)],
    )


def moved(old: JobStatus, state: State, reason: str, when: float, **fields: object) -> JobStatus:
    history = [*old.history, HistoryEntry(state=state, time=at(when), reason=reason)]
    return old.model_copy(update={"state": state, "reason": reason, "history": history, **fields})


@pytest.mark.parametrize(
    ("outcome", "state"),
    [
        (RunOutcome.SUCCEEDED, State.ARCHIVING),
        (RunOutcome.APP_FAILED, State.ARCHIVING),
        (RunOutcome.TIMED_OUT, State.ARCHIVING),
        (RunOutcome.SUCCEEDED, State.FINISHED),
    ],
)
def test_a_recorded_run_end_is_counted_once(outcome: RunOutcome, state: State) -> None:
    old = running()
    new = moved(old, state, "x", 42, run_outcome=outcome, run_end_time=at(40))
    assert finished_run(old, new) == (outcome.value, 40.0)
    later = moved(new, State.FINISHED, "Succeeded", 50)
    assert finished_run(new, later) is None


def test_a_run_ended_and_retried_in_one_pass_is_counted_as_its_reason_says() -> None:
    old = running()
    new = moved(
        old,
        State.RETRYING,
        "AppFailed",
        30,
        attempt=2,
        start_time=None,
        retries=RetryCounts(app_failures=1),
    )
    assert finished_run(old, new) == ("AppFailed", 30.0)


@pytest.mark.parametrize("reason", ["AppFailed", "InfraFailure"])
def test_a_run_that_ended_into_the_backoff_is_counted_once(reason: str) -> None:
    """The pass that sees the run end enters Retrying for the same attempt (the next one
    starts after the backoff): counted then, and not again when the next attempt starts."""
    old = running()
    retrying = moved(old, State.RETRYING, reason, 30, retries=RetryCounts(app_failures=1))
    outcome = "AppFailed" if reason == "AppFailed" else "InfraFailure"
    assert finished_run(old, retrying) == (outcome, 30.0)
    started = moved(retrying, State.QUEUED, "PodCreated", 40, attempt=2, start_time=None)
    assert finished_run(retrying, started) is None
    # Cancelled (or suspended, then cancelled) during the wait: nothing more ran.
    recorded = retrying.model_copy(
        update={"attempts": [AttemptRecord(attempt=1, outcome=reason)], "run_outcome": None}
    )
    cancelled = moved(recorded, State.CANCELLED, "Cancelled", 35)
    assert finished_run(recorded, cancelled) is None


def test_a_run_the_platform_ended_for_good_is_an_infra_failure() -> None:
    new = moved(running(), State.FAILED, "InfraFailed", 12)
    assert finished_run(running(), new) == ("InfraFailure", 12.0)


def test_a_cancelled_run_is_counted_when_the_job_is_cancelled() -> None:
    cancelling = moved(running(), State.CANCELLING, "CancelRequested", 5)
    assert finished_run(running(), cancelling) is None
    cancelled = moved(cancelling, State.CANCELLED, "Cancelled", 7)
    assert finished_run(cancelling, cancelled) == ("Cancelled", 7.0)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        # still running: a resync rewrote the message
        (running(), running().model_copy(update={"message": "m"})),
        # never started: a staging failure ends the Job before the app ran
        (
            running().model_copy(update={"start_time": None}),
            moved(running(), State.FAILED, "StageInFailed", 3, start_time=None),
        ),
        # suspended: the attempt did not finish
        (running(), moved(running(), State.SUSPENDED, "Suspended", 4)),
    ],
    ids=["no-change", "never-ran", "suspended"],
)
def test_no_run_ended(old: JobStatus, new: JobStatus) -> None:
    assert finished_run(old, new) is None


def test_the_histogram_is_filled_by_outcome() -> None:
    m = Metrics()
    old = running()
    m.observe_status(
        old,
        moved(old, State.ARCHIVING, "x", 9, run_outcome=RunOutcome.SUCCEEDED, run_end_time=at(8)),
    )
    m.observe_queue_wait(0.5, urgent=True)
    get = m.registry.get_sample_value
    assert get("ferry_run_duration_seconds_count", {"outcome": "Succeeded"}) == 1
    assert get("ferry_run_duration_seconds_sum", {"outcome": "Succeeded"}) == 8
    assert get("ferry_queue_wait_seconds_count", {"priority": "urgent"}) == 1
