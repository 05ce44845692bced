"""`archive`: upload an attempt's outputs, its log and the manifest from the workspace.

Owns: the archive plan (FERRY_ARCHIVE, built by decisions.builders.archive_pod), the object
layout under the destination, parallel uploads with per-object retries, and the summary the
operator reads from the termination message. Layout under `s3://bucket/…/attempt-N/`:

    outputs/<path>     each selected file of work/ (path relative to work/)
    logs/app.log       the app's stdout/stderr, when present
    manifest.json      written last, only after everything else is stored

Outputs live under `outputs/` so that no file the app writes (say work/manifest.json) can
collide with the log or the manifest. Every upload goes through the same keys, so archiving an
attempt again overwrites the same objects and rewrites the same manifest (but its timestamp).
Upload buffers are bounded (FERRY_ARCHIVE_MEMORY_MIB): large files are multipart uploads whose
parts are held in memory, and the archive container's memory limit is 512Mi.
Must not: follow a symlink or `..` out of work/ (see workspace.py), or modify the workspace.
"""

from __future__ import annotations

import json
import mimetypes
import os
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ferry.api import names
from ferry.clients.s3 import PART_PARALLEL, S3Client, StoreError, part_size
from ferry.stager import manifest
from ferry.stager.errors import StagerError
from ferry.stager.settings import Settings
from ferry.stager.store import failure, with_retries
from ferry.stager.workspace import Skipped, UnsafePathError, open_inside, select

OUTPUTS = names.ARCHIVE_OUTPUTS
LOG_PATH = names.ARCHIVE_LOG
MANIFEST = names.ARCHIVE_MANIFEST


@dataclass(frozen=True)
class Plan:
    destination: str
    bucket: str
    prefix: str
    include: tuple[str, ...]
    exclude: tuple[str, ...]
    extra: Mapping[str, Any]


