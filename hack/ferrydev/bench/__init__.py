"""The benchmarks' parts: bench/lifecycle.py, staging.py, staged.py and chaos.py are their
command lines.

Lifecycle (a burst or a steady stream of Jobs, Ferry's operator against the batch/v1 Job
controller, on a local cluster with an audit log; then the operator's memory and resume time
with many finished Jobs): `workloads` (the objects created), `operator_process` (the operator
under test as a child process), `watch` (receipt times of the events measured), `audit` (the
audit log reader: who wrote what), `burst` and `population` (the two measurements),
`results` (figures, medians, goals), `report` (the Markdown blocks in docs/benchmarks.md),
`plot` and `lifecycle` (one run, start to end; re-counting a finished run).

Staging (the stager's stage-in and archive against a plain minio-client loop): `staging`,
with its table in `report`. Writes of a Job with one input and archiving, on the real node
(bench/staged.py): `staged`, with the lifecycle's `burst` and its own `workloads.Workload`.
Every run's --root and SIGTERM: `rundir`.

Faults (bench/chaos.py, issue #17): `chaos` (sizes, one run), `chaos_suite` (what the
scenarios share), `chaos_fates` (Jobs built for a known fate), `chaos_ledger` (every version
the suite's own watches saw, and the figures from them), `chaos_cluster` (components
restarted in place, etcd compacted), `chaos_proxy` (a fault-injecting apiserver proxy), and
the scenarios: `chaos_restarts` (SIGKILLs, a stopped operator), `chaos_api` (a forced watch
expiry, apiserver faults), `chaos_store` (a store outage, on the real node).

Must not: fail CI (a goal missed is reported, never raised), or touch any cluster but the
one a run starts itself.
"""

from __future__ import annotations

import sys
import time


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)
