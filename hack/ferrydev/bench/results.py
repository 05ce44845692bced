"""The lifecycle benchmark's figures: one burst's result, its writes, medians and the goals.

Owns: `BurstResult` (every figure of one burst, as the results JSON stores it), putting a
burst's audited writes into it, percentiles and medians, the Ferry/baseline ratios and the
verdict on each goal ("pass" or "short of goal", never an error).

Must not: measure (`burst`, `population` do) or format Markdown (`report` does).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ferrydev.bench.audit import AuditCounts
from ferrydev.bench.watch import FERRY

# Goals (issue text); measured values are compared with these, never assumed.
GOAL_THROUGHPUT_RATIO = 1.3
GOAL_OPERATOR_WRITES_PER_JOB = 3.5
GOAL_CPU_RATIO = 1.0
GOAL_P99_POD_TO_JOB_S = 1.0
GOAL_RSS_MB = 300.0
GOAL_RESUME_S = 30.0


@dataclass
class BurstResult:
    system: str
    round: int
    namespace: str
    jobs: int
    terminal: int
    succeeded: int
    seconds_to_all_terminal: float | None
    completions_per_second: float | None
    create_seconds: float
    p50_create_to_pod: float | None
    p99_create_to_pod: float | None
    p50_pod_to_job: float | None
    p99_pod_to_job: float | None
    writes: list[dict[str, Any]]
    writes_per_actor: dict[str, int]
    failed_writes: dict[str, int]
    user_agents: dict[str, str]
    writes_per_job: float
    controller_writes_per_job: float
    operator_cpu_seconds: float | None = None
    operator_cpu_seconds_total: float | None = None
    operator_peak_rss_bytes: int | None = None
    controller_manager_cpu_seconds: float | None = None
    archive_spec: dict[str, Any] | None = None
    # The operator's own count of its API requests over its life (reads included).
    operator_requests: dict[str, int] = field(default_factory=dict)
    completions: list[float] = field(default_factory=list)  # seconds since the first create
    wall_start: float | None = None  # time.time() of the first create
    # Seconds from the last Job terminal until the operator owed no Event (posted after the
    # pass); its writes are counted until then.
    events_drained_after: float | None = None
    # Ferry: how many Jobs went through each sequence of versions (one per write to the Job
    # seen by a watch: "state (reason)" and the conditions that changed), e.g. the path of
    # status writes a Job takes.
    job_paths: dict[str, int] = field(default_factory=dict)


def record_writes(result: BurstResult, counts: AuditCounts) -> None:
    """Put a burst's audited writes into its result."""
    per_actor = counts.per_actor()
    controller = "operator" if result.system == FERRY.name else "kube-controller-manager"
    total = sum(v for a, v in per_actor.items() if a != "bench")
    result.writes = counts.table()
    result.writes_per_actor = dict(per_actor)
    result.failed_writes = dict(counts.failed)
    result.user_agents = counts.user_agents
    result.writes_per_job = total / result.jobs
    result.controller_writes_per_job = per_actor.get(controller, 0) / result.jobs


# --------------------------------------------------------------------------- statistics


def percentile(values: Iterable[float], q: float) -> float | None:
    data = sorted(values)
    if not data:
        return None
    k = (len(data) - 1) * q / 100
    lo, hi = math.floor(k), math.ceil(k)
    return data[lo] + (data[hi] - data[lo]) * (k - lo)


def median(values: Iterable[float | None]) -> float | None:
    data = [v for v in values if v is not None]
    return statistics.median(data) if data else None


def fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def summarize(bursts: list[BurstResult]) -> dict[str, dict[str, float | None]]:
    out: dict[str, dict[str, float | None]] = {}
    for system in ("ferry", "batch"):
        rs = [b for b in bursts if b.system == system]
        if not rs:
            continue
        out[system] = {
            "seconds_to_all_terminal": median(b.seconds_to_all_terminal for b in rs),
            "completions_per_second": median(b.completions_per_second for b in rs),
            "p50_create_to_pod": median(b.p50_create_to_pod for b in rs),
            "p99_create_to_pod": median(b.p99_create_to_pod for b in rs),
            "p50_pod_to_job": median(b.p50_pod_to_job for b in rs),
            "p99_pod_to_job": median(b.p99_pod_to_job for b in rs),
            "writes_per_job": median(b.writes_per_job for b in rs),
            "controller_writes_per_job": median(b.controller_writes_per_job for b in rs),
            "operator_cpu_seconds": median(b.operator_cpu_seconds for b in rs),
            "operator_peak_rss_mb": median(
                b.operator_peak_rss_bytes / 1e6 if b.operator_peak_rss_bytes else None for b in rs
            ),
            "controller_manager_cpu_seconds": median(b.controller_manager_cpu_seconds for b in rs),
        }
    return out


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def goals(summary: dict[str, dict[str, float | None]], pop: dict[str, Any] | None) -> list[str]:
    f, b = summary.get("ferry", {}), summary.get("batch", {})
    lines = []

    def line(name: str, ok: bool | None, detail: str) -> None:
        verdict = "n/a (not measured)" if ok is None else ("pass" if ok else "short of goal")
        lines.append(f"goal {name}: {verdict} — {detail}")

    tr = ratio(f.get("completions_per_second"), b.get("completions_per_second"))
    line(
        f"throughput ratio >= {GOAL_THROUGHPUT_RATIO:.1f}",
        None if tr is None else tr >= GOAL_THROUGHPUT_RATIO,
        f"measured {fmt(tr)}",
    )
    fw, bw = f.get("controller_writes_per_job"), b.get("controller_writes_per_job")
    line(
        f"operator API writes per Job <= {GOAL_OPERATOR_WRITES_PER_JOB:g}",
        None if fw is None else fw <= GOAL_OPERATOR_WRITES_PER_JOB,
        f"operator {fmt(fw)} vs kube-controller-manager {fmt(bw)} writes/Job "
        f"(all components: Ferry {fmt(f.get('writes_per_job'))} vs batch "
        f"{fmt(b.get('writes_per_job'))})",
    )
    cpu = ratio(f.get("operator_cpu_seconds"), b.get("controller_manager_cpu_seconds"))
    line(
        f"controller CPU seconds (operator / kube-controller-manager) <= {GOAL_CPU_RATIO:g}",
        None if cpu is None else cpu <= GOAL_CPU_RATIO,
        f"measured {fmt(cpu)} ({fmt(f.get('operator_cpu_seconds'), 1)} s vs "
        f"{fmt(b.get('controller_manager_cpu_seconds'), 1)} s)",
    )
    p99 = f.get("p99_pod_to_job")
    line(
        f"p99 pod terminal -> Job terminal <= {GOAL_P99_POD_TO_JOB_S:g} s",
        None if p99 is None else p99 <= GOAL_P99_POD_TO_JOB_S,
        f"measured {fmt(p99, 3)} s (Job controller: {fmt(b.get('p99_pod_to_job'), 3)} s)",
    )
    rss = pop["rss_bytes_settled"] / 1e6 if pop else None
    line(
        f"RSS <= {GOAL_RSS_MB:g} MB with {pop['jobs'] if pop else 'N'} Jobs",
        None if rss is None else rss <= GOAL_RSS_MB,
        f"measured {fmt(rss, 0)} MB settled "
        f"(peak {fmt(pop['peak_rss_bytes'] / 1e6 if pop else None, 0)} MB)",
    )
    resume = pop["seconds_to_resume"] if pop else None
    line(
        f"ready with {pop['jobs'] if pop else 'N'} Jobs (all counted) <= {GOAL_RESUME_S:g} s",
        None if resume is None else resume <= GOAL_RESUME_S,
        f"measured {fmt(resume, 1)} s",
    )
    return lines