def _strings(value: Any, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise StagerError(f"FERRY_ARCHIVE: {what} must be a list of strings")
    return tuple(value)


def parse_plan(text: str | None) -> Plan:
    if not text:
        raise StagerError("FERRY_ARCHIVE is not set: nothing says where to archive")
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise StagerError(f"FERRY_ARCHIVE is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise StagerError("FERRY_ARCHIVE must be a JSON object")
    destination = data.get("destination")
    if not isinstance(destination, str) or not destination.startswith("s3://"):
        raise StagerError(f"FERRY_ARCHIVE: destination {destination!r} is not an s3:// URI")
    bucket, _, prefix = destination[len("s3://") :].partition("/")
    if not bucket:
        raise StagerError(f"FERRY_ARCHIVE: destination {destination!r} has no bucket")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
        destination += "/"
    if any(p in (".", "..") for p in prefix.split("/")):
        raise StagerError(f"FERRY_ARCHIVE: destination {destination!r} has . or .. segments")
    extra = data.get("extra") or {}
    if not isinstance(extra, dict):
        raise StagerError("FERRY_ARCHIVE: extra must be an object")
    return Plan(
        destination=destination,
        bucket=bucket,
        prefix=prefix,
        include=_strings(data.get("include"), "include"),
        exclude=_strings(data.get("exclude"), "exclude"),
        extra=extra,
    )


class MemoryBudget:
    """A weighted semaphore over upload buffer bytes; a request larger than the whole budget
    waits for the budget to be entirely free."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.free = total
        self.cond = threading.Condition()

    def weight(self, size: int) -> int:
        # A single-part upload holds the whole file; a multipart one up to PART_PARALLEL parts
        # in flight plus the one being read.
        part = part_size(size)
        held = size if size <= part else part * (PART_PARALLEL + 1)
        return max(1, min(self.total, held))

    @contextmanager
    def hold(self, size: int) -> Iterator[None]:
        need = self.weight(size)
        with self.cond:
            self.cond.wait_for(lambda: self.free >= need)
            self.free -= need
        try:
            yield
        finally:
            with self.cond:
                self.free += need
                self.cond.notify_all()


class _AbortedError(Exception):
    pass


def _content_type(path: str) -> str:
    if path.endswith(".log"):
        return "text/plain; charset=utf-8"
    return mimetypes.guess_type(path)[0] or "application/octet-stream"


class Archiver:
    """One archive run: a plan, a workspace, a client and the limits from Settings."""

    def __init__(self, plan: Plan, client: S3Client, settings: Settings) -> None:
        self.plan = plan
        self.client = client
        self.settings = settings
        self.work = settings.workspace / "work"
        self.logs = settings.workspace / names.WORKSPACE_LOGS
        self.records = settings.workspace / names.WORKSPACE_RECORDS
        self.budget = MemoryBudget(settings.memory_bytes)
        self.abort = threading.Event()

    def _retrying(self, key: str, fn: Any) -> Any:
        def once() -> Any:
            if self.abort.is_set():
                raise _AbortedError
            return fn()

        try:
            return with_retries(
                once,
                retries=self.settings.retries,
                backoff=self.settings.backoff_seconds,
                sleep=lambda d: (self.abort.wait(d), None)[1],
            )
        except StoreError as exc:
            raise failure(exc, f"archive: {exc}") from None

    def _upload(self, root: Path, path: str, source: Path, size: int, key: str) -> Any:
        """Upload one file; its manifest entry, or Skipped if it turned unsafe meanwhile."""

        def put() -> manifest.Archived | Skipped:
            try:
                fd = open_inside(root, source)
            except UnsafePathError as exc:
                return Skipped(path, f"unsafe at upload time ({exc})")
            except OSError as exc:
                return Skipped(path, f"unreadable ({exc.strerror})")
            with os.fdopen(fd, "rb") as stream:
                length = os.fstat(stream.fileno()).st_size
                got = self.client.put_stream(
                    self.plan.bucket, self.plan.prefix + key, stream, length, _content_type(path)
                )
            return manifest.Archived(path, key, got.bytes, got.sha256)

        with self.budget.hold(size):
            return self._retrying(key, put)

    def run(self) -> dict[str, Any]:
        plan = self.plan
        selection = select(self.work, plan.include, plan.exclude)
        log_file = self.logs / names.APP_LOG
        has_log = os.path.lexists(log_file)
        workers = max(1, self.settings.archive_parallel)
        files: list[manifest.Archived] = []
        skipped: list[Skipped] = list(selection.skipped)
        log: manifest.Archived | None = None
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="archive") as pool:
            futures: list[Future[Any]] = [
                pool.submit(self._upload, self.work, e.path, e.source, e.size, OUTPUTS + e.path)
                for e in selection.files
            ]
            log_future: Future[Any] | None = None
            if has_log:
                size = log_file.lstat().st_size
                log_future = pool.submit(
                    self._upload, self.settings.workspace, LOG_PATH, log_file, size, LOG_PATH
                )
            everything = [*futures, *([log_future] if log_future else [])]
            wait(everything, return_when=FIRST_EXCEPTION)
            failed = next((f for f in everything if f.done() and f.exception()), None)
            if failed is not None:
                self.abort.set()
                pool.shutdown(wait=True, cancel_futures=True)
                error = failed.exception()
                if isinstance(error, StagerError):
                    raise error
                raise StagerError(f"archive: {error}")
            for fut in futures:
                result = fut.result()
                if isinstance(result, Skipped):
                    skipped.append(result)
                else:
                    files.append(result)
            if log_future is not None:
                result = log_future.result()
                if isinstance(result, Skipped):
                    skipped.append(Skipped(LOG_PATH, result.reason))
                else:
                    log = result
        skipped.sort(key=lambda s: s.path)
        document = manifest.build(
            destination=plan.destination,
            include=plan.include,
            exclude=plan.exclude,
            extra=plan.extra,
            files=files,
            log=log,
            skipped=skipped,
            inputs=manifest.read_input_records(self.records),
        )
        body = manifest.encode(document)
        self._retrying(
            MANIFEST,
            lambda: self.client.put_bytes(
                plan.bucket, plan.prefix + MANIFEST, body, "application/json"
            ),
        )
        totals = document["totals"]
        return {
            "uri": plan.destination,
            "files": int(totals["files"]),
            "bytes": int(totals["bytes"]),
            "manifest": plan.destination + MANIFEST,
        }
