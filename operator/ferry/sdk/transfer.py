"""Moving bytes between the user's machine and the store: local inputs up, archived outputs
down.

Owns: where uploaded inputs go (`<bucket>/<upload prefix><namespace>/<job>/<token>/<input>/…`,
a token per submission so a retried submit never overwrites another Job's inputs) and the
source that points a Job at them; reading an attempt's manifest; downloads that skip files
already present with the right hash, resume `.part` files with a range read, verify every
sha256 and size, and refuse paths that would escape the destination. Must not: talk to the
apiserver.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ferry.api import names
from ferry.clients.userstore import UserStore
from ferry.sdk import query
from ferry.sdk.errors import IntegrityError, NotFoundError
from ferry.sdk.outputs import (
    OutputFile,
    Outputs,
    attempt_uri,
    parse_manifest,
    select,
    split_uri,
    target,
)
from ferry.sdk.progress import Progress, resolve
from ferry.sdk.settings import StoreSettings
from ferry.sdk.sources import LocalInput, local_files

Obj = dict[str, Any]
HASH_CHUNK = 1024 * 1024


def _source(settings: StoreSettings, key: str, prefix: bool) -> dict[str, Any]:
    s3: dict[str, Any] = {"bucket": settings.bucket, ("prefix" if prefix else "key"): key}
    if settings.input_endpoint:
        s3["endpoint"] = settings.input_endpoint
    if settings.input_secret:
        s3["secretRef"] = {"name": settings.input_secret}
    return {"s3": s3}


def upload_base(settings: StoreSettings, namespace: str, job: str) -> str:
    """Where one submission's local inputs go (a fresh token each time)."""
    return f"{settings.upload_prefix}{namespace}/{job}/{query.token(8)}/"


def upload_inputs(
    store: UserStore,
    settings: StoreSettings,
    namespace: str,
    job: str,
    inputs: Sequence[LocalInput],
    progress: bool | Progress = False,
    base: str | None = None,
) -> dict[str, dict[str, Any]]:
    """Upload each local input below `base` (see upload_base); its s3 source by input name
    (a prefix for a directory)."""
    base = base or upload_base(settings, namespace, job)
    bar = resolve(progress)
    out: dict[str, dict[str, Any]] = {}
    try:
        for item in inputs:
            if item.is_dir:
                prefix = f"{base}{item.name}/"
                files = local_files(item.path)
                if not files:
                    raise NotFoundError(f"input {item.name}: {item.path} has no files to upload")
                for rel, path in files:
                    advance = bar.task(f"{item.name}/{rel}", path.stat().st_size)
                    store.upload_file(settings.bucket, prefix + rel, path, advance)
                out[item.name] = _source(settings, prefix, prefix=True)
            else:
                key = f"{base}{item.name}/{item.path.name}"
                advance = bar.task(item.path.name, item.path.stat().st_size)
                store.upload_file(settings.bucket, key, item.path, advance)
                out[item.name] = _source(settings, key, prefix=False)
    finally:
        bar.close()
    return out


def outputs(store: UserStore, job: Obj, attempt: int | None = None) -> Outputs:
    """The manifest of the Job's archived attempt (the last one, or `attempt`)."""
    name = job["metadata"]["name"]
    status = job.get("status") or {}
    archived = status.get("outputs") or {}
    uri = archived.get("uri")
    if not uri:
        state = status.get("state") or "Pending"
        raise NotFoundError(f"Job {name} has no archived outputs (it is {state})")
    if attempt is not None:
        uri = attempt_uri(uri, attempt)
    bucket, prefix = split_uri(uri)
    data = store.get_bytes(bucket, prefix + names.ARCHIVE_MANIFEST)
    return parse_manifest(data, uri)


@dataclass
class DownloadResult:
    """What a download did: the files now in place (verified), and how they got there."""

    dest: Path
    files: list[Path] = field(default_factory=list)
    downloaded_bytes: int = 0
    already_present: int = 0
    resumed: int = 0


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _matches(path: Path, entry: OutputFile) -> bool:
    try:
        return path.stat().st_size == entry.bytes and sha256_of(path) == entry.sha256
    except OSError:
        return False


def download(
    store: UserStore,
    outs: Outputs,
    dest: Path,
    patterns: Sequence[str],
    progress: bool | Progress = False,
) -> DownloadResult:
    chosen = select(outs.files, patterns)
    if patterns and not chosen:
        raise NotFoundError(f"no archived file matches {', '.join(patterns)}")
    dest.mkdir(parents=True, exist_ok=True)
    # Every path is checked before anything is written.
    targets = [(entry, target(dest, entry.path)) for entry in chosen]
    result = DownloadResult(dest)
    bar = resolve(progress)
    try:
        for entry, path in targets:
            _one(store, outs, entry, path, bar, result)
            result.files.append(path)
    finally:
        bar.close()
    return result


def _one(
    store: UserStore,
    outs: Outputs,
    entry: OutputFile,
    path: Path,
    bar: Progress,
    result: DownloadResult,
) -> None:
    if path.is_file() and not path.is_symlink() and _matches(path, entry):
        result.already_present += 1
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    if part.is_symlink():
        part.unlink()
    for fresh in (False, True):
        offset = part.stat().st_size if part.exists() and not fresh else 0
        if fresh or offset > entry.bytes:
            part.unlink(missing_ok=True)
            offset = 0
        if offset:
            result.resumed += 1
        advance = bar.task(entry.path, entry.bytes)
        advance(offset)
        part.touch()
        if offset < entry.bytes:
            result.downloaded_bytes += store.append_object(
                outs.bucket, outs.prefix + entry.key, part, offset, advance
            )
        size = part.stat().st_size
        got = sha256_of(part)
        if size == entry.bytes and got == entry.sha256:
            os.replace(part, path)
            return
        if offset == 0:
            part.unlink(missing_ok=True)
            raise IntegrityError(
                f"{entry.path}: the store's copy does not match the manifest (sha256 {got[:16]}… "
                f"and {size} bytes, manifest says {entry.sha256[:16]}… and {entry.bytes} bytes); "
                "nothing was kept"
            )
        # A resumed file may have been damaged locally: start it over once.
