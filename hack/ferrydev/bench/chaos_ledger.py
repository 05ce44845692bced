"""What the fault suite saw happen in its namespace: every version of every Ferry Job, pod and
PVC, from watches of its own (independent of the operator's), and the figures drawn from them.

Owns: `Ledger` (three `watch.Watcher`s; on every re-list, objects missing from the list are
recorded as deleted, so that a 410 Gone in the suite's own watches loses nothing), per Job
UID its states, terminal state/reason/attempt and deletion time, per name the UIDs ever
created (pods, PVCs, Jobs), each pod's owner and creation time; and the checks: lost Jobs,
wrong terminal states, duplicate pods (a second UID for one name, or a pod created after its
owning Job was deleted).

Must not: write to the API, or decide what a Job's expected fate is (`chaos_fates` does).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kubernetes import client as k8s

from ferrydev.bench.watch import FERRY_TERMINAL, Watcher
from ferrydev.bench.workloads import GROUP, VERSION

#: A pod created this long (s) after its Job's deletion began is a dead owner's child
#: (timestamps have one-second resolution).
DEAD_OWNER_MARGIN = 2.0


def _wall(text: str | None) -> float | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@dataclass
class JobRecord:
    name: str
    uid: str
    states: list[str] = field(default_factory=list)
    terminal: tuple[str, str, int] | None = None  # state, reason, attempt (the first seen)
    attempt: int = 0  # the highest seen
    deleting: float | None = None  # metadata.deletionTimestamp (wall)
    gone: float | None = None  # monotonic time its deletion was seen
    last: dict[str, Any] = field(default_factory=dict)


@dataclass
class PodRecord:
    name: str
    uid: str
    job: str
    role: str
    owner: str
    created: float | None  # wall
    phase: str = ""
    gone: bool = False


class _Relisting(Watcher):
    """A Watcher that tells which UIDs each (re-)list returned."""

    def __init__(self, api: k8s.ApiClient, path: str, ledger: Ledger, kind: str) -> None:
        super().__init__(api, path, lambda t, o, now: ledger.on_event(kind, t, o, now))
        self.ledger = ledger
        self.kind = kind

    def run(self) -> None:
        # Unlike the benchmark's Watcher, it outlives the apiserver's restarts: it lists
        # again (recording what went meanwhile) until it is stopped.
        while not self.stopping.is_set():
            self.error = None
            super().run()
            if self.stopping.is_set() or not self.failed():
                return
            time.sleep(1.0)

    def failed(self) -> bool:
        return self.error is not None

    def _list(self) -> str:
        with self.ledger.lock:
            self.ledger.listed[self.kind] = set()
        rv = super()._list()
        self.ledger.relisted(self.kind)
        return rv


class Ledger:
    """Every version of the namespace's Jobs, pods and PVCs, while it runs."""

    def __init__(self, api: k8s.ApiClient, namespace: str) -> None:
        self.namespace = namespace
        self.lock = threading.Lock()
        self.jobs: dict[str, JobRecord] = {}  # by uid
        self.pods: dict[str, PodRecord] = {}  # by uid
        self.pvcs: dict[str, str] = {}  # uid -> name
        self.listed: dict[str, set[str]] = {"jobs": set(), "pods": set(), "pvcs": set()}
        self.live: dict[str, set[str]] = {"jobs": set(), "pods": set(), "pvcs": set()}
        paths = {
            "jobs": f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/jobs",
            "pods": f"/api/v1/namespaces/{namespace}/pods",
            "pvcs": f"/api/v1/namespaces/{namespace}/persistentvolumeclaims",
        }
        self.watchers = [_Relisting(api, p, self, k) for k, p in paths.items()]

    def start(self) -> Ledger:
        for w in self.watchers:
            w.start()
        for w in self.watchers:
            w.ready.wait(60)
            if w.error:
                raise RuntimeError(f"watch {w.path} failed: {w.error}")
        return self

    def stop(self) -> None:
        for w in self.watchers:
            w.stopping.set()

    def errors(self) -> list[str]:
        return [f"{w.path}: {w.error}" for w in self.watchers if w.error]

    # ------------------------------------------------------------------ recording

    def relisted(self, kind: str) -> None:
        """After a (re-)list: whatever was live and is not listed any more was deleted."""
        now = time.monotonic()
        with self.lock:
            for uid in self.live[kind] - self.listed[kind]:
                self._deleted(kind, uid, now)
            self.live[kind] = set(self.listed[kind])
            self.listed[kind] = set()

    def _deleted(self, kind: str, uid: str, now: float) -> None:
        if kind == "jobs" and uid in self.jobs:
            self.jobs[uid].gone = now
        elif kind == "pods" and uid in self.pods:
            self.pods[uid].gone = True
        self.live[kind].discard(uid)

    def on_event(self, kind: str, type_: str, obj: dict[str, Any], now: float) -> None:
        meta = obj["metadata"]
        uid = str(meta["uid"])
        with self.lock:
            if type_ == "DELETED":
                self._deleted(kind, uid, now)
                return
            self.listed[kind].add(uid)
            self.live[kind].add(uid)
            if kind == "jobs":
                self._job(uid, obj)
            elif kind == "pods":
                self._pod(uid, obj)
            else:
                self.pvcs[uid] = str(meta["name"])

    def _job(self, uid: str, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        rec = self.jobs.setdefault(uid, JobRecord(str(meta["name"]), uid))
        st = obj.get("status") or {}
        state = st.get("state")
        if state and (not rec.states or rec.states[-1] != state):
            rec.states.append(str(state))
        rec.attempt = max(rec.attempt, int(st.get("attempt") or 0))
        if state in FERRY_TERMINAL and rec.terminal is None:
            rec.terminal = (str(state), str(st.get("reason") or ""), int(st.get("attempt") or 0))
        if meta.get("deletionTimestamp") and rec.deleting is None:
            rec.deleting = _wall(meta["deletionTimestamp"])
        rec.last = obj

    def _pod(self, uid: str, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        rec = self.pods.get(uid)
        if rec is None:
            labels = meta.get("labels") or {}
            owners = [o for o in meta.get("ownerReferences") or [] if o.get("kind") == "Job"]
            rec = PodRecord(
                name=str(meta["name"]),
                uid=uid,
                job=str(labels.get("ferry.dev/job", "")),
                role=str(labels.get("ferry.dev/role", "")),
                owner=str(owners[0]["uid"]) if owners else "",
                created=_wall(meta.get("creationTimestamp")),
            )
            self.pods[uid] = rec
        rec.phase = str((obj.get("status") or {}).get("phase") or "")

    # ------------------------------------------------------------------ reading

    def by_name(self) -> dict[str, list[JobRecord]]:
        with self.lock:
            out: dict[str, list[JobRecord]] = {}
            for rec in self.jobs.values():
                out.setdefault(rec.name, []).append(rec)
            return out

    def job(self, name: str) -> JobRecord | None:
        recs = self.by_name().get(name) or []
        return recs[-1] if recs else None

    def terminal_count(self, names: set[str]) -> int:
        return sum(1 for n in names if (r := self.job(n)) is not None and r.terminal)

    def duplicate_pods(self) -> dict[str, str]:
        """Pod name -> why it is a duplicate: created twice, or after its Job was deleted."""
        with self.lock:
            uids: dict[str, set[str]] = {}
            for p in self.pods.values():
                uids.setdefault(p.name, set()).add(p.uid)
            out = {n: f"{len(u)} UIDs" for n, u in uids.items() if len(u) > 1}
            for p in self.pods.values():
                owner = self.jobs.get(p.owner)
                if owner is None or owner.deleting is None or p.created is None:
                    continue
                if p.created >= owner.deleting + DEAD_OWNER_MARGIN:
                    out.setdefault(
                        p.name,
                        f"created {p.created - owner.deleting:.0f}s after "
                        f"its Job {owner.name} ({owner.uid[:8]}) was deleted",
                    )
            return out

    def duplicate_pvcs(self) -> dict[str, int]:
        with self.lock:
            counts: dict[str, int] = {}
            for name in self.pvcs.values():
                counts[name] = counts.get(name, 0) + 1
            return {n: c for n, c in counts.items() if c > 1}

    def duplicate_jobs(self) -> dict[str, int]:
        return {n: len(r) for n, r in self.by_name().items() if len(r) > 1}
