"""Ferry's writes benchmark on real pods: the API writes of a Job with one input and archiving,
next to a Job with neither, on a local cluster with a real node (containerd + kubelet) and
MinIO, which it starts in --root and tears down at the end. Both workloads run in the same run,
alternating which goes first; every staged Job's archive is checked against the input.

    .venv/bin/python bench/staged.py --jobs 20 --rounds 3

It exits 1 when a staged Job did not archive what it should have; the writes are reported, not
judged (docs/benchmarks.md, "Writes of a Job with one input and archiving", says what each is
for). This file is the command line only; the benchmark is `ferrydev.bench.staged`.
"""

from __future__ import annotations

import argparse
import sys

from ferrydev.bench import staged


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--jobs", type=int, default=20, help="Jobs per burst (default 20)")
    p.add_argument("--rounds", type=int, default=3, help="plain/staged round pairs (default 3)")
    p.add_argument("--qps", type=float, default=50, help="the operator's client QPS; burst 2x")
    p.add_argument("--workers", type=int, default=None, help="FERRY_WORKERS (operator default)")
    p.add_argument("--root", default="/tmp/ferry-bench-staged", help="cluster directory")  # noqa: S108
    p.add_argument("--create-threads", type=int, default=8, help="threads creating the Jobs")
    p.add_argument("--timeout", type=float, default=600, help="per burst, seconds")
    p.add_argument("--grace", type=float, default=3.0, help="seconds after the last terminal Job")
    p.add_argument("--json", default=None, help="results JSON (default <root>/staged.json)")
    p.add_argument(
        "--update-docs", action="store_true", help="write the results into docs/benchmarks.md"
    )
    args = p.parse_args(argv)
    args.rate, args.duration, args.operator_setting = 0.0, "1s", []
    return args


def main(argv: list[str] | None = None) -> int:
    return staged.run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
