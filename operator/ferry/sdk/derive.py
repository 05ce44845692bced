"""Objects the SDK derives from what the apiserver returned: a rerun's Job body, and the
Events that concern a Job.

Owns: what a rerun copies (spec but suspend/cancel, the user's labels and annotations, never
`ferry.dev/`, `kubectl.kubernetes.io/` or managed-by keys) and how it is linked (label
`ferry.dev/rerun-of`); which Events are a Job's (its own, its pods' and PVCs', named
`<job>-<attempt>` and `<job>-<attempt>-archive-<try>`). Must not: do I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ferry.api import names
from ferry.api.common import parse_time
from ferry.sdk import query

Obj = dict[str, Any]


@dataclass(frozen=True)
class JobEvent:
    """A Kubernetes Event about the Job or one of its pods."""

    time: datetime | None
    type: str
    reason: str
    object: str
    message: str
    count: int = 1


def _users(mapping: Obj | None) -> dict[str, str]:
    return {k: v for k, v in (mapping or {}).items() if not k.startswith(names.RESERVED_PREFIXES)}


def rerun_body(old: Obj, name: str | None = None) -> Obj:
    """metadata and spec of a new Job that runs `old` again."""
    meta = old["metadata"]
    spec = {k: v for k, v in old["spec"].items() if k not in ("suspend", "cancel")}
    labels = _users(meta.get("labels"))
    labels[names.LABEL_RERUN_OF] = meta["name"]
    new_meta: Obj = {
        "name": name or query.generated_name(meta["name"], "r" + query.token(4)),
        "labels": labels,
    }
    annotations = _users(meta.get("annotations"))
    if annotations:
        new_meta["annotations"] = annotations
    return {"metadata": new_meta, "spec": spec}


def job_events(items: Iterable[Obj], job: str) -> list[JobEvent]:
    """The Events about `job` and its children, oldest first."""
    children = re.compile(rf"^{re.escape(job)}-\d+(-archive-\d+)?$")
    out: list[JobEvent] = []
    for ev in items:
        obj = ev.get("involvedObject") or {}
        mine = (obj.get("kind") == "Job" and obj.get("name") == job) or (
            obj.get("kind") in ("Pod", "PersistentVolumeClaim")
            and children.match(str(obj.get("name", ""))) is not None
        )
        if not mine:
            continue
        when = ev.get("lastTimestamp") or ev.get("eventTime") or ev.get("firstTimestamp")
        out.append(
            JobEvent(
                time=parse_time(when),
                type=str(ev.get("type", "")),
                reason=str(ev.get("reason", "")),
                object=f"{obj.get('kind', '').lower()}/{obj.get('name', '')}",
                message=" ".join(str(ev.get("message", "")).split()),
                count=int(ev.get("count") or 1),
            )
        )
    return sorted(out, key=lambda e: (e.time is None, e.time or datetime.min))
