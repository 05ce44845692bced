"""One burst of the lifecycle benchmark: N Jobs of one system in a fresh namespace, created at
once or at a steady rate, watched until every one is terminal, then measured.

Owns: `Bench` (the run's cluster, API client, audit log, arguments, archive setting and
operator snapshot), creating Jobs with retries on throttling, a burst of Ferry Jobs (with the
operator running for that burst only) or of batch/v1 Jobs (with kube-controller-manager's
CPU sampled), its result (`results.BurstResult`: latencies, throughput, audited writes, the
controllers' CPU and memory), and deleting a finished burst's namespace before the next one.

Must not: run the population measurement (`population` does), or leave the operator it
started running.
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

from ferrydev.bench import log
from ferrydev.bench.audit import AuditLog, AuditMark
from ferrydev.bench.operator_process import Operator
from ferrydev.bench.results import BurstResult, fmt, percentile, record_writes
from ferrydev.bench.watch import FERRY, System, watch_namespace
from ferrydev.bench.workloads import (
    APP_NAME,
    GROUP,
    KWOK_WORKLOAD,
    VERSION,
    Workload,
    batch_job,
    create_namespace,
)
from ferrydev.cluster import ClusterState
from ferrydev.processes import proc_sample, wait_until

#: How long a burst waits, after its last Job is terminal, for the Events the operator owes.
EVENTS_WAIT_SECONDS = 180.0


@dataclass
class Bench:
    state: ClusterState
    api: k8s.ApiClient
    audit: AuditLog
    args: argparse.Namespace
    archive: dict[str, Any] | None
    code: Path | None = None
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    template_job: dict[str, Any] | None = None
    #: Ferry's App and Jobs; None: the kwok workload of `workloads` (no inputs, no archive).
    workload: Workload | None = None

    def remove(self, ns: str) -> None:
        """Delete a finished burst's namespace and wait until it is gone, so that the next
        burst shares the cluster with none of its objects (kwok keeps every pod it sees, the
        Job controller's finished pods stay) and the garbage collector works before the next
        round, not during it."""
        core = k8s.CoreV1Api(self.api)
        t = time.monotonic()
        core.delete_namespace(ns)

        def gone() -> bool:
            try:
                core.read_namespace(ns)
            except ApiException as exc:
                if exc.status == 404:
                    return True
                raise
            return False

        wait_until(gone, self.args.timeout, f"namespace {ns} deleted", step=1.0)
        log(f"{ns}: deleted in {time.monotonic() - t:.0f}s")

    def flush_audit(self, start: AuditMark, tag: str) -> None:
        """Wait until the audit log holds every request made so far: write a mark (a ConfigMap
        in `default`, outside every counted namespace) and wait for its record."""
        name = f"audit-mark-{self.run_id}-{tag}"
        core = k8s.CoreV1Api(self.api)
        core.create_namespaced_config_map("default", {"metadata": {"name": name}})
        try:
            if not self.audit.flushed(start, f'"{name}"'):
                log(f"the audit log lacks {name} after 90 s: the counts may be short")
        finally:
            core.delete_namespaced_config_map(name, "default")

    def kcm_cpu(self) -> float | None:
        pid = self.state.pids.get("kube-controller-manager")
        try:
            return proc_sample(pid).cpu_seconds if pid else None
        except OSError:
            return None

    def create_all(
        self,
        create: Callable[[dict[str, Any]], Any],
        bodies: list[dict[str, Any]],
        rate: float = 0.0,
    ) -> None:
        """Create every body: at once, or (rate > 0) the i-th at i/rate seconds."""
        start = time.monotonic()

        def one(indexed: tuple[int, dict[str, Any]]) -> None:
            i, body = indexed
            if rate > 0:
                delay = start + i / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            for attempt in range(5):
                try:
                    create(body)
                    return
                except ApiException as exc:
                    if exc.status == 409:
                        return
                    if attempt == 4 or exc.status not in (429, 500, 503, 504):
                        raise
                    time.sleep(0.5 * (attempt + 1))

        with ThreadPoolExecutor(max_workers=self.args.create_threads) as pool:
            list(pool.map(one, enumerate(bodies)))

    def wait_for_events(self, operator: Operator, since: float) -> float | None:
        """Seconds after `since` until the operator owes no Event (it posts them after each
        pass, so some may still wait when the last Job is terminal): the burst's writes and
        CPU are counted until then. None when it still owes some after EVENTS_WAIT_SECONDS."""
        deadline = time.monotonic() + EVENTS_WAIT_SECONDS
        while time.monotonic() < deadline:
            if operator.events_pending() == 0:
                return time.monotonic() - since
            time.sleep(0.2)
        log(f"the operator still owes {operator.events_pending()} Event(s)")
        return None

    def burst(self, system: System, round_no: int) -> BurstResult:
        args = self.args
        n = args.jobs
        workload = self.workload or KWOK_WORKLOAD
        label = workload.name if system is FERRY else system.name
        ns = f"bench-{self.run_id}-{label}-r{round_no}"
        create_namespace(self.api, ns)
        custom = k8s.CustomObjectsApi(self.api)
        operator: Operator | None = None
        if system is FERRY:
            workload.prepare(ns)
            custom.create_namespaced_custom_object(GROUP, VERSION, ns, "apps", workload.app(ns))
            operator = Operator(
                self.state,
                ns,
                args.qps,
                args.workers,
                Path(args.root) / f"operator-{ns}.log",
                self.code,
                settings=dict(x.split("=", 1) for x in getattr(args, "operator_setting", [])),
            )

            def app_ready() -> bool:
                assert operator is not None
                operator.check()
                app = custom.get_namespaced_custom_object(GROUP, VERSION, ns, "apps", APP_NAME)
                conds = (app.get("status") or {}).get("conditions") or []
                ready = any(c["type"] == "Ready" and c["status"] == "True" for c in conds)
                return ready and operator.jobs_in_state("Finished") is not None

            wait_until(app_ready, 120, "the operator to start and mark the App Ready")
            bodies = [workload.job(f"j{i:05d}", args.duration, self.archive) for i in range(n)]

            def create(body: dict[str, Any]) -> Any:
                return custom.create_namespaced_custom_object(GROUP, VERSION, ns, "jobs", body)
        else:
            batch = k8s.BatchV1Api(self.api)
            bodies = [batch_job(f"j{i:05d}", args.duration) for i in range(n)]

            def create(body: dict[str, Any]) -> Any:
                return batch.create_namespaced_job(ns, body)

        tl, watchers = watch_namespace(self.api, system, ns)
        audit_start = self.audit.mark()
        kcm0 = self.kcm_cpu()
        op0 = operator.sample() if operator else None
        log(f"round {round_no} {system.name}: creating {n} Jobs in {ns}")
        wall0 = time.time()
        t0 = time.monotonic()
        self.create_all(create, bodies, args.rate)
        create_seconds = time.monotonic() - t0
        log(f"round {round_no} {system.name}: created in {create_seconds:.1f}s; waiting")
        deadline = t0 + args.timeout
        last_report = t0
        while time.monotonic() < deadline:
            with tl.lock:
                done = len(tl.job_terminal)
            if done >= n:
                break
            if operator:
                operator.check()
            for w in watchers:
                if w.error:
                    raise RuntimeError(f"watch {w.path} failed: {w.error}")
            if time.monotonic() - last_report > 15:
                log(f"round {round_no} {system.name}: {done}/{n} terminal")
                last_report = time.monotonic()
            time.sleep(0.2)
        t_end = time.monotonic()
        with tl.lock:
            terminal_times = dict(tl.job_terminal)
        if len(terminal_times) < n:
            log(
                f"round {round_no} {system.name}: only {len(terminal_times)}/{n} terminal "
                "by the timeout"
            )
        last = max(terminal_times.values(), default=t_end)
        drained_after = self.wait_for_events(operator, last) if operator else None
        # A short grace for writes that belong to the burst but land after the last terminal
        # state (e.g. cleanup of the last pods), then the figures.
        time.sleep(args.grace)
        kcm1 = self.kcm_cpu()
        op1 = operator.sample() if operator else None
        op_requests = operator.api_requests() if operator else {}
        if operator:
            operator.stop()
        for w in watchers:
            w.stopping.set()
        wall1 = wall0 + (last - t0) + (drained_after or 0.0) + args.grace
        self.flush_audit(audit_start, ns)
        counts = self.audit.writes(audit_start, ns, wall0 - 1.0, wall1)
        with tl.lock:
            create_to_pod = [
                tl.pod_added[j] - tl.job_added[j] for j in tl.pod_added if j in tl.job_added
            ]
            pod_to_job = [
                tl.job_terminal[j] - tl.pod_terminal[j]
                for j in tl.job_terminal
                if j in tl.pod_terminal
            ]
            succeeded = sum(1 for o in tl.job_outcome.values() if o in ("Finished", "Complete"))
            paths = Counter(" → ".join(steps) for steps in tl.job_steps.values())
        all_done = len(terminal_times) >= n
        seconds = (max(terminal_times.values()) - t0) if all_done else None
        result = BurstResult(
            system=system.name,
            round=round_no,
            namespace=ns,
            jobs=n,
            terminal=len(terminal_times),
            succeeded=succeeded,
            seconds_to_all_terminal=seconds,
            completions_per_second=(n / seconds) if seconds else None,
            create_seconds=create_seconds,
            p50_create_to_pod=percentile(create_to_pod, 50),
            p99_create_to_pod=percentile(create_to_pod, 99),
            p50_pod_to_job=percentile(pod_to_job, 50),
            p99_pod_to_job=percentile(pod_to_job, 99),
            writes=[],
            writes_per_actor={},
            failed_writes={},
            user_agents={},
            writes_per_job=0.0,
            controller_writes_per_job=0.0,
            controller_manager_cpu_seconds=(kcm1 - kcm0) if kcm0 is not None and kcm1 else None,
            archive_spec=self.archive if system is FERRY else None,
            operator_requests=op_requests,
            completions=sorted(t - t0 for t in terminal_times.values()),
            wall_start=wall0,
            events_drained_after=drained_after,
            job_paths=dict(paths.most_common()),
        )
        record_writes(result, counts)
        if operator and op0 and op1:
            result.operator_cpu_seconds = op1.cpu_seconds - op0.cpu_seconds
            result.operator_cpu_seconds_total = op1.cpu_seconds
            result.operator_peak_rss_bytes = op1.hwm_bytes
        if system is FERRY and succeeded:
            name = next(j for j, o in tl.job_outcome.items() if o == "Finished")
            self.template_job = custom.get_namespaced_custom_object(
                GROUP, VERSION, ns, "jobs", name
            )
        log(
            f"round {round_no} {system.name}: {result.terminal}/{n} terminal "
            f"({succeeded} succeeded) in {fmt(seconds)}s, {fmt(result.completions_per_second)}/s, "
            f"writes/Job {result.writes_per_job:.2f} "
            f"(controller {result.controller_writes_per_job:.2f})"
        )
        return result
