"""The lifecycle benchmark's population measurement: the operator's resume time, memory and
writes with many finished Ferry Jobs present.

Owns: creating N Jobs copied from one Ferry itself finished (from a burst, or a template Job
finished here when no burst ran) and writing their status as Finished, then starting the
operator on them and measuring: time until it knows every Finished Job, a new probe Job's
time to Finished, its settled and peak resident memory, CPU, and its writes (audit log).

Must not: run a burst (`burst` does), or leave the operator it started running.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from kubernetes import client as k8s

from ferrydev.bench import log
from ferrydev.bench.burst import Bench
from ferrydev.bench.operator_process import Operator
from ferrydev.bench.workloads import GROUP, VERSION, app_manifest, create_namespace, ferry_job
from ferrydev.processes import wait_until


def finished_status(bench: Bench, name: str) -> dict[str, Any]:
    """The status of a Finished Job: a copy of one Ferry itself finished (in a burst
    round, or `make_template` when none ran), so that there is nothing to correct."""
    assert bench.template_job is not None
    status: dict[str, Any] = json.loads(json.dumps(bench.template_job["status"]))
    if status.get("podName"):
        status["podName"] = f"{name}-1"
    return status


def make_template(bench: Bench, ns: str) -> None:
    """With no burst round run, have the operator finish one Job in `ns` to copy."""
    custom = k8s.CustomObjectsApi(bench.api)
    operator = Operator(
        bench.state,
        ns,
        bench.args.qps,
        bench.args.workers,
        Path(bench.args.root) / f"operator-{ns}-template.log",
        bench.code,
    )
    try:
        custom.create_namespaced_custom_object(
            GROUP, VERSION, ns, "jobs", ferry_job("template", bench.args.duration, bench.archive)
        )

        def finished() -> dict[str, Any] | None:
            operator.check()
            job = custom.get_namespaced_custom_object(GROUP, VERSION, ns, "jobs", "template")
            return job if (job.get("status") or {}).get("state") == "Finished" else None

        bench.template_job = wait_until(finished, 120, "the template Job to finish")
    finally:
        operator.stop()


def run(bench: Bench) -> dict[str, Any]:
    args = bench.args
    n = args.population
    ns = f"bench-{bench.run_id}-population"
    create_namespace(bench.api, ns)
    custom = k8s.CustomObjectsApi(bench.api)
    custom.create_namespaced_custom_object(GROUP, VERSION, ns, "apps", app_manifest(ns))
    extra = 0  # Finished Jobs in the namespace besides the population
    if bench.template_job is None:
        make_template(bench, ns)
        extra = 1
    template = bench.template_job
    assert template is not None
    meta = template.get("metadata") or {}
    names = [f"p{i:05d}" for i in range(n)]
    bodies = [
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Job",
            "metadata": {
                "name": name,
                "labels": meta.get("labels") or {},
                "annotations": meta.get("annotations") or {},
                **({"finalizers": meta["finalizers"]} if meta.get("finalizers") else {}),
            },
            "spec": template["spec"],
        }
        for name in names
    ]
    log(f"population: creating {n} Jobs in {ns}")
    t = time.monotonic()
    bench.create_all(
        lambda b: custom.create_namespaced_custom_object(GROUP, VERSION, ns, "jobs", b), bodies
    )
    log(f"population: created in {time.monotonic() - t:.0f}s; writing their status as Finished")
    t = time.monotonic()

    def finish(name: str) -> None:
        custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, ns, "jobs", name, {"status": finished_status(bench, name)}
        )

    with ThreadPoolExecutor(max_workers=args.create_threads) as pool:
        list(pool.map(finish, names))
    log(f"population: statuses written in {time.monotonic() - t:.0f}s; starting the operator")
    time.sleep(2)
    audit_start = bench.audit.mark()
    wall0 = time.time()
    operator = Operator(
        bench.state,
        ns,
        args.qps,
        args.workers,
        Path(args.root) / f"operator-{ns}.log",
        bench.code,
    )
    t_start = operator.started

    def synced() -> bool:
        operator.check()
        return bool(operator.jobs_in_state("Finished") == n + extra)

    wait_until(synced, args.timeout, f'ferry_jobs{{state="Finished"}} == {n + extra}', step=0.1)
    t_synced = time.monotonic()
    custom.create_namespaced_custom_object(
        GROUP, VERSION, ns, "jobs", ferry_job("probe", args.duration, bench.archive)
    )
    t_probe = time.monotonic()

    def probe_finished() -> bool:
        operator.check()
        job = custom.get_namespaced_custom_object(GROUP, VERSION, ns, "jobs", "probe")
        return (job.get("status") or {}).get("state") == "Finished"

    wait_until(probe_finished, args.timeout, "the probe Job to finish", step=0.05)
    t_done = time.monotonic()
    log("population: resumed; letting the operator settle before sampling its memory")
    # Settled: no CPU used for 3 s in a row (or 60 s at most).
    last = operator.sample()
    quiet_since = time.monotonic()
    settle_deadline = time.monotonic() + 60
    while time.monotonic() < settle_deadline:
        time.sleep(1)
        now = operator.sample()
        if now.cpu_seconds - last.cpu_seconds > 0.05:
            quiet_since = time.monotonic()
        last = now
        if time.monotonic() - quiet_since >= 3:
            break
    sample = operator.sample()
    wall1 = time.time()
    operator.stop()
    bench.flush_audit(audit_start, ns)
    counts = bench.audit.writes(audit_start, ns, wall0 - 1.0, wall1 + 1.0)
    result = {
        "namespace": ns,
        "jobs": n,
        "status_from": "a Job Ferry finished",
        "seconds_to_resume": t_synced - t_start,
        "seconds_probe_create_to_finished": t_done - t_probe,
        "seconds_start_to_probe_finished": t_done - t_start,
        "rss_bytes_settled": sample.rss_bytes,
        "peak_rss_bytes": sample.hwm_bytes,
        "cpu_seconds": sample.cpu_seconds,
        "operator_writes": {
            f"{v} {r}": c for (a, _, v, r), c in sorted(counts.by_key.items()) if a == "operator"
        },
    }
    log(
        f"population: resumed {n} Jobs in {result['seconds_to_resume']:.1f}s, probe Job "
        f"finished {result['seconds_probe_create_to_finished']:.1f}s after creation; RSS "
        f"{sample.rss_bytes / 1e6:.0f} MB (peak {sample.hwm_bytes / 1e6:.0f} MB)"
    )
    return result
