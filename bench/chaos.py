"""Ferry's fault suite (issue #17): Jobs of mixed fates on a real kube-apiserver with kwok's
simulated nodes and a real MinIO, while the operator is killed, stopped, cut off from its
watches, and fed apiserver errors; one line per figure and these headlines:

    kills:      lost 0, duplicate pods 0, wrong terminal 0
    stopped:    converged in X s (goal <= 60 s)
    watch-gap:  missed transitions 0
    api-faults: duplicate side effects 0

The store outage (MinIO down while archive pods run, through the operator and the real
stager) needs the real node (root): `--real-node --scenarios store`, headline
`false Finished 0, outputs lost 0`; run it under `flock /tmp/ferry-real-node.lock`, as
tests/e2e/test_chaos_store.py (its CI size) is.

Runs on its own local cluster, started in --root and torn down at the end. The full sizes
are the issue's (500 Jobs and 20 SIGKILLs, a 5-minute stop, ...); --small is the size that
tests/integration/test_chaos.py runs in CI and asserts.

    .venv/bin/python bench/chaos.py                        # everything, full size
    .venv/bin/python bench/chaos.py --small                # CI's size, a few minutes
    .venv/bin/python bench/chaos.py --scenarios kills --jobs 200 --kills 10
    flock /tmp/ferry-real-node.lock .venv/bin/python bench/chaos.py --real-node --scenarios store

It never fails on a figure: the exit code is 0 unless the harness itself could not run.

This file is the command line only; the suite is `ferrydev.bench.chaos` (and chaos_*).
"""

from __future__ import annotations

import argparse
import sys

from ferrydev.bench import chaos


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--scenarios", default=",".join(chaos.SCENARIOS), help="comma-separated, in order"
    )
    p.add_argument("--small", action="store_true", help="CI's sizes instead of the full ones")
    p.add_argument("--jobs", type=int, default=None, help="kills: Jobs of mixed fates (500)")
    p.add_argument("--kills", type=int, default=None, help="kills: operator SIGKILLs (20)")
    p.add_argument("--stop-jobs", type=int, default=None, help="stopped: Jobs (100)")
    p.add_argument("--stop-seconds", type=float, default=None, help="stopped: stop (300 s)")
    p.add_argument("--gap-jobs", type=int, default=None, help="watch-gap: Jobs (50)")
    p.add_argument("--fault-jobs", type=int, default=None, help="api-faults: Jobs (100)")
    p.add_argument("--fault-share", type=float, default=None, help="api-faults: share (0.1)")
    p.add_argument("--store-jobs", type=int, default=None, help="store: archiving Jobs (3)")
    p.add_argument("--outage-seconds", type=float, default=None, help="store: MinIO down (300 s)")
    p.add_argument(
        "--real-node", action="store_true", help="a cluster with the real node: for `store`"
    )
    p.add_argument("--deadline", type=float, default=None, help="per scenario wait (600 s)")
    p.add_argument("--seed", type=int, default=17)
    p.add_argument("--qps", type=float, default=50, help="the operator's client QPS")
    p.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="FERRY_X=V",
        help="an operator setting (repeatable), e.g. FERRY_RESYNC_SECONDS=10",
    )
    p.add_argument("--root", default="/tmp/ferry-chaos", help="cluster directory (recreated)")  # noqa: S108
    p.add_argument("--json", default=None, help="results JSON (default <root>/chaos.json)")
    p.add_argument(
        "--use-cluster",
        default=None,
        metavar="DIR",
        help="run on this running cluster (hack/cluster up --dir DIR) instead of starting one",
    )
    p.add_argument("--keep-cluster", action="store_true", help="leave the cluster running")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    return chaos.run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
