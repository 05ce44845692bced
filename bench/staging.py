"""Staging throughput: the stager's stage-in and archive against a plain minio-client loop.

Starts a MinIO server of its own (the binary hack/build-tools.sh builds) on a free loopback
port, writes the data sets to a temp dir under /tmp, and for each data set runs, side by side
and alternating (3 rounds each, order swapped every round):

- stage-in: the stager's code path (ferry.stager.inputs.Stager: s3 key / prefix → a local dir,
  hashing every byte and writing the staging record) vs a loop of `fget_object` calls;
- archive: the stager's code path (ferry.stager.archive.Archiver: a local dir → the bucket,
  hashing every byte, plus logs and manifest.json) vs a loop of `fput_object` calls.

Both run in this process. The table (MB/s = 10^6 bytes per second, median of the rounds, and the
ratio stager / baseline; the goal is >= 0.9) is printed and written to docs/benchmarks.md under
"## Staging throughput", leaving other sections alone. This is a measurement, never a test.

    .venv/bin/python bench/staging.py [--rounds 3] [--big-mib 1024] [--small 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "operator"))

from minio import Minio  # noqa: E402
from minio.deleteobjects import DeleteObject  # noqa: E402
from tests.minio_server import MinioServer  # noqa: E402

from ferry.api.job import JobInput  # noqa: E402
from ferry.stager import settings as stager_settings  # noqa: E402
from ferry.stager.archive import Archiver, parse_plan  # noqa: E402
from ferry.stager.inputs import Stager  # noqa: E402
from ferry.stager.store import client_from_env  # noqa: E402

DOC = ROOT / "docs" / "benchmarks.md"
HEADING = "## Staging throughput"
BUCKET = "bench"


@dataclass
class DataSet:
    name: str
    files: int
    size: int
    source: Path  # local dir with the files (archive source)
    key_prefix: str  # where the same files live in the bucket (stage-in source)

    @property
    def total(self) -> int:
        return self.files * self.size


@dataclass
class Row:
    data: str
    direction: str
    stager: list[float]
    baseline: list[float]


def _write_files(directory: Path, files: int, size: int) -> None:
    directory.mkdir(parents=True)
    block = os.urandom(min(size, 64 * 1024 * 1024))
    for i in range(files):
        path = directory / (f"f{i:05d}.dat" if files > 1 else "big.bin")
        with open(path, "wb") as out:
            left = size
            while left:
                chunk = block[: min(left, len(block))]
                # Vary every chunk so nothing deduplicates or compresses.
                out.write(os.urandom(16) + chunk[16:] if len(chunk) > 16 else chunk)
                left -= len(chunk)


def _clear(mc: Minio, prefix: str) -> None:
    objects = [DeleteObject(o.object_name) for o in mc.list_objects(BUCKET, prefix, recursive=True)]
    for error in mc.remove_objects(BUCKET, objects):
        raise RuntimeError(f"cannot delete {error}")


def _timed(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _drop_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def sha256_rate(mib: int = 512) -> float:
    """MB/s of SHA-256 alone on this machine right now: the ceiling of any hashing stage-in."""
    import hashlib

    block = os.urandom(4 * 1024 * 1024)
    digest = hashlib.sha256()
    start = time.perf_counter()
    for _ in range(mib // 4):
        digest.update(block)
    return mib * 1024 * 1024 / (time.perf_counter() - start) / 1e6


def run(rounds: int, big_mib: int, small: int, small_kib: int) -> list[Row]:
    tmp = Path(tempfile.mkdtemp(prefix="ferry-bench-staging-", dir="/tmp"))
    server = MinioServer(tmp / "minio", tmp / "minio.log")
    try:
        server.start()
        os.environ.update(
            FERRY_S3_ENDPOINT=server.endpoint,
            FERRY_S3_REGION="us-east-1",
            FERRY_S3_ACCESS_KEY=server.access_key,
            FERRY_S3_SECRET_KEY=server.secret_key,
            FERRY_TERMINATION_LOG=str(tmp / "termination"),
        )
        mc = Minio(
            server.endpoint.removeprefix("http://"),
            server.access_key,
            server.secret_key,
            secure=False,
        )
        mc.make_bucket(BUCKET)
        sets = [
            DataSet(f"1 x {big_mib} MiB", 1, big_mib * 1024 * 1024, tmp / "src-big", "in/big/"),
            DataSet(
                f"{small:,} x {small_kib} KiB",
                small,
                small_kib * 1024,
                tmp / "src-small",
                "in/small/",
            ),
        ]
        for ds in sets:
            print(f"writing {ds.name} to {ds.source} …", flush=True)
            _write_files(ds.source, ds.files, ds.size)
            for path in sorted(ds.source.iterdir()):
                mc.fput_object(BUCKET, ds.key_prefix + path.name, str(path))
        base = stager_settings.load()
        rows: list[Row] = []
        for ds in sets:
            rows.append(_stage_in(ds, mc, base, tmp, rounds))
            rows.append(_archive(ds, mc, base, tmp, rounds))
        return rows
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def _stage_in(
    ds: DataSet, mc: Minio, base: stager_settings.Settings, tmp: Path, rounds: int
) -> Row:
    if ds.files == 1:
        source = {"s3": {"bucket": BUCKET, "key": ds.key_prefix + "big.bin"}}
    else:
        source = {"s3": {"bucket": BUCKET, "prefix": ds.key_prefix}}
    item = JobInput.model_validate({"name": "data", "source": source})
    settings = replace(base, inputs_dir=tmp / "stage" / "inputs", logs_dir=tmp / "stage" / "logs")
    out = tmp / "baseline-in"

    def stager() -> None:
        Stager(item, settings).run()

    def baseline() -> None:
        for obj in mc.list_objects(BUCKET, ds.key_prefix, recursive=True):
            name = str(obj.object_name)
            mc.fget_object(BUCKET, name, str(out / name[len(ds.key_prefix) :]))

    return _compare(ds, "stage-in (s3 → dir)", stager, baseline, rounds, [tmp / "stage", out])


def _archive(ds: DataSet, mc: Minio, base: stager_settings.Settings, tmp: Path, rounds: int) -> Row:
    workspace = tmp / "ws"
    _drop_dir(workspace)
    (workspace / "logs").mkdir(parents=True)
    # work/ is the data set itself (a real directory: moved in for the run, back after).
    ds.source.rename(workspace / "work")
    settings = replace(base, workspace=workspace)
    counter = {"n": 0}

    def stager() -> None:
        counter["n"] += 1
        plan = parse_plan(
            json.dumps(
                {"destination": f"s3://{BUCKET}/out/stager-{counter['n']}/", "include": ["**"]}
            )
        )
        Archiver(plan, client_from_env(), settings).run()

    def baseline() -> None:
        counter["n"] += 1
        for path in sorted((workspace / "work").iterdir()):
            mc.fput_object(BUCKET, f"out/baseline-{counter['n']}/{path.name}", str(path))

    try:
        return _compare(
            ds, "archive (dir → s3)", stager, baseline, rounds, [], after=lambda: _clear(mc, "out/")
        )
    finally:
        (workspace / "work").rename(ds.source)


def _compare(
    ds: DataSet,
    direction: str,
    stager: Callable[[], None],
    baseline: Callable[[], None],
    rounds: int,
    scratch: list[Path],
    after: Callable[[], None] | None = None,
) -> Row:
    row = Row(ds.name, direction, [], [])
    for r in range(rounds):
        order = [("stager", stager), ("baseline", baseline)]
        if r % 2:
            order.reverse()
        for label, fn in order:
            for d in scratch:
                _drop_dir(d)
            os.sync()  # start each run with no dirty pages left by the previous one
            seconds = _timed(fn)
            speed = ds.total / seconds / 1e6
            (row.stager if label == "stager" else row.baseline).append(speed)
            print(
                f"  {ds.name:>16} {direction:<20} round {r + 1} {label:<8} "
                f"{seconds:7.2f} s {speed:8.1f} MB/s",
                flush=True,
            )
            if after is not None:
                after()
    for d in scratch:
        _drop_dir(d)
    return row


def table(rows: list[Row], rounds: int) -> str:
    lines = [
        "| data | direction | stager MB/s | baseline MB/s | ratio stager/baseline |",
        "|---|---|---:|---:|---:|",
    ]
    for row in rows:
        s = statistics.median(row.stager)
        b = statistics.median(row.baseline)
        lines.append(f"| {row.data} | {row.direction} | {s:.1f} | {b:.1f} | **{s / b:.2f}** |")
    return "\n".join(lines)


def section(rows: list[Row], rounds: int, hash_rate: float, load: str) -> str:
    cpu = os.cpu_count()
    when = datetime.now(UTC).strftime("%Y-%m-%d")
    wrap = textwrap.fill
    return "\n".join(
        [
            HEADING,
            "",
            wrap(
                "`bench/staging.py` against a local MinIO server of its own (127.0.0.1, one drive "
                "on the same disk), the stager's own code paths (`Stager` for stage-in, `Archiver` "
                "for archive, in-process) side by side with a plain loop over the minio client's "
                "`fget_object` / `fput_object`; alternating, order swapped each round, "
                f"{rounds} rounds, medians. MB/s = 10^6 bytes/s. Goal: ratio >= 0.9. The stager "
                "also hashes every byte (SHA-256) and writes its records and manifest; the "
                "baseline does neither.",
                width=95,
            ),
            "",
            table(rows, rounds),
            "",
            wrap(
                f"Measured {when} on {platform.machine()}, {cpu} CPUs, Python "
                f"{platform.python_version()}; MinIO and the benchmark share the machine "
                f"(load average during the run: {load}). SHA-256 alone ran at "
                f"{hash_rate:.0f} MB/s on it, which bounds any stage-in that hashes what it "
                "writes. Rerun: `.venv/bin/python bench/staging.py`.",
                width=95,
            ),
            "",
            "Per-round numbers (MB/s, stager / baseline):",
            "",
            *[
                f"- {r.data}, {r.direction}: "
                + ", ".join(f"{s:.0f} / {b:.0f}" for s, b in zip(r.stager, r.baseline, strict=True))
                for r in rows
            ],
            "",
        ]
    )


def write_doc(text: str) -> None:
    existing = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    lines = existing.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == HEADING), None)
    if start is None:
        body = existing.rstrip("\n") + "\n\n" + text
    else:
        end = next(
            (i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines)
        )
        before = "\n".join(lines[:start]).rstrip("\n")
        after = "\n".join(lines[end:])
        body = before + "\n\n" + text + ("\n" + after if after else "")
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(body.rstrip("\n") + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--big-mib", type=int, default=1024)
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--small-kib", type=int, default=100)
    parser.add_argument("--no-doc", action="store_true", help="print only")
    args = parser.parse_args()
    hash_rate = sha256_rate()
    rows = run(args.rounds, args.big_mib, args.small, args.small_kib)
    hash_rate = min(hash_rate, sha256_rate())
    load = " / ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(f"sha256 alone: {hash_rate:.0f} MB/s; load average {load}")
    text = section(rows, args.rounds, hash_rate, load)
    print()
    print(table(rows, args.rounds))
    if not args.no_doc:
        write_doc(text)
        print(f"\nwritten to {DOC.relative_to(ROOT)} under {HEADING!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
