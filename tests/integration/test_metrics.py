"""The operator's /metrics on a real run: the counters and histograms of docs/metrics.md move
across Jobs' lives (the real operator, kwok pods)."""

from __future__ import annotations

import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Kube, OperatorProcess
from tests.integration.lifecycle_support import Watcher, app_manifest, job_manifest, sim, status

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(operator: OperatorProcess) -> Samples:
    """Every sample the operator exports, by name and labels."""
    url = f"http://127.0.0.1:{operator.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def ready(kube: Kube, operator: OperatorProcess) -> Samples:
    samples: Samples = kube.wait_for(
        lambda: _try(operator), timeout=60, what="the operator's /metrics to answer"
    )
    return samples


def _try(operator: OperatorProcess) -> Samples | None:
    try:
        return scrape(operator)
    except OSError:
        return None


def test_metrics_move_across_a_jobs_life(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    before = ready(kube, operator)
    kube.create(app_manifest(), "-n", namespace)
    kube.create(job_manifest("ok", annotations=sim(duration="3s")), "-n", namespace)
    kube.create(
        job_manifest("crash", annotations=sim(duration="1s", exit_code="3")), "-n", namespace
    )
    ok = Watcher(kube, namespace, "ok").terminal(timeout=90)
    crash = Watcher(kube, namespace, "crash").terminal(timeout=90)
    assert (status(ok)["state"], status(crash)["state"]) == ("Finished", "Failed")
    after = scrape(operator)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    # Transitions, by state and reason.
    assert moved("ferry_job_transitions_total", state="Finished", reason="Succeeded") == 1
    assert moved("ferry_job_transitions_total", state="Failed", reason="AppFailed") == 1
    assert moved("ferry_job_transitions_total", state="Running", reason="AppRunning") >= 1
    # Reconcile passes, and the queue waits before them.
    passes = moved("ferry_reconcile_duration_seconds_count")
    assert passes >= 6  # at least Queued .. Finished for each, a pass per status write
    waits = moved("ferry_queue_wait_seconds_count", priority="urgent") + moved(
        "ferry_queue_wait_seconds_count", priority="routine"
    )
    assert waits >= passes  # every pass took a key off the queue
    # API calls: the run pods created, the status writes.
    assert moved("ferry_api_requests_total", verb="create", resource="pods") >= 4  # run + archive
    assert moved("ferry_api_requests_total", verb="update", resource="jobs/status") >= 6
    # Run time, by outcome: one run each, about as long as the app was told to run.
    assert moved("ferry_run_duration_seconds_count", outcome="Succeeded") == 1
    assert moved("ferry_run_duration_seconds_count", outcome="AppFailed") == 1
    assert 2 <= moved("ferry_run_duration_seconds_sum", outcome="Succeeded") <= 30
    # Jobs by state (a gauge of the Jobs known now).
    assert value(after, "ferry_jobs", state="Finished") >= 1
    assert value(after, "ferry_jobs", state="Failed") >= 1
