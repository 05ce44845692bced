"""The archive's manifest.json and the staging records it folds in.

Owns: the manifest's shape (below) and reading the staging records (records/inputs/*.json,
where the app cannot write) safely.
The content depends only on the workspace and the plan, except `createdAt`, so archiving the
same attempt twice yields the same manifest but for that timestamp. Must not: upload anything.

    {"apiVersion": "ferry.dev/v1alpha1", "kind": "ArchiveManifest",
     "tool": {"name": "ferry.stager", "version": "0.1.0"}, "createdAt": "…Z",
     "destination": "s3://…/attempt-1/",
     "job": {…}, "app": {…}, "parameters": {…}, "outcome": "Succeeded",
     "run": {"attempt": 1, "podName": …, "nodeName": …, "image": …, "imageId": "…@sha256:…",
             "startTime": …, "endTime": …, "exitCode": 0, "outcome": "Succeeded"},
     "include": […], "exclude": […],
     "files": [{"path": "results/a.txt", "key": "outputs/results/a.txt", "bytes": 1,
                "sha256": "…"}],                          # relative to work/, sorted
     "log": {"path": "logs/app.log", "key": "logs/app.log", "bytes": …, "sha256": …} | null,
     "skipped": [{"path": "x", "reason": "symlink points outside the workspace"}],
     "inputs": [<each staging record: name, kind, source, files, bytes>],
     "totals": {"files": N, "bytes": B}}                  # outputs + log, not the manifest
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ferry import __version__
from ferry.api.common import API_VERSION
from ferry.stager.workspace import Skipped, UnsafePathError, open_inside

MAX_RECORD_BYTES = 1024 * 1024
TOOL = "ferry.stager"
#: Keys of the plan's `extra` copied to the top level of the manifest.
EXTRA_KEYS = ("job", "app", "parameters", "outcome", "run")


@dataclass(frozen=True)
class Archived:
    """One uploaded object: its path (relative to work/, or logs/app.log) and key suffix."""

    path: str
    key: str
    bytes: int
    sha256: str

    def wire(self) -> dict[str, Any]:
        return {"path": self.path, "key": self.key, "bytes": self.bytes, "sha256": self.sha256}


def read_input_records(records_dir: Path) -> list[dict[str, Any]]:
    """The staging records in records_dir/inputs/*.json, by name; unreadable ones are noted."""
    directory = records_dir / "inputs"
    out: list[dict[str, Any]] = []
    try:
        names = sorted(n for n in os.listdir(directory) if n.endswith(".json"))
    except OSError:
        return out
    for name in names:
        stem = name[: -len(".json")]
        try:
            fd = open_inside(records_dir, directory / name)
        except (OSError, UnsafePathError):
            out.append({"name": stem, "error": "unreadable staging record"})
            continue
        with os.fdopen(fd, "rb") as fh:
            raw = fh.read(MAX_RECORD_BYTES + 1)
        try:
            record = json.loads(raw) if len(raw) <= MAX_RECORD_BYTES else None
        except ValueError:
            record = None
        if isinstance(record, dict):
            out.append(record)
        else:
            out.append({"name": stem, "error": "invalid staging record"})
    return out


def build(
    *,
    destination: str,
    include: Sequence[str],
    exclude: Sequence[str],
    extra: Mapping[str, Any],
    files: Sequence[Archived],
    log: Archived | None,
    skipped: Sequence[Skipped],
    inputs: Sequence[Mapping[str, Any]],
    now: datetime | None = None,
) -> dict[str, Any]:
    created = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    ordered = sorted(files, key=lambda f: f.path)
    everything = [*ordered, *([log] if log else [])]
    manifest: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": "ArchiveManifest",
        "tool": {"name": TOOL, "version": __version__},
        "createdAt": created,
        "destination": destination,
    }
    for key in EXTRA_KEYS:
        if key in extra:
            manifest[key] = extra[key]
    others = {k: v for k, v in extra.items() if k not in EXTRA_KEYS}
    if others:
        manifest["extra"] = others
    manifest.update(
        {
            "include": list(include),
            "exclude": list(exclude),
            "files": [f.wire() for f in ordered],
            "log": log.wire() if log else None,
            "skipped": [{"path": s.path, "reason": s.reason} for s in skipped],
            "inputs": sorted(inputs, key=lambda r: str(r.get("name", ""))),
            "totals": {"files": len(everything), "bytes": sum(f.bytes for f in everything)},
        }
    )
    return manifest


def encode(manifest: Mapping[str, Any]) -> bytes:
    return (json.dumps(manifest, indent=2, sort_keys=False, ensure_ascii=False) + "\n").encode()
