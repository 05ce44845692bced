"""The fault suite's Jobs, each built for a known fate: what it is, what the harness does to it
while it runs, and the terminal state and reason it must end with.

Owns: `Fate` (a Job manifest with kwok's sim.ferry.dev/* annotations, timed actions such as
cancel, suspend and resume, and the expected terminal state/reason), `mixed` (a seeded mix
of success, app failure, eviction, timeout, cancel, suspend/resume, parents, TTL and archive
failure), `plain` (fates for scenarios that only need Jobs to run), and `Actions` (a thread
that applies each Job's timed patches).

Must not: decide whether a run was right (`chaos_ledger` and the scenarios do), or watch.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

from ferrydev.bench.workloads import APP_NAME, GROUP, VERSION


def sim(**values: str) -> dict[str, str]:
    """kwok fate annotations (hack/kwok-stages.yaml): sim(duration="2s") -> sim.ferry.dev/..."""
    return {f"sim.ferry.dev/{k.replace('_', '-')}": v for k, v in values.items()}


@dataclass
class Fate:
    name: str
    kind: str
    annotations: dict[str, str]
    spec: dict[str, Any]
    state: str  # the expected terminal state
    reason: str  # and its reason
    actions: list[tuple[float, dict[str, Any]]] = field(default_factory=list)  # (s, spec patch)
    ttl: bool = False  # deleted by its TTL once terminal
    #: Other terminal (state, reason) pairs that are right too (a child whose parent its TTL
    #: deleted may run, or fail saying so).
    also: tuple[tuple[str, str], ...] = ()

    def expects(self, state: str, reason: str) -> bool:
        return (state, reason) == (self.state, self.reason) or (state, reason) in self.also

    def manifest(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"appRef": {"name": APP_NAME}, **self.spec}
        return {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Job",
            "metadata": {"name": self.name, "annotations": dict(self.annotations)},
            "spec": spec,
        }


def _secs(rng: random.Random, lo: float, hi: float) -> str:
    return f"{rng.randint(int(lo), int(hi))}s"


def mixed(n: int, rng: random.Random) -> list[Fate]:
    """`n` Jobs of mixed fates (parents come in pairs), shuffled."""
    weights = {
        "ok": 26,
        "exit": 10,
        "evict": 8,
        "timeout": 6,
        "cancel": 8,
        "suspend": 8,
        "pause": 6,
        "parents": 12,
        "ttl": 8,
        "archive": 8,
    }
    kinds = rng.choices(list(weights), weights=list(weights.values()), k=n)
    fates: list[Fate] = []
    i = 0
    while len(fates) < n:
        kind = kinds[i % len(kinds)]
        i += 1
        name = f"{kind}-{i}"
        if kind == "ok":
            fates.append(
                Fate(name, kind, sim(duration=_secs(rng, 2, 8)), {}, "Finished", "Succeeded")
            )
        elif kind == "exit":
            ann = sim(duration=_secs(rng, 1, 3), exit_code="3")
            fates.append(Fate(name, kind, ann, {}, "Failed", "AppFailed"))
        elif kind == "evict":
            ann = sim(duration=_secs(rng, 1, 2), evict="true")
            spec: dict[str, Any] = {"retry": {"appFailures": 0, "infraFailures": 2}}
            fates.append(Fate(name, kind, ann, spec, "Failed", "InfraFailed"))
        elif kind == "timeout":
            spec = {"maxRunSeconds": rng.randint(2, 5)}
            fates.append(
                Fate(name, kind, sim(duration="600s"), spec, "TimedOut", "MaxRunSecondsExceeded")
            )
        elif kind == "cancel":
            acts = [(rng.uniform(2, 15), {"cancel": True})]
            fates.append(Fate(name, kind, sim(duration="600s"), {}, "Cancelled", "Cancelled", acts))
        elif kind == "suspend":
            acts = [(rng.uniform(3, 20), {"suspend": False})]
            fates.append(
                Fate(
                    name,
                    kind,
                    sim(duration=_secs(rng, 1, 4)),
                    {"suspend": True},
                    "Finished",
                    "Succeeded",
                    acts,
                )
            )
        elif kind == "pause":
            at = rng.uniform(2, 5)
            acts = [(at, {"suspend": True}), (at + rng.uniform(4, 10), {"suspend": False})]
            fates.append(Fate(name, kind, sim(duration="6s"), {}, "Finished", "Succeeded", acts))
        elif kind == "parents":
            if len(fates) + 2 > n:
                continue
            fails = rng.random() < 0.4
            # A third of the parents that succeed are deleted by their TTL at once.
            short_ttl = not fails and rng.random() < 0.33
            parent_ann = sim(duration=_secs(rng, 2, 5), **({"exit_code": "3"} if fails else {}))
            fates.append(
                Fate(
                    f"{name}-p",
                    kind,
                    parent_ann,
                    {"ttlSecondsAfterFinished": rng.choice([0, 1])} if short_ttl else {},
                    "Failed" if fails else "Finished",
                    "AppFailed" if fails else "Succeeded",
                    ttl=short_ttl,
                )
            )
            gone = (("Failed", "ParentFailed"), ("Failed", "ParentNotFound")) if short_ttl else ()
            fates.append(
                Fate(
                    f"{name}-c",
                    kind,
                    sim(duration="1s"),
                    {"parents": [f"{name}-p"]},
                    "Failed" if fails else "Finished",
                    "ParentFailed" if fails else "Succeeded",
                    also=gone,
                )
            )
        elif kind == "ttl":
            ttl = rng.choice([0, 2, 5])
            fates.append(
                Fate(
                    name,
                    kind,
                    sim(duration=_secs(rng, 1, 3)),
                    {"ttlSecondsAfterFinished": ttl},
                    "Finished",
                    "Succeeded",
                    ttl=True,
                )
            )
        elif kind == "archive":
            ann = sim(duration=_secs(rng, 1, 3), archive_exit_code="1")
            fates.append(Fate(name, kind, ann, {}, "Failed", "ArchiveFailed"))
    rng.shuffle(fates)
    return fates


def plain(prefix: str, durations: list[str]) -> list[Fate]:
    """Jobs that run for the given durations and finish."""
    return [
        Fate(f"{prefix}-{i}", "ok", sim(duration=d), {}, "Finished", "Succeeded")
        for i, d in enumerate(durations)
    ]


def create(api: k8s.ApiClient, namespace: str, fates: list[Fate]) -> dict[str, float]:
    """Create the Jobs (AlreadyExists is fine: a retried create); returns their creation times
    (monotonic)."""
    co = k8s.CustomObjectsApi(api)
    created: dict[str, float] = {}
    for f in fates:
        try:
            co.create_namespaced_custom_object(GROUP, VERSION, namespace, "jobs", f.manifest())
        except ApiException as exc:
            if exc.status != 409:
                raise
        created[f.name] = time.monotonic()
    return created


def patch_spec(api: k8s.ApiClient, namespace: str, name: str, spec: dict[str, Any]) -> bool:
    """Merge-patch a Job's spec; False if the Job is gone."""
    try:
        k8s.CustomObjectsApi(api).patch_namespaced_custom_object(
            GROUP, VERSION, namespace, "jobs", name, {"spec": spec}
        )
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


class Actions(threading.Thread):
    """Applies each Job's timed patches, at their time after the Job was created."""

    def __init__(
        self, api: k8s.ApiClient, namespace: str, fates: list[Fate], created: dict[str, float]
    ) -> None:
        super().__init__(daemon=True, name="chaos actions")
        self.api = api
        self.namespace = namespace
        self.todo = sorted(
            (created[f.name] + at, f.name, patch) for f in fates for at, patch in f.actions
        )
        self.stopping = threading.Event()
        self.done = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for when, name, patch in self.todo:
                while not self.stopping.is_set() and time.monotonic() < when:
                    time.sleep(min(0.2, max(0.0, when - time.monotonic())))
                if self.stopping.is_set():
                    return
                patch_spec(self.api, self.namespace, name, patch)
                self.done += 1
        except BaseException as exc:
            self.error = exc
