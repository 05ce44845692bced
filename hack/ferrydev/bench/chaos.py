"""One run of the fault suite (bench/chaos.py), start to end.

Owns: the sizes (`FULL`, the benchmark's, and `SMALL`, CI's), starting a local cluster of
its own (kwok nodes, real MinIO) in --root, the operator snapshot and its CRDs, running the
chosen scenarios in order (`kills`, `stopped`, `watch-gap`, `api-faults`; the store outage
runs on the real node, `--real-node --scenarios store`: `chaos_store`), printing each
scenario's lines and headline, the results JSON; stopping every operator and the cluster
whatever happens.

Must not: parse the command line (bench/chaos.py does), or fail on a figure: the exit code is
0 unless the harness itself could not run (the CI-sized tests assert the figures).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ferrydev import kubectl
from ferrydev.bench import log
from ferrydev.bench.chaos_api import api_faults, watch_gap
from ferrydev.bench.chaos_restarts import kills, stopped
from ferrydev.bench.chaos_store import REAL_NODE_SETTINGS, store_outage
from ferrydev.bench.chaos_suite import Result, Suite
from ferrydev.bench.operator_process import LIVE_OPERATORS, install_crds, snapshot_operator
from ferrydev.bench.rundir import fresh_root, unwind_on_sigterm
from ferrydev.bench.workloads import api_client
from ferrydev.cluster import ClusterState, LocalCluster

SCENARIOS = ("kills", "stopped", "watch-gap", "api-faults")
REAL_NODE_SCENARIOS = ("store",)

#: Sizes: the benchmark's (issue #17) and the CI-sized run of tests/integration/test_chaos.py.
FULL: dict[str, Any] = {
    "jobs": 500,
    "kills": 20,
    "stop_jobs": 100,
    "stop_seconds": 300.0,
    "gap_jobs": 50,
    "fault_jobs": 100,
    "fault_share": 0.1,
    "deadline": 600.0,
    "store_jobs": 3,
    "outage_seconds": 300.0,
}
SMALL: dict[str, Any] = {
    "jobs": 40,
    "kills": 3,
    "stop_jobs": 20,
    "stop_seconds": 20.0,
    "gap_jobs": 20,
    "fault_jobs": 24,
    "fault_share": 0.1,
    "deadline": 150.0,
    "store_jobs": 2,
    # Longer than today's main absorbs: each of its 3 archive pods retries for ~31 s (the
    # stager's FERRY_ARCHIVE_RETRIES, backoff 1 s doubling); a 90 s outage passed on main.
    "outage_seconds": 150.0,
}


def run_scenario(suite: Suite, name: str, sizes: dict[str, Any], seed: int) -> Result:
    """One scenario by name, with `sizes` (keys of FULL)."""
    deadline = float(sizes["deadline"])
    if name == "kills":
        return kills(suite, int(sizes["jobs"]), int(sizes["kills"]), seed, deadline)
    if name == "stopped":
        return stopped(suite, int(sizes["stop_jobs"]), float(sizes["stop_seconds"]), seed, deadline)
    if name == "watch-gap":
        return watch_gap(suite, int(sizes["gap_jobs"]), seed, deadline)
    if name == "api-faults":
        return api_faults(
            suite, int(sizes["fault_jobs"]), float(sizes["fault_share"]), seed, deadline
        )
    if name == "store":
        # The outage's deadline: the store's downtime plus the operator's longest backoff.
        return store_outage(
            suite, int(sizes["store_jobs"]), float(sizes["outage_seconds"]), 10, deadline + 300
        )
    raise ValueError(f"unknown scenario {name!r}; one of {', '.join(SCENARIOS)}")


def run(args: argparse.Namespace) -> int:
    root = Path(args.root)
    if not fresh_root(root):
        return 2
    sizes = dict(SMALL if args.small else FULL)
    for key in FULL:
        value = getattr(args, key, None)
        if value is not None:
            sizes[key] = value
    names = args.scenarios.split(",")
    if args.real_node != all(n in REAL_NODE_SCENARIOS for n in names):
        log(f"--real-node runs {', '.join(REAL_NODE_SCENARIOS)} and nothing else")
        return 2
    unwind_on_sigterm()
    cluster: LocalCluster | None = None
    if args.use_cluster:
        # A running cluster (hack/cluster up): used, never stopped; --root holds the run's files.
        state = ClusterState.load(Path(args.use_cluster))
        if state.real_node != args.real_node:
            log(f"the cluster in {args.use_cluster} has real_node={state.real_node}")
            return 2
        root.mkdir(parents=True)
    else:
        cluster = LocalCluster(
            root,
            nodes=3,
            node_cpu="1000",
            node_memory="10Ti",
            node_pods=3000,
            real_node=args.real_node,
        )
        log(f"starting the local cluster in {root}")
        state = cluster.up()
        log(f"cluster up in {state.started_seconds}s")
    results: list[Result] = []
    try:
        code, digest = snapshot_operator(root)
        kubectl.output(
            state.kubeconfig,
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            install_crds(root),
        )
        kubectl.output(
            state.kubeconfig,
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/apps.ferry.dev",
            "crd/jobs.ferry.dev",
        )
        settings = dict(kv.split("=", 1) for kv in args.setting)
        if args.real_node:
            settings = {
                **REAL_NODE_SETTINGS,
                "FERRY_DEFAULT_S3_ENDPOINT": state.minio_pod_endpoint,
                **settings,
            }
        suite = Suite(state, api_client(state), root / "chaos", code, args.qps, settings)
        print(f"fault suite: operator {digest}, seed {args.seed}, sizes {json.dumps(sizes)}")
        for name in names:
            log(f"scenario {name}")
            r = run_scenario(suite, name, sizes, args.seed)
            results.append(r)
            print(f"== {r.scenario} ({r.seconds:.0f} s wall)")
            for line in r.lines:
                print(f"{r.scenario}: {line}")
            for line in r.details[:30]:
                print(f"{r.scenario}:   {line}")
            if len(r.details) > 30:
                print(f"{r.scenario}:   ... {len(r.details) - 30} more")
        out = Path(args.json or root / "chaos.json")
        out.write_text(
            json.dumps(
                {
                    "sizes": sizes,
                    "seed": args.seed,
                    "operator_digest": digest,
                    "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "results": [asdict(r) for r in results],
                },
                indent=2,
            )
        )
        log(f"results in {out}")
    finally:
        for op in list(LIVE_OPERATORS):
            op.stop()
        if cluster is None:
            log(f"the cluster in {args.use_cluster} was not started here: left running")
        elif args.keep_cluster:
            log(f"cluster left running in {root} (stop: hack/cluster down --dir {root})")
        else:
            cluster.down()
            log("cluster stopped")
    return 0
