"""Prometheus metrics of the operator and the dead-watch check behind its liveness probe.

Owns: the metric families (Jobs by state, transitions, reconcile latency, queue wait, app
run time by outcome, API calls, staged and archived bytes and seconds; docs/metrics.md lists
them), filling them from the reconciler and its work queue, serving them on
FERRY_METRICS_PORT, and `WatchFreshness`, which tells a watch that silently stopped from an
idle one. Must not: decide anything about Jobs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from ferry.api import names
from ferry.api.job import JobStatus, State
from ferry.api.reasons import Reason
from ferry.decisions.records import retry_pending

#: Runs that ended without a recorded end time (the pass that saw the end also started the
#: next attempt or ended the Job), by the reason the Job moved on with, and their outcome.
_UNRECORDED_ENDS = {
    Reason.APP_FAILED.value: "AppFailed",
    Reason.INFRA_FAILURE.value: "InfraFailure",
    Reason.INFRA_FAILED.value: "InfraFailure",
    Reason.CANCELLED.value: "Cancelled",
}


class Metrics:
    """Every metric Ferry exports, in its own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.transitions = Counter(
            "ferry_job_transitions",
            "Job state transitions, by new state and reason",
            ["state", "reason"],
            registry=self.registry,
        )
        self.reconcile_seconds = Histogram(
            "ferry_reconcile_duration_seconds",
            "Time of one reconcile pass of a Job",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.reconcile_errors = Counter(
            "ferry_reconcile_errors", "Reconcile passes that raised", registry=self.registry
        )
        self.relists = Counter(
            "ferry_watch_listings",
            "Listings of a watched resource, by resource and cause (start; expired: the"
            " watch's resourceVersion was gone; asked: SIGUSR1 or Reconciler.relist)",
            ["resource", "cause"],
            registry=self.registry,
        )
        self.tombstones = Counter(
            "ferry_watch_tombstones",
            "Objects a listing lacked that the cache held: deletions whose events fell in a"
            " watch gap, by resource",
            ["resource"],
            registry=self.registry,
        )
        self.conflicts = Counter(
            "ferry_status_conflicts",
            "Status writes refused by the optimistic lock",
            registry=self.registry,
        )
        self.data_bytes = Counter(
            "ferry_data_bytes",
            "Bytes staged in or archived, by direction",
            ["direction"],
            registry=self.registry,
        )
        self.data_seconds = Counter(
            "ferry_data_seconds",
            "Seconds spent staging in or archiving, by direction",
            ["direction"],
            registry=self.registry,
        )
        self.queue_wait = Histogram(
            "ferry_queue_wait_seconds",
            "Time a Job key waited in the work queue, from being queued (or due, when delayed)"
            " to a worker taking it, by priority",
            ["priority"],
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.run_seconds = Histogram(
            "ferry_run_duration_seconds",
            "How long the app ran in each attempt that ended, by outcome",
            ["outcome"],
            buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400),
            registry=self.registry,
        )
        self.events_pending = Gauge(
            "ferry_events_pending",
            "Events the reconcile passes owe and the operator has not posted yet (posted off"
            " the workers, in order, through the client's rate limit)",
            registry=self.registry,
        )
        self.events_dropped = Counter(
            "ferry_events_dropped",
            "Events never posted: too many waiting, or still waiting when the operator stopped"
            " acting (Events are best effort)",
            registry=self.registry,
        )
        self._seen: set[str] = set()
        #: The Job watch's freshness, behind the liveness probe.
        self.watch = WatchFreshness()

    def attach(self, job_states: Callable[[], Mapping[str, int]], calls: dict[str, int]) -> None:
        """Export the Jobs-by-state gauge (from a count of Jobs by state, "" for none yet)
        and the API call counter from live data."""
        self.registry.register(JobStates(job_states))
        self.registry.register(ApiCalls(calls))

    def observe_queue_wait(self, seconds: float, urgent: bool) -> None:
        self.queue_wait.labels("urgent" if urgent else "routine").observe(seconds)

    def observe_status(self, old: JobStatus, new: JobStatus) -> None:
        """Count what a written status records: a run that ended."""
        ended = finished_run(old, new)
        if ended is not None:
            outcome, seconds = ended
            self.run_seconds.labels(outcome).observe(seconds)

    def serve(self, port: int) -> None:
        if port:
            start_http_server(port, registry=self.registry)

    def observe_container_summaries(self, pods: Iterable[dict[str, Any]]) -> None:
        """Count bytes and seconds from the stager's termination messages, once per container."""
        for pod in pods:
            status = pod.get("status") or {}
            for c in (status.get("initContainerStatuses") or []) + (
                status.get("containerStatuses") or []
            ):
                name = str(c.get("name", ""))
                if not (
                    name.startswith(names.STAGE_CONTAINER_PREFIX) or name == names.ARCHIVE_CONTAINER
                ):
                    continue
                term = (c.get("state") or {}).get("terminated") or {}
                key = f"{pod['metadata'].get('uid')}/{name}"
                if term.get("exitCode") != 0 or key in self._seen:
                    continue
                self._seen.add(key)
                try:
                    summary = json.loads(term.get("message") or "{}")
                except ValueError:
                    continue
                if not isinstance(summary, dict):
                    continue
                direction = "in" if name.startswith(names.STAGE_CONTAINER_PREFIX) else "out"
                if isinstance(summary.get("bytes"), int):
                    self.data_bytes.labels(direction).inc(summary["bytes"])
                if isinstance(summary.get("seconds"), int | float):
                    self.data_seconds.labels(direction).inc(summary["seconds"])
        if len(self._seen) > 100_000:
            self._seen.clear()


def finished_run(old: JobStatus, new: JobStatus) -> tuple[str, float] | None:
    """The outcome and seconds of the app run that the status write old -> new records as
    ended, or None when it records none.

    Usually the new status says so itself: a run outcome (Succeeded, AppFailed, TimedOut) with
    the run's start and end. When the same pass also started the next attempt or ended the Job
    (no archive wanted), those fields are already reset or absent: the run of the attempt that
    had started (old.startTime) ended when the new state was entered, and the reason says how.
    A run stopped by spec.suspend is not counted (its attempt did not finish).
    """
    if new.run_outcome is not None and new.start_time and new.run_end_time:
        already = old.attempt == new.attempt and old.run_end_time is not None
        if already:
            return None
        return new.run_outcome.value, (new.run_end_time - new.start_time).total_seconds()
    if old.start_time is None or old.run_end_time is not None or not new.history:
        return None
    if retry_pending(old):
        return None  # counted when it entered Retrying; the next attempt has not run yet
    moved_on = (
        new.attempt != old.attempt
        or new.state == State.RETRYING
        or (new.state is not None and new.state.terminal)
    )
    outcome = _UNRECORDED_ENDS.get(new.reason or "")
    if not moved_on or outcome is None or new.state == old.state:
        return None
    return outcome, max((new.history[-1].time - old.start_time).total_seconds(), 0.0)


#: The Jobs-by-state count is taken at most this often; scrapes in between are answered
#: from the last count. Counting is O(Jobs): scraped ten times a second, as the population
#: benchmark's readiness poll does, 50,000 Jobs took 27 % of the operator's CPU.
RECOUNT_SECONDS = 1.0


class JobStates(Collector):
    """ferry_jobs{state}: Jobs known to the operator, by state, counted at scrape time (at
    most once per `RECOUNT_SECONDS`: a count is up to that old)."""

    def __init__(
        self,
        job_states: Callable[[], Mapping[str, int]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.job_states = job_states
        self.clock = clock
        self._last: tuple[float, Mapping[str, int]] | None = None

    def _counts(self) -> Mapping[str, int]:
        now = self.clock()
        if self._last is None or now - self._last[0] >= RECOUNT_SECONDS:
            self._last = (now, self.job_states())
        return self._last[1]

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("ferry_jobs", "Jobs by state", labels=["state"])
        counts = dict.fromkeys((s.value for s in State), 0)
        for state, n in self._counts().items():
            state = state or "Pending"
            counts[state] = counts.get(state, 0) + n
        for state, n in sorted(counts.items()):
            family.add_metric([state], n)
        yield family


class ApiCalls(Collector):
    """ferry_api_requests_total{verb,resource}: calls the operator made to the apiserver."""

    def __init__(self, counts: dict[str, int]) -> None:
        self.counts = counts

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "ferry_api_requests", "API requests made", labels=["verb", "resource"]
        )
        for key, n in sorted(self.counts.items()):
            verb, _, resource = key.partition(" ")
            family.add_metric([verb, resource], n)
        yield family


@dataclass
class WatchFreshness:
    """Detects a Job watch that stopped delivering, from what this process knows alone: a
    version of a Job it learned outside the watch (the answer to its own status write, a Job
    read afresh) that the watch has not delivered within `grace` seconds. A live watch
    delivers every version, so each such version comes back as an event soon; an idle cluster
    is healthy (nothing learned, nothing awaited). Every Job this process writes or reads is
    covered, in memory proportional to the Jobs known (one integer each), with no API call.
    """

    grace: float = 120.0
    clock: Callable[[], float] = time.monotonic
    #: The newest version the watch delivered, by Job.
    delivered_rv: dict[Any, int] = field(default_factory=dict)
    #: Versions learned outside the watch and not delivered yet: (version, since when).
    awaited: dict[Any, tuple[int, float]] = field(default_factory=dict)

    def delivered(self, key: Any, rv: int) -> None:
        """The watch delivered this version of the Job."""
        if rv > self.delivered_rv.get(key, 0):
            self.delivered_rv[key] = rv
        waiting = self.awaited.get(key)
        if waiting is not None and rv >= waiting[0]:
            del self.awaited[key]

    def deleted(self, key: Any) -> None:
        """The watch delivered the Job's deletion."""
        self.delivered_rv.pop(key, None)
        self.awaited.pop(key, None)

    def learned(self, key: Any, rv: int) -> None:
        """This process learned this version outside the watch: the watch must deliver it."""
        if rv <= self.delivered_rv.get(key, 0):
            return
        waiting = self.awaited.get(key)
        if waiting is None:
            self.awaited[key] = (rv, self.clock())
        elif rv > waiting[0]:
            self.awaited[key] = (rv, waiting[1])

    def stale(self) -> list[Any]:
        """Jobs whose learned version the watch has not delivered within the grace period."""
        now = self.clock()
        return sorted(
            k for k, (_, since) in list(self.awaited.items()) if now - since >= self.grace
        )
