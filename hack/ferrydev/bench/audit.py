"""The apiserver's audit log, read for the lifecycle benchmark: who wrote what, and when.

Owns: telling the benchmark's own requests, the operator's and each cluster component's
apart (by user agent: they share the admin token), marks in the log and reading from a mark
on across the apiserver's rotations, waiting for a record to be written, the first create of
a burst, and counting the writes in one namespace within a time window by component, user,
verb and resource.

Must not: start or stop anything, or judge the counts (`results` does).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})
BENCH_USER_AGENT = "ferry-bench/lifecycle"
OPERATOR_USER = "ferry-admin"  # the local cluster's admin token (ferrydev.cluster.apiserver)


def actor_of(event: dict[str, Any]) -> str:
    """Who made an audited request: by user agent, since the local cluster's components and
    the operator share the admin token."""
    ua = str(event.get("userAgent") or "")
    user = str((event.get("user") or {}).get("username") or "")
    if ua.startswith(BENCH_USER_AGENT):
        return "bench"
    if ua.startswith("kube-controller-manager") or user.startswith("system:kube-controller"):
        return "kube-controller-manager"
    if ua.startswith("kube-scheduler") or user == "system:kube-scheduler":
        return "kube-scheduler"
    if ua.lower().startswith("kwok"):
        return "kwok"
    if ua.startswith("kubectl"):
        return "kubectl"
    if user.startswith("system:serviceaccount:kube-system:"):
        return "kube-controller-manager"
    if user == OPERATOR_USER and ("kopf" in ua or "OpenAPI-Generator" in ua or "ferry" in ua):
        return "operator"
    return f"other ({user}, {ua[:40]})"


def _ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@dataclass
class AuditCounts:
    by_key: Counter[tuple[str, str, str, str]] = field(
        default_factory=Counter
    )  # actor,user,verb,resource
    failed: Counter[str] = field(default_factory=Counter)  # actor -> non-2xx responses
    failed_by_key: Counter[tuple[str, str, str, str]] = field(default_factory=Counter)
    user_agents: dict[str, str] = field(default_factory=dict)  # actor -> an example user agent

    def per_actor(self) -> Counter[str]:
        out: Counter[str] = Counter()
        for (actor, _, _, _), n in self.by_key.items():
            out[actor] += n
        return out

    def table(self) -> list[dict[str, Any]]:
        return [
            {
                "actor": a,
                "user": u,
                "verb": v,
                "resource": r,
                "count": n,
                "failed": self.failed_by_key[(a, u, v, r)],
            }
            for (a, u, v, r), n in sorted(self.by_key.items())
        ]


@dataclass(frozen=True)
class AuditMark:
    """Where the audit log stood: the file then current (its inode) and its size."""

    inode: int
    offset: int

    #: Everything there is: every rotated file and the current one, from their starts.
    @classmethod
    def beginning(cls) -> AuditMark:
        return cls(inode=-1, offset=0)


class AuditLog:
    """Reads the apiserver's JSON audit log from a mark on, across rotations: the apiserver
    (lumberjack) renames the full file to audit-<time>.log and starts a new audit.log. The
    local cluster makes rotation rare (--audit-log-maxsize), this makes it harmless."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def mark(self) -> AuditMark:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return AuditMark(inode=0, offset=0)
        return AuditMark(inode=st.st_ino, offset=st.st_size)

    def size(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0

    def flushed(self, start: AuditMark, needle: str, limit: float = 90.0) -> bool:
        """Wait until a record containing `needle` (the name of an object written after the
        window of interest) is in the log: the apiserver writes its batches in order, so every
        request before it is there too. A quiet log is not enough: a batch not yet full waits
        up to --audit-log-batch-max-wait (30 s) before it is written."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if any(True for _ in self.events(start, needle)):
                return True
            time.sleep(0.5)
        return False

    def files(self, start: AuditMark) -> list[tuple[Path, int]]:
        """The files holding what was written since `start`, oldest first, each with the
        offset to read it from."""
        rotated = sorted(self.path.parent.glob(f"{self.path.stem}-*{self.path.suffix}"))
        chain = [*rotated, self.path] if self.path.exists() else rotated
        inodes = [p.stat().st_ino for p in chain]
        if start.inode in inodes:
            at = inodes.index(start.inode)
            return [(chain[at], start.offset)] + [(p, 0) for p in chain[at + 1 :]]
        return [(p, 0) for p in chain]

    def events(self, start: AuditMark, needle: str = "") -> Iterator[dict[str, Any]]:
        """The records since `start` (only lines containing `needle`, when given)."""
        raw = needle.encode()
        for path, offset in self.files(start):
            with open(path, "rb") as f:
                f.seek(offset)
                for line in f:
                    if raw and raw not in line:
                        continue
                    with contextlib.suppress(ValueError):
                        yield json.loads(line)

    def first_create(self, namespace: str) -> float | None:
        """When the benchmark's first create in `namespace` was received (a burst's start)."""
        for ev in self.events(AuditMark.beginning(), f'"{namespace}"'):
            ref = ev.get("objectRef") or {}
            if (
                ev.get("verb") == "create"
                and ref.get("namespace") == namespace
                and ref.get("resource") == "jobs"
                and actor_of(ev) == "bench"
            ):
                return _ts(ev["requestReceivedTimestamp"])
        return None

    def writes(self, start: AuditMark, namespace: str, t0: float, t1: float) -> AuditCounts:
        counts = AuditCounts()
        for ev in self.events(start, f'"{namespace}"'):
            if ev.get("stage") != "ResponseComplete" or ev.get("verb") not in WRITE_VERBS:
                continue
            ref = ev.get("objectRef") or {}
            if ref.get("namespace") != namespace:
                continue
            t = _ts(ev["requestReceivedTimestamp"])
            if not t0 <= t <= t1:
                continue
            resource = str(ref.get("resource", ""))
            if ref.get("subresource"):
                resource += "/" + ref["subresource"]
            actor = actor_of(ev)
            user = str((ev.get("user") or {}).get("username") or "")
            counts.by_key[(actor, user, ev["verb"], resource)] += 1
            counts.user_agents.setdefault(actor, str(ev.get("userAgent") or ""))
            code = int((ev.get("responseStatus") or {}).get("code") or 0)
            if not 200 <= code < 300:
                counts.failed[actor] += 1
                counts.failed_by_key[(actor, user, ev["verb"], resource)] += 1
        return counts
