"""Where the stager reads and writes, and its limits: all from the environment.

Owns: the container paths (overridable so tests can point them into a temp dir) and the
numeric knobs, each with its default and bounds. Must not: do any I/O besides reading os.environ.

| variable | default | what |
|---|---|---|
| FERRY_INPUTS_DIR | /ferry/inputs | where inputs are staged (`<dir>/<name>`) |
| FERRY_RECORDS_DIR | /ferry/records | staging records, `<dir>/inputs/<name>.json` (not in app) |
| FERRY_SOURCE_DIR | /ferry/source | pvc and configMap volumes (`<dir>/<name>`) |
| FERRY_WORKSPACE | /ferry/workspace | the workspace PVC (work/, inputs/, logs/, records/) |
| FERRY_TERMINATION_LOG | /dev/termination-log | the pod's termination message |
| FERRY_LAUNCHER | /usr/local/bin/ferry-launch | the launcher `setup` copies |
| FERRY_HTTP_MAX_BYTES | 10 GiB | largest HTTP input |
| FERRY_HTTP_CONNECT_TIMEOUT / FERRY_HTTP_READ_TIMEOUT | 10 / 60 s | per connect / per read |
| FERRY_HTTP_ALLOW_CIDRS | (empty) | TESTS ONLY: CIDRs exempt from the HTTP address checks |
| FERRY_ALLOWED_STORE_ENDPOINTS | (empty) | trusted S3 endpoints (set by the operator; store.py) |
| FERRY_STAGE_PARALLEL | 8 | objects of an s3 prefix fetched at once |
| FERRY_ARCHIVE_PARALLEL | 8 | objects uploaded at once |
| FERRY_ARCHIVE_RETRIES | 5 | archive: retries per object after a transient store error |
| FERRY_STAGE_RETRIES | 3 | stage-in: retries per object after a transient store error |
| FERRY_RETRY_BACKOFF_SECONDS | 1.0 | first retry delay; doubles each time, capped at 30 s |
| FERRY_ARCHIVE_MEMORY_MIB | 256 | upload buffers held at once (the container's limit is 512Mi) |
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from ferry.stager.errors import StagerError

GIB = 1024**3
MIB = 1024**2

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _path(name: str, default: str) -> Path:
    return Path(os.environ.get(name) or default)


def _number(name: str, default: float, low: float, high: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise StagerError(f"{name}={raw!r} is not a number") from None
    if not low <= value <= high:
        raise StagerError(f"{name}={raw} is out of range [{low:g}, {high:g}]")
    return value


def _integer(name: str, default: int, low: int, high: int) -> int:
    value = _number(name, default, low, high)
    if value != int(value):
        raise StagerError(f"{name}={value:g} is not a whole number")
    return int(value)


def allow_cidrs() -> tuple[IPNetwork, ...]:
    """FERRY_HTTP_ALLOW_CIDRS: only so tests can serve inputs from 127.0.0.1; never set it in
    a real deployment (it re-opens the addresses the checks close)."""
    raw = os.environ.get("FERRY_HTTP_ALLOW_CIDRS", "")
    out: list[IPNetwork] = []
    for part in raw.split(","):
        text = part.strip()
        if not text:
            continue
        try:
            out.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise StagerError(f"FERRY_HTTP_ALLOW_CIDRS: {text!r} is not a CIDR") from None
    return tuple(out)


@dataclass(frozen=True)
class HttpLimits:
    max_bytes: int
    connect_timeout: float
    read_timeout: float
    allow: tuple[IPNetwork, ...]


@dataclass(frozen=True)
class Settings:
    inputs_dir: Path
    records_dir: Path
    source_dir: Path
    workspace: Path
    termination_log: Path
    launcher: Path
    http: HttpLimits
    stage_parallel: int
    archive_parallel: int
    retries: int
    stage_retries: int
    backoff_seconds: float
    memory_bytes: int


def termination_log() -> Path:
    return _path("FERRY_TERMINATION_LOG", "/dev/termination-log")


def load() -> Settings:
    return Settings(
        inputs_dir=_path("FERRY_INPUTS_DIR", "/ferry/inputs"),
        records_dir=_path("FERRY_RECORDS_DIR", "/ferry/records"),
        source_dir=_path("FERRY_SOURCE_DIR", "/ferry/source"),
        workspace=_path("FERRY_WORKSPACE", "/ferry/workspace"),
        termination_log=termination_log(),
        launcher=_path("FERRY_LAUNCHER", "/usr/local/bin/ferry-launch"),
        http=HttpLimits(
            max_bytes=_integer("FERRY_HTTP_MAX_BYTES", 10 * GIB, 0, 2**62),
            connect_timeout=_number("FERRY_HTTP_CONNECT_TIMEOUT", 10.0, 0.1, 600),
            read_timeout=_number("FERRY_HTTP_READ_TIMEOUT", 60.0, 0.1, 3600),
            allow=allow_cidrs(),
        ),
        stage_parallel=_integer("FERRY_STAGE_PARALLEL", 8, 1, 64),
        archive_parallel=_integer("FERRY_ARCHIVE_PARALLEL", 8, 1, 64),
        retries=_integer("FERRY_ARCHIVE_RETRIES", 5, 0, 20),
        stage_retries=_integer("FERRY_STAGE_RETRIES", 3, 0, 20),
        backoff_seconds=_number("FERRY_RETRY_BACKOFF_SECONDS", 1.0, 0.0, 60),
        memory_bytes=_integer("FERRY_ARCHIVE_MEMORY_MIB", 256, 16, 65536) * MIB,
    )
