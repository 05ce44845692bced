"""Ferry's lifecycle benchmark: a burst (or a steady stream, --rate) of Jobs against
kube-controller-manager's Job controller, and the operator's memory and resume time with
10,000 finished Jobs present.

Runs on its own local cluster (ferrydev.cluster: etcd, kube-apiserver with an audit log,
kube-controller-manager, kube-scheduler and kwok's simulated nodes), which it starts in --root
and tears down at the end. Each round runs a burst of --jobs Ferry Jobs (with the operator
running only for that burst) and the same number of batch/v1 Jobs (driven by the Job
controller) in fresh namespaces, alternating which goes first; both controllers get the same
client QPS and burst. See docs/benchmarks.md for the method and the results.

    .venv/bin/python bench/lifecycle.py --jobs 1000 --rounds 3 --qps 50
    .venv/bin/python bench/lifecycle.py --jobs 1200 --rate 20 --qps 150 --population 0
    .venv/bin/python bench/lifecycle.py --jobs 100 --rounds 1 --population 1000   # quick look

It never fails CI: every goal is reported as "pass" or "short of goal", and the exit code is 0
unless the harness itself could not run.

This file is the command line only; the benchmark is `ferrydev.bench` (see its modules).
"""

from __future__ import annotations

import argparse
import sys

from ferrydev.bench import lifecycle
from ferrydev.paths import ROOT


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--jobs", type=int, default=1000, help="Jobs per burst (default 1000)")
    p.add_argument("--rounds", type=int, default=3, help="Ferry/baseline round pairs (default 3)")
    p.add_argument("--qps", type=float, default=50, help="client QPS of both controllers; burst 2x")
    p.add_argument("--workers", type=int, default=None, help="FERRY_WORKERS (operator default)")
    p.add_argument("--duration", default="1s", help="simulated run time of every pod (kwok)")
    p.add_argument(
        "--population", type=int, default=10000, help="finished Jobs for the memory test (0: skip)"
    )
    p.add_argument("--root", default="/tmp/ferry-bench", help="cluster directory (recreated)")  # noqa: S108
    p.add_argument("--nodes", type=int, default=3, help="simulated nodes")
    p.add_argument("--create-threads", type=int, default=16, help="threads creating the Jobs")
    p.add_argument("--timeout", type=float, default=None, help="per burst (default: 300 + Jobs s)")
    p.add_argument("--grace", type=float, default=3.0, help="seconds after the last terminal Job")
    p.add_argument("--systems", default="ferry,batch", help="which systems to run")
    p.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="create the Jobs at this steady rate (Jobs/s) instead of all at once",
    )
    p.add_argument(
        "--plot",
        default=None,
        help="PNG path (default docs/bench-completions.png, docs/bench-stream.png with --rate; "
        "'' for none)",
    )
    p.add_argument("--json", default=None, help="results JSON (default <root>/lifecycle.json)")
    p.add_argument(
        "--update-docs", action="store_true", help="write the results into docs/benchmarks.md"
    )
    p.add_argument(
        "--operator-setting",
        action="append",
        default=[],
        metavar="FERRY_NAME=VALUE",
        help="an operator setting for Ferry's bursts, e.g. FERRY_STATUS_HOLD_SECONDS=0 "
        "(repeatable; the report names them)",
    )
    p.add_argument("--keep-cluster", action="store_true", help="leave the cluster running")
    p.add_argument(
        "--keep-namespaces",
        action="store_true",
        help="keep each burst's namespace (default: deleted, and gone, before the next burst)",
    )
    p.add_argument(
        "--recount",
        default=None,
        metavar="JSON",
        help="count the writes of a finished run (its results JSON, its --root) again",
    )
    args = p.parse_args(argv)
    for setting in args.operator_setting:
        if not setting.startswith("FERRY_") or "=" not in setting:
            p.error(f"--operator-setting {setting!r}: not FERRY_NAME=VALUE")
    if args.timeout is None:
        args.timeout = 300 + args.jobs
    if args.plot is None:
        name = "bench-stream.png" if args.rate else "bench-completions.png"
        args.plot = str(ROOT / "docs" / name)
    return args


def main(argv: list[str] | None = None) -> int:
    return lifecycle.run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
