"""Two scenarios of the fault suite about the apiserver: a forced watch expiry with deletions in
the gap (`watch_gap`), and an apiserver that fails a share of the calls (`api_faults`).

`watch_gap`: Jobs run; the operator is frozen (SIGSTOP, a partition: its connections stay
open, it reads nothing); in the gap some run pods are deleted, some Jobs deleted (half with
their finalizer stripped, gone for good, as `kubectl patch` of a stuck Job does), some
cancelled, some finish; etcd is compacted and the apiserver restarted, so that the
operator's watches can only resume with 410 Gone; then the operator thaws. A transition is
missed when, by the deadline, a Job whose pod was deleted is not on its next attempt (or
terminal), a deleted Job is not gone, a gone Job got a new pod, a cancelled Job is not
Cancelled or a finished one not Finished. Headline `missed transitions 0`.

`api_faults`: Jobs of mixed fates with the operator behind `chaos_proxy.FaultProxy`;
headline `duplicate side effects 0`: a second UID for a pod, PVC or Job name, a pod of a
deleted Job, or two Events with the same object, reason and message.

Must not: fail on a figure (they are reported; the tests assert them).
"""

from __future__ import annotations

import collections
import random
import time
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

from ferrydev.bench.chaos_cluster import apiserver_ready, compact_etcd, restart_component
from ferrydev.bench.chaos_fates import Actions, create, mixed, patch_spec, plain
from ferrydev.bench.chaos_ledger import Ledger
from ferrydev.bench.chaos_proxy import FaultProxy, Faults
from ferrydev.bench.chaos_restarts import judge
from ferrydev.bench.chaos_suite import Result, Suite, wait_for
from ferrydev.bench.workloads import GROUP, VERSION

LONG = "3600s"


