"""Watching a burst's namespace: the receipt time of every Job and pod event the lifecycle
benchmark measures, for Ferry's Jobs and batch/v1 Jobs alike.

Owns: `Watcher` (one list-then-watch, re-established on timeout and on 410 Gone, handing
each raw event to a callback with its monotonic receipt time), `Timeline` (per Job: added,
terminal and its outcome; its pod added and terminal), and `System`: how to tell a Job's
terminal outcome and a pod's Job for Ferry (`FERRY`) and for the Job controller (`BATCH`).

Must not: write to the API, or compute figures from the timeline (`burst` does).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client as k8s
from kubernetes.watch.watch import iter_resp_lines

from ferrydev.bench.workloads import GROUP, VERSION

FERRY_TERMINAL = frozenset({"Finished", "Failed", "TimedOut", "Cancelled"})


class Watcher(threading.Thread):
    """One watch (list, then watch from its resourceVersion, re-established on timeout) that
    hands each raw event to `on_event` with the monotonic time of its receipt."""

    def __init__(
        self,
        api: k8s.ApiClient,
        path: str,
        on_event: Callable[[str, dict[str, Any], float], None],
    ) -> None:
        super().__init__(daemon=True, name=f"watch {path}")
        self.api = api
        self.path = path
        self.on_event = on_event
        self.stopping = threading.Event()
        self.ready = threading.Event()
        self.error: BaseException | None = None

    def _get(self, query: list[tuple[str, Any]], timeout: float) -> Any:
        return self.api.call_api(
            self.path,
            "GET",
            query_params=query,
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
            _preload_content=False,
            _request_timeout=timeout,
        )[0]

    def _list(self) -> str:
        resp = self._get([("limit", 500)], 60)
        data = json.loads(resp.data)
        now = time.monotonic()
        for item in data.get("items", []):
            self.on_event("ADDED", item, now)
        return str(data["metadata"]["resourceVersion"])

    def run(self) -> None:
        try:
            rv = self._list()
            self.ready.set()
            while not self.stopping.is_set():
                query = [
                    ("watch", "true"),
                    ("resourceVersion", rv),
                    ("allowWatchBookmarks", "true"),
                    ("timeoutSeconds", 10),
                ]
                resp = self._get(query, 30)
                try:
                    for line in iter_resp_lines(resp):
                        now = time.monotonic()
                        event = json.loads(line)
                        obj = event["object"]
                        kind = event["type"]
                        if kind == "ERROR":
                            if obj.get("code") == 410:
                                rv = self._list()
                                break
                            raise RuntimeError(f"watch {self.path}: {obj}")
                        rv = obj["metadata"]["resourceVersion"]
                        if kind != "BOOKMARK":
                            self.on_event(kind, obj, now)
                        if self.stopping.is_set():
                            break
                finally:
                    resp.release_conn()
        except BaseException as exc:
            self.error = exc
            self.ready.set()


@dataclass
class Timeline:
    """Receipt times (monotonic) of the events the benchmark measures, per Job name."""

    job_added: dict[str, float] = field(default_factory=dict)
    job_terminal: dict[str, float] = field(default_factory=dict)
    job_outcome: dict[str, str] = field(default_factory=dict)
    pod_added: dict[str, float] = field(default_factory=dict)
    pod_terminal: dict[str, float] = field(default_factory=dict)
    #: Ferry Jobs: each version seen, as "state (reason)" and the conditions that changed.
    job_steps: dict[str, list[str]] = field(default_factory=dict)
    job_conditions: dict[str, dict[str, str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def ferry_step(obj: dict[str, Any], before: dict[str, str]) -> tuple[str, dict[str, str]]:
    """One version of a Ferry Job, as "state (reason)" with the conditions that changed since
    `before` (type=status); and its conditions."""
    status = obj.get("status") or {}
    conds = {str(c.get("type")): str(c.get("status")) for c in status.get("conditions") or []}
    changed = [f"{t}={v}" for t, v in sorted(conds.items()) if before.get(t) != v]
    label = f"{status.get('state') or '-'} ({status.get('reason') or '-'})"
    return (f"{label} [{', '.join(changed)}]" if changed else label), conds


def ferry_outcome(obj: dict[str, Any]) -> str | None:
    state = (obj.get("status") or {}).get("state")
    return str(state) if state in FERRY_TERMINAL else None


def batch_outcome(obj: dict[str, Any]) -> str | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") in ("Complete", "Failed") and cond.get("status") == "True":
            return str(cond["type"])
    return None


def ferry_pod_job(pod: dict[str, Any]) -> str | None:
    labels = pod["metadata"].get("labels") or {}
    if labels.get("ferry.dev/role") != "run":
        return None
    job = labels.get("ferry.dev/job")
    return str(job) if job else None


def batch_pod_job(pod: dict[str, Any]) -> str | None:
    labels = pod["metadata"].get("labels") or {}
    job = labels.get("batch.kubernetes.io/job-name") or labels.get("job-name")
    return str(job) if job else None


@dataclass(frozen=True)
class System:
    name: str  # "ferry" | "batch"
    jobs_path: str  # a format string with {ns}
    outcome: Callable[[dict[str, Any]], str | None]
    pod_job: Callable[[dict[str, Any]], str | None]


FERRY = System(
    "ferry", f"/apis/{GROUP}/{VERSION}/namespaces/{{ns}}/jobs", ferry_outcome, ferry_pod_job
)
BATCH = System("batch", "/apis/batch/v1/namespaces/{ns}/jobs", batch_outcome, batch_pod_job)


def watch_namespace(api: k8s.ApiClient, system: System, ns: str) -> tuple[Timeline, list[Watcher]]:
    tl = Timeline()

    def on_job(kind: str, obj: dict[str, Any], now: float) -> None:
        name = obj["metadata"]["name"]
        with tl.lock:
            if kind == "ADDED":
                tl.job_added.setdefault(name, now)
            if system.name == "ferry" and kind in ("ADDED", "MODIFIED"):
                step, conds = ferry_step(obj, tl.job_conditions.get(name, {}))
                tl.job_steps.setdefault(name, []).append(step)
                tl.job_conditions[name] = conds
            outcome = system.outcome(obj)
            if outcome and name not in tl.job_terminal:
                tl.job_terminal[name] = now
                tl.job_outcome[name] = outcome

    def on_pod(kind: str, obj: dict[str, Any], now: float) -> None:
        job = system.pod_job(obj)
        if job is None:
            return
        with tl.lock:
            tl.pod_added.setdefault(job, now)
            phase = (obj.get("status") or {}).get("phase")
            if phase in ("Succeeded", "Failed"):
                tl.pod_terminal.setdefault(job, now)

    watchers = [
        Watcher(api, system.jobs_path.format(ns=ns), on_job),
        Watcher(api, f"/api/v1/namespaces/{ns}/pods", on_pod),
    ]
    for w in watchers:
        w.start()
    for w in watchers:
        w.ready.wait(60)
        if w.error:
            raise RuntimeError(f"watch {w.path} failed: {w.error}")
    return tl, watchers
