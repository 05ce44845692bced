"""An attempt's archive as the user sees it: the manifest as a typed listing, which files a
download selects, and where each may be written.

Owns: reading manifest.json (ferry.stager.manifest writes it; outputs are stored below
`outputs/`, the log at `logs/app.log`), s3:// URIs, glob selection of outputs (the stager's
glob meaning), and path safety: a manifest path that is absolute, has `..`, a backslash or a
NUL, or that resolves outside the destination (through a symlink already there) is refused.
Must not: do network I/O.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ferry.api import names
from ferry.sdk.errors import IntegrityError, NotFoundError
from ferry.stager import globs
from ferry.stager.workspace import inside


@dataclass(frozen=True)
class OutputFile:
    """One archived file: its path relative to the app's working directory, the object key
    below the attempt's URI, its size and sha256."""

    path: str
    key: str
    bytes: int
    sha256: str


@dataclass(frozen=True)
class Outputs:
    """What one attempt archived (its manifest), as a listing."""

    uri: str
    bucket: str
    prefix: str
    files: list[OutputFile]
    log: OutputFile | None
    outcome: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    manifest: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def total_bytes(self) -> int:
        return sum(f.bytes for f in self.files)


def split_uri(uri: str) -> tuple[str, str]:
    """s3://bucket/some/prefix/ → ("bucket", "some/prefix/")."""
    if not uri.startswith("s3://"):
        raise NotFoundError(f"{uri!r} is not an s3:// URI")
    bucket, _, prefix = uri[len("s3://") :].partition("/")
    if not bucket:
        raise NotFoundError(f"{uri!r} names no bucket")
    return bucket, prefix


def attempt_uri(uri: str, attempt: int) -> str:
    """The archive URI of another attempt of the same Job (…/attempt-<n>/)."""
    base = uri.rstrip("/")
    head, sep, tail = base.rpartition("/attempt-")
    if not sep or not tail.isdigit():
        raise NotFoundError(f"{uri!r} is not an attempt's archive URI")
    return f"{head}/attempt-{attempt}/"


def _entry(raw: Any) -> OutputFile:
    if not isinstance(raw, dict):
        raise IntegrityError("manifest.json: a file entry is not an object")
    try:
        return OutputFile(
            path=str(raw["path"]),
            key=str(raw["key"]),
            bytes=int(raw["bytes"]),
            sha256=str(raw["sha256"]).lower(),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise IntegrityError(f"manifest.json: malformed file entry ({exc})") from None


def parse_manifest(data: bytes, uri: str) -> Outputs:
    try:
        manifest = json.loads(data)
    except ValueError as exc:
        raise IntegrityError(f"{uri}{names.ARCHIVE_MANIFEST} is not JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("kind") != "ArchiveManifest":
        raise IntegrityError(f"{uri}{names.ARCHIVE_MANIFEST} is not an ArchiveManifest")
    bucket, prefix = split_uri(uri)
    log = manifest.get("log")
    return Outputs(
        uri=uri,
        bucket=bucket,
        prefix=prefix,
        files=[_entry(f) for f in manifest.get("files") or []],
        log=_entry(log) if log else None,
        outcome=str(manifest.get("outcome") or ""),
        parameters=dict(manifest.get("parameters") or {}),
        manifest=manifest,
    )


def select(files: Sequence[OutputFile], patterns: Sequence[str] | None) -> list[OutputFile]:
    """The files matching any of the globs (all when none are given)."""
    if not patterns:
        return list(files)
    return [f for f in files if globs.selected(f.path, patterns, ())]


def check_relative(path: str) -> None:
    """Refuse a manifest path that could name something outside a destination directory."""
    parts = path.split("/")
    if (
        not path
        or path.startswith("/")
        or "\\" in path
        or "\x00" in path
        or any(p in ("", ".", "..") for p in parts)
    ):
        raise IntegrityError(f"refusing to write {path!r}: it would escape the destination")


def target(dest: Path, path: str) -> Path:
    """Where `path` goes below `dest`, checked to stay inside it (also through symlinks that
    already exist in `dest`)."""
    check_relative(path)
    full = dest.joinpath(*path.split("/"))
    root_real = os.path.realpath(dest)
    if not inside(root_real, os.path.realpath(full)) or os.path.realpath(full) == root_real:
        raise IntegrityError(f"refusing to write {path!r}: it resolves outside {dest}")
    return full
