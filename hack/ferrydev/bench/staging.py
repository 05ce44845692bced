"""Staging throughput, measured: the stager's stage-in and archive against a plain
minio-client loop, on a MinIO server of the benchmark's own.

Owns: writing the data sets (one big file, many small ones; random, so nothing compresses)
under /tmp, starting a `ferrydev.minio.MinioServer` on a free loopback port, and for each data
set and direction running the stager's own code path (`ferry.stager.inputs.Stager`,
`ferry.stager.archive.Archiver`, in this process) and the baseline (`fget_object` /
`fput_object` loops) alternately, order swapped every round, returning MB/s per round.

Must not: write the report (`report.staging_section` formats it), or leave the server, the
data or the FERRY_S3_* settings' files behind (everything is under one temp dir, removed).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from minio import Minio
from minio.deleteobjects import DeleteObject

from ferry.api.job import JobInput
from ferry.stager import settings as stager_settings
from ferry.stager.archive import Archiver, parse_plan
from ferry.stager.inputs import Stager
from ferry.stager.store import client_from_env
from ferrydev.minio import MinioServer

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
    #: This process's CPU seconds per run (the transfer and the hashing; not MinIO's).
    stager_cpu: list[float] = field(default_factory=list)
    baseline_cpu: list[float] = field(default_factory=list)


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


def _cpu() -> tuple[float, float]:
    """This process's CPU seconds so far, every thread's: (all, of it in the kernel)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime, usage.ru_stime


#: On a VM with free page reporting (virtio-balloon), the KiB of freed memory the guest has
#: handed back to its host so far. Absent on other machines.
REPORTED_KIB = Path("/sys/module/page_reporting/parameters/reported_kib")


def reported_mib() -> float:
    """MiB of freed memory this VM has reported to its host so far (0 where it reports none)."""
    try:
        return int(REPORTED_KIB.read_text()) / 1024
    except (OSError, ValueError):
        return 0.0


def settle(quiet: float = 1.5, limit: float = 30.0) -> None:
    """Wait until the VM has stopped reporting freed memory to its host (quiet for `quiet` s).

    A host takes back the memory its guest reports, and a later first touch of that memory
    faults on the host: a run that writes 1 GiB of new page cache pays 1-2 s more kernel CPU
    when it lands on reported memory. Deleting the last run's 1 GiB frees that much, and
    whether the next run met it before or after the report was chance. Every timed run
    starts after the report is done, so each meets the same memory. No-op off such a VM."""
    if not REPORTED_KIB.exists():
        return
    deadline = time.monotonic() + limit
    last, since = reported_mib(), time.monotonic()
    while time.monotonic() - since < quiet and time.monotonic() < deadline:
        time.sleep(0.25)
        now = reported_mib()
        if now != last:
            last, since = now, time.monotonic()


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
            # The local MinIO is on loopback: a trusted store, as the operator's default is.
            FERRY_ALLOWED_STORE_ENDPOINTS=server.endpoint,
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
    settings = replace(
        base, inputs_dir=tmp / "stage" / "inputs", records_dir=tmp / "stage" / "records"
    )
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
        Archiver(plan, client_from_env("archive.s3.endpoint"), settings).run()

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
    # One untimed run of each first: whichever ran first in round 1 (the stager) met the
    # caches and MinIO cold, the other did not.
    for fn in (stager, baseline):
        for d in scratch:
            _drop_dir(d)
        fn()
        if after is not None:
            after()
    for r in range(rounds):
        order = [("stager", stager), ("baseline", baseline)]
        if r % 2:
            order.reverse()
        for label, fn in order:
            for d in scratch:
                _drop_dir(d)
            os.sync()  # start each run with no dirty pages left by the previous one
            settle()
            (cpu, kernel), reported = _cpu(), reported_mib()
            seconds = _timed(fn)
            end, end_kernel = _cpu()
            cpu, kernel = end - cpu, end_kernel - kernel
            reported = reported_mib() - reported
            speed = ds.total / seconds / 1e6
            (row.stager if label == "stager" else row.baseline).append(speed)
            (row.stager_cpu if label == "stager" else row.baseline_cpu).append(cpu)
            print(
                f"  {ds.name:>16} {direction:<20} round {r + 1} {label:<8} "
                f"{seconds:7.2f} s {speed:8.1f} MB/s {cpu:6.2f} s CPU ({kernel:5.2f} kernel) "
                f"{reported:5.0f} MiB reported to the host during the run",
                flush=True,
            )
            if after is not None:
                after()
    for d in scratch:
        _drop_dir(d)
    return row
