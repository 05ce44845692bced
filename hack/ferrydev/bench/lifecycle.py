"""One run of the lifecycle benchmark, start to end, and re-counting a finished run's writes.

Owns: recreating the run's cluster directory (refusing one that is not a cluster's),
starting the local cluster (audit log on, no MinIO, kube-controller-manager's rate limit equal
to the operator's, enough pod capacity for every round), the operator snapshot and its CRDs,
the rounds (alternating which system goes first), the population, the report, the results
JSON, the plot and the docs block; stopping every operator and the cluster whatever happens
(SIGTERM unwinds like Ctrl-C); and `--recount`.

Must not: parse the command line (bench/lifecycle.py does), or fail on a goal missed (the
exit code is 0 unless the harness itself could not run).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from ferrydev import kubectl
from ferrydev.bench import log, population
from ferrydev.bench.audit import AuditLog, AuditMark
from ferrydev.bench.burst import Bench
from ferrydev.bench.operator_process import LIVE_OPERATORS, install_crds, snapshot_operator
from ferrydev.bench.plot import plot
from ferrydev.bench.report import BENCHMARKS_DOC, git_meta, markdown, update_docs
from ferrydev.bench.results import BurstResult, fmt, goals, ratio, record_writes, summarize
from ferrydev.bench.rundir import fresh_root, unwind_on_sigterm
from ferrydev.bench.watch import BATCH, FERRY
from ferrydev.bench.workloads import ARCHIVE_SPEC, api_client, archive_supported
from ferrydev.cluster import LocalCluster


def recount(args: argparse.Namespace) -> int:
    """Count each burst's writes again from every audit log file in --root (rotated ones
    included) and print the report anew; the results JSON is rewritten. For a run whose
    counts the audit log's rotation spoiled (the reader before AuditMark)."""
    path = Path(args.recount)
    data = json.loads(path.read_text())
    audit = AuditLog(Path(args.root) / "audit.log")
    grace = float(data["args"]["grace"])
    bursts = [BurstResult(**b) for b in data["bursts"]]
    for b in bursts:
        start = b.wall_start if b.wall_start is not None else audit.first_create(b.namespace)
        if start is None or b.seconds_to_all_terminal is None:
            log(f"round {b.round} {b.system}: no window to count in; left as it was")
            continue
        before = (b.writes_per_job, b.controller_writes_per_job)
        counts = audit.writes(
            AuditMark.beginning(),
            b.namespace,
            start - 1.0,
            start + b.seconds_to_all_terminal + grace,
        )
        record_writes(b, counts)
        log(
            f"round {b.round} {b.system}: writes/Job {before[0]:.2f} -> {b.writes_per_job:.2f}, "
            f"controller {before[1]:.2f} -> {b.controller_writes_per_job:.2f}"
        )
    summary = summarize(bursts)
    pop = data.get("population")
    goal_lines = goals(summary, pop)
    meta = {**data["meta"], "recounted": datetime.now(UTC).strftime("%Y-%m-%d")}
    run_args = argparse.Namespace(**data["args"])
    text = markdown(run_args, bursts, summary, pop, goal_lines, meta)
    print(text)
    data.update(bursts=[asdict(x) for x in bursts], summary=summary, goals=goal_lines, meta=meta)
    path.write_text(json.dumps(data, indent=2))
    return 0


def run(args: argparse.Namespace) -> int:
    """One run with the arguments of bench/lifecycle.py (`--recount` included)."""
    if args.recount:
        return recount(args)
    root = Path(args.root)
    if not fresh_root(root):
        return 2
    pods_per_node = max(1000, math.ceil((args.rounds * args.jobs * 3 + 2000) / args.nodes))
    cluster = LocalCluster(
        root,
        nodes=args.nodes,
        node_cpu="100000",
        node_memory="100Ti",
        node_pods=pods_per_node,
        with_minio=False,
        audit=True,
        controller_qps=args.qps,
        controller_burst=int(2 * args.qps),
    )
    # SIGTERM (e.g. `timeout`) unwinds like Ctrl-C: operators stopped, cluster torn down.
    unwind_on_sigterm()
    log(f"starting the local cluster in {root}")
    state = cluster.up()
    log(f"cluster up in {state.started_seconds}s")
    try:
        code, digest = snapshot_operator(root)
        code_meta = git_meta()  # of the tree the snapshot was taken from
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
        api = api_client(state)
        archive = ARCHIVE_SPEC if archive_supported(state) else None
        if archive is None:
            log(
                f"NOTE: the Job CRD has no spec.archive.{'/'.join(ARCHIVE_SPEC)} yet: Ferry Jobs "
                "run with the default archive step (one archive pod per Job)"
            )
        bench = Bench(state, api, AuditLog(root / "audit.log"), args, archive, code)
        systems = [FERRY if s == "ferry" else BATCH for s in args.systems.split(",") if s]
        bursts: list[BurstResult] = []
        for r in range(1, args.rounds + 1):
            order = systems if r % 2 == 1 else list(reversed(systems))
            for system in order:
                bursts.append(bench.burst(system, r))
                if not args.keep_namespaces:
                    bench.remove(bursts[-1].namespace)
                time.sleep(3)
        pop = population.run(bench) if args.population > 0 else None
        summary = summarize(bursts)
        goal_lines = goals(summary, pop)
        meta = {
            **code_meta,
            "operator_digest": digest,
            "date": datetime.now(UTC).strftime("%Y-%m-%d"),
            "cpus": os.cpu_count(),
            "archive": json.dumps(archive) if archive is not None else "default (archives)",
        }
        text = markdown(args, bursts, summary, pop, goal_lines, meta)
        print(text)
        f, b = summary.get("ferry", {}), summary.get("batch", {})
        tr = ratio(f.get("completions_per_second"), b.get("completions_per_second"))
        for g in goal_lines:
            print(g)
        print(f"throughput ratio: {fmt(tr)}")
        results = {
            "args": vars(args),
            "meta": meta,
            "bursts": [asdict(x) for x in bursts],
            "summary": summary,
            "population": pop,
            "goals": goal_lines,
            "throughput_ratio": tr,
        }
        Path(args.json or root / "lifecycle.json").write_text(json.dumps(results, indent=2))
        if bursts and args.plot:
            plot(bursts, Path(args.plot), args)
            log(f"plot written to {args.plot}")
        if args.update_docs:
            update_docs(BENCHMARKS_DOC, text, bool(args.rate))
            log("docs/benchmarks.md updated")
    finally:
        for op in list(LIVE_OPERATORS):
            op.stop()
        if args.keep_cluster:
            log(f"cluster left running in {root} (stop: hack/cluster down --dir {root})")
        else:
            cluster.down()
            log("cluster stopped")
    return 0