def watch_gap(suite: Suite, jobs: int, seed: int, deadline: float) -> Result:
    result = Result("watch-gap")
    t0 = time.monotonic()
    ns = suite.namespace("gap")
    q = max(1, jobs // 5)
    groups = {
        "pod-deleted": plain("poddel", [LONG] * q),
        "job-deleted": plain("jobdel", [LONG] * q),
        "job-gone": plain("jobgone", [LONG] * q),
        "cancelled": plain("cancel", [LONG] * q),
        "finished": plain("fin", ["12s"] * q),
    }
    everything = [f for g in groups.values() for f in g]
    ledger = Ledger(suite.api, ns).start()
    op = suite.operator(ns, "gap-0")
    co = k8s.CustomObjectsApi(suite.api)
    core = k8s.CoreV1Api(suite.api)
    missed: list[str] = []
    try:
        suite.started(op)
        create(suite.api, ns, everything)
        running = wait_for(
            lambda: all(
                (r := ledger.job(f.name)) is not None and "Running" in r.states for f in everything
            ),
            120,
        )
        if running is None:
            result.details.append("not every Job was Running before the gap")
        op.pause()
        gap_start = time.monotonic()
        for f in groups["pod-deleted"]:
            core.delete_namespaced_pod(f"{f.name}-1", ns, grace_period_seconds=0)
        dead: dict[str, str] = {}
        for f in groups["job-deleted"] + groups["job-gone"]:
            rec = ledger.job(f.name)
            dead[f.name] = rec.uid if rec else ""
            co.delete_namespaced_custom_object(GROUP, VERSION, ns, "jobs", f.name)
        for f in groups["job-gone"]:
            try:
                co.patch_namespaced_custom_object(
                    GROUP, VERSION, ns, "jobs", f.name, {"metadata": {"finalizers": None}}
                )
            except ApiException as exc:
                if exc.status != 404:
                    raise
        for f in groups["cancelled"]:
            patch_spec(suite.api, ns, f.name, {"cancel": True})

        def finished_pods() -> bool:
            with ledger.lock:
                phases = {p.name: p.phase for p in ledger.pods.values()}
            return all(phases.get(f"{f.name}-1") == "Succeeded" for f in groups["finished"])

        wait_for(finished_pods, 60)
        revision = compact_etcd(suite.state)
        down = restart_component(
            suite.state, "kube-apiserver", 2.0, ready=apiserver_ready(suite.api)
        )
        op.resume()
        gap = time.monotonic() - gap_start
        result.say(
            f"{len(everything)} Jobs; a {gap:.0f} s gap (operator frozen; etcd compacted at "
            f"revision {revision}; apiserver down {down:.1f} s): {q} run pods deleted, "
            f"{2 * q} Jobs deleted ({q} of them with their finalizer stripped), {q} cancelled, "
            f"{q} finished"
        )

        def check() -> list[str]:
            out = []
            for f in groups["pod-deleted"]:
                r = ledger.job(f.name)
                if r is None or not (r.attempt >= 2 or r.terminal):
                    out.append(
                        f"{f.name}: pod deleted in the gap, Job still {r.states[-1:] if r else '?'}"
                    )
            for f in groups["job-deleted"]:
                r = ledger.job(f.name)
                if r is not None and r.gone is None:
                    out.append(f"{f.name}: deleted in the gap, still there")
            for f in groups["cancelled"]:
                r = ledger.job(f.name)
                if r is None or r.terminal is None or r.terminal[0] != "Cancelled":
                    out.append(f"{f.name}: cancelled in the gap, Job {r.states[-1:] if r else '?'}")
            for f in groups["finished"]:
                r = ledger.job(f.name)
                if r is None or r.terminal is None or r.terminal[0] != "Finished":
                    out.append(f"{f.name}: pod ended in the gap, Job {r.states[-1:] if r else '?'}")
            return out

        left = wait_for(lambda: not check(), deadline, 1.0)
        took = time.monotonic() - gap_start - gap
        time.sleep(15)  # a pod created for a dead Job shows up by now
        missed = [] if left else check()
        with ledger.lock:
            orphans = sorted(
                p.name
                for p in ledger.pods.values()
                if p.owner in dead.values() and p.name not in {f"{n}-1" for n in dead}
            )
        missed += [f"{n}: created for a deleted Job" for n in orphans]
        result.figures["missed_transitions"] = len(missed)
        log_text = "".join(
            p.read_text(errors="replace") for p in suite.workdir.glob("operator-gap-*.log")
        )
        gone_seen = any(s in log_text for s in ("410", "Gone", "too old resource version"))
        result.say(f"operator's log mentions 410/Gone: {'yes' if gone_seen else 'no'}")
        seen = f"all seen {took:.0f} s after the gap" if left else f"checked {took:.0f} s after"
        result.say(f"missed transitions {len(missed)} ({seen})")
        result.details += missed
    finally:
        ledger.stop()
        suite.cleanup(ns, op)
    result.seconds = time.monotonic() - t0
    return result


def _duplicate_events(api: k8s.ApiClient, ns: str) -> dict[str, int]:
    events = k8s.CoreV1Api(api).list_namespaced_event(ns, _preload_content=False)
    import json

    items: list[dict[str, Any]] = json.loads(events.data)["items"]
    counts: collections.Counter[tuple[str, str, str]] = collections.Counter()
    for ev in items:
        source = (ev.get("source") or {}).get("component") or ev.get("reportingComponent") or ""
        if not str(source).startswith("ferry"):
            continue
        inv = ev.get("involvedObject") or {}
        counts[
            (
                f"{inv.get('kind')}/{inv.get('name')}/{str(inv.get('uid'))[:8]}",
                str(ev.get("reason")),
                str(ev.get("message"))[:80],
            )
        ] += 1
    return {" ".join(k): n for k, n in counts.items() if n > 1}


def api_faults(suite: Suite, jobs: int, share: float, seed: int, deadline: float) -> Result:
    result = Result("api-faults")
    t0 = time.monotonic()
    rng = random.Random(seed)  # noqa: S311 - a reproducible mix, not a secret
    ns = suite.namespace("faults")
    fates = mixed(jobs, rng)
    names = {f.name for f in fates}
    proxy = FaultProxy(suite.state, Faults(share=share, seed=seed), suite.workdir)
    proxy.start()
    ledger = Ledger(suite.api, ns).start()
    op = suite.operator(ns, "faults", kubeconfig=proxy.kubeconfig())
    try:
        suite.started(op)
        proxy.enabled.set()
        created = create(suite.api, ns, fates)
        actions = Actions(suite.api, ns, fates, created)
        actions.start()
        start = time.monotonic()
        done = wait_for(lambda: ledger.terminal_count(names) == len(names), deadline, 1.0)
        took = time.monotonic() - start
        time.sleep(10)
        proxy.enabled.clear()
        actions.stopping.set()
        c = proxy.counts
        faulted = sum(n for k, n in c.items() if k != "forwarded")
        result.say(
            f"{len(fates)} Jobs; {faulted} of {faulted + c['forwarded']} operator requests "
            f"faulted ({share:.0%} of non-watch requests): "
            + ", ".join(f"{k} {n}" for k, n in sorted(c.items()) if k != "forwarded")
        )
        result.say(
            f"all terminal in {took:.0f} s"
            if done
            else f"{len(names) - ledger.terminal_count(names)} not terminal after {took:.0f} s"
        )
        judge(result, fates, ledger)
        events = _duplicate_events(suite.api, ns)
        pvcs = ledger.duplicate_pvcs()
        jobs_twice = ledger.duplicate_jobs()
        dup_pods = int(result.figures["duplicate_pods"])
        extra_events = sum(n - 1 for n in events.values())
        total = dup_pods + len(pvcs) + len(jobs_twice) + extra_events
        result.figures["duplicate_side_effects"] = total
        f = result.figures
        result.say(
            f"lost {f['lost']:.0f}, wrong terminal {f['wrong_terminal']:.0f}; duplicates: "
            f"pods {dup_pods}, PVCs {len(pvcs)}, Jobs {len(jobs_twice)}, Events {extra_events}"
        )
        result.say(f"duplicate side effects {total}")
        result.details += [f"duplicate Event x{n}: {k}" for k, n in sorted(events.items())]
        result.details += [f"duplicate PVC {k} x{n}" for k, n in sorted(pvcs.items())]
    finally:
        ledger.stop()
        suite.cleanup(ns, op)
        proxy.stop()
    result.seconds = time.monotonic() - t0
    return result
