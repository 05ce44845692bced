"""Staging throughput: the stager's stage-in and archive against a plain minio-client loop.

Starts a MinIO server of its own (the binary hack/build-tools.sh builds) on a free loopback
port, writes the data sets to a temp dir under /tmp, and for each data set runs, side by side
and alternating (an untimed run of each first, then 3 rounds each, order swapped every round;
each timed run starts once a VM that reports freed memory to its host has stopped reporting,
so the runs meet the same memory: see docs/benchmarks.md, "Staging throughput"):

- stage-in: the stager's code path (ferry.stager.inputs.Stager: s3 key / prefix → a local dir,
  hashing every byte and writing the staging record) vs a loop of `fget_object` calls;
- archive: the stager's code path (ferry.stager.archive.Archiver: a local dir → the bucket,
  hashing every byte, plus logs and manifest.json) vs a loop of `fput_object` calls.

Both run in this process. The table (MB/s = 10^6 bytes per second, median of the rounds, and the
ratio stager / baseline; the goal is >= 0.9) is printed and written to docs/benchmarks.md under
"## Staging throughput", leaving other sections alone. This is a measurement, never a test.

    .venv/bin/python bench/staging.py [--rounds 3] [--big-mib 1024] [--small 1000]

This file is the command line only; the measurement is `ferrydev.bench.staging`, the table
`ferrydev.bench.report`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ferrydev.bench import staging
from ferrydev.bench.report import (
    BENCHMARKS_DOC,
    STAGING_HEADING,
    staging_section,
    staging_table,
    write_staging_doc,
)
from ferrydev.paths import ROOT


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--big-mib", type=int, default=1024)
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--small-kib", type=int, default=100)
    parser.add_argument("--no-doc", action="store_true", help="print only")
    args = parser.parse_args()
    hash_rate = staging.sha256_rate()
    rows = staging.run(args.rounds, args.big_mib, args.small, args.small_kib)
    hash_rate = min(hash_rate, staging.sha256_rate())
    load = " / ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(f"sha256 alone: {hash_rate:.0f} MB/s; load average {load}")
    text = staging_section(rows, args.rounds, hash_rate, load)
    print()
    print(staging_table(rows, args.rounds))
    if not args.no_doc:
        write_staging_doc(text)
        print(f"\nwritten to {BENCHMARKS_DOC.relative_to(ROOT)} under {STAGING_HEADING!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
