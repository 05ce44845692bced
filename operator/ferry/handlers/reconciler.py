"""The Job reconciler: a work queue of Jobs, each pass observe → decide → act → record.

Owns: turning watch events into queued Job keys (deduplicated; a key changed while being
worked on is queued again afterwards), the per-Job pass, delayed requeues (timeouts, TTL,
resync), and the caches of Jobs and Apps fed by the watches. A pass creates what the plan
creates (idempotent: deterministic names, AlreadyExists is fine), writes the status once with
optimistic locking, then deletes what the plan deletes (NotFoundError is fine) and posts Events.
Creating before recording and deleting after recording is what keeps a killed operator right:
a child is never recorded before it exists, and the evidence a decision rested on (a finished
run pod) is never gone before the decision is recorded. Must not: decide anything itself;
`ferry.decisions.lifecycle.decide` does.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, TypeVar

from ferry.api.app import AppStatus
from ferry.api.job import State
from ferry.clients.kube import ConflictError, KubeClient, NotFoundError
from ferry.config import OperatorConfig
from ferry.decisions import apps, builders, lifecycle, parse
from ferry.decisions.lifecycle import CreateObject, DeleteJob, DeleteObject
from ferry.decisions.observation import JobView, Observation, ParentView, pod_view
from ferry.handlers.metrics import Metrics, WatchFreshness

log = logging.getLogger("ferry.reconciler")

Key = tuple[str, str]
Obj = dict[str, Any]
T = TypeVar("T")

MPI_CRD = "mpijobs.kubeflow.org"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
#: How long a pod this process created or deleted may take to show in the watch.
EXPECTATION_SECONDS = 10.0
COMPONENT = "ferry-operator"


def utcnow() -> datetime:
    return datetime.now(UTC)


def _rv(obj: Obj | None) -> int:
    try:
        return int((obj or {}).get("metadata", {}).get("resourceVersion", "0"))
    except ValueError:
        return 0


class Reconciler:
    def __init__(
        self,
        kube: KubeClient,
        config: OperatorConfig,
        clock: Callable[[], datetime] = utcnow,
        metrics: Metrics | None = None,
    ) -> None:
        self.kube = kube
        self.config = config
        self.clock = clock
        self.jobs: dict[Key, Obj] = {}
        #: (namespace, parent) -> Jobs naming it in spec.parents (spec is immutable).
        self.children: dict[Key, set[Key]] = {}
        self.apps: dict[Key, Obj] = {}
        self.queue: asyncio.Queue[Key] = asyncio.Queue()
        self.pending: set[Key] = set()
        self.active: set[Key] = set()
        self.dirty: set[Key] = set()
        #: Jobs with a pod still standing: a terminal one lists its children to release them
        #: (after a restart, when the pass that ended it was cut short).
        self.stray: set[Key] = set()
        #: Ferry's pods by Job, from one LIST at start-up and the pod watch after it.
        self.pods: dict[Key, dict[str, Obj]] = {}
        #: Pods this process created (or deleted) whose event has not arrived yet, with a
        #: deadline: until then the cache may not show them, and a pass waits for the event.
        self.expected_created: dict[Key, dict[str, float]] = {}
        self.expected_deleted: dict[Key, dict[str, float]] = {}
        self.timers: dict[Key, tuple[float, asyncio.TimerHandle]] = {}
        self.executor = ThreadPoolExecutor(
            max_workers=config.workers * 2, thread_name_prefix="ferry-api"
        )
        self.tasks: list[asyncio.Task[None]] = []
        self.metrics = metrics or Metrics()
        self.metrics.attach(self.jobs, kube.calls.counts)
        self.freshness = WatchFreshness()
        self._mpi_checked = (0.0, False)

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        for pod in await self._io(self.kube.list_managed_pods, self.config.namespaces):
            self._cache_pod(None, pod)
        for i in range(self.config.workers):
            self.tasks.append(asyncio.create_task(self._worker(), name=f"ferry-worker-{i}"))

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for _, handle in self.timers.values():
            handle.cancel()
        self.executor.shutdown(wait=False, cancel_futures=True)

    async def _io(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    # ---------------------------------------------------------------- queue

    def enqueue(self, key: Key, delay: float = 0.0) -> None:
        if delay > 0:
            loop = asyncio.get_running_loop()
            due = loop.time() + delay
            current = self.timers.get(key)
            if current is not None and current[0] <= due:
                return
            if current is not None:
                current[1].cancel()
            self.timers[key] = (due, loop.call_at(due, self._fire, key))
            return
        if key in self.active:
            self.dirty.add(key)
        elif key not in self.pending:
            self.pending.add(key)
            self.queue.put_nowait(key)

    def _fire(self, key: Key) -> None:
        self.timers.pop(key, None)
        self.enqueue(key)

    async def _worker(self) -> None:
        while True:
            key = await self.queue.get()
            self.pending.discard(key)
            self.active.add(key)
            started = time.monotonic()
            try:
                await self.reconcile(key)
            except ConflictError:
                self.metrics.conflicts.inc()
                self.jobs.pop(key, None)  # read it afresh
                self.dirty.add(key)
            except Exception:
                self.metrics.reconcile_errors.inc()
                log.exception("Job %s/%s: reconcile failed; retrying in 5s", *key)
                self.enqueue(key, 5.0)
            finally:
                self.metrics.reconcile_seconds.observe(time.monotonic() - started)
                self.active.discard(key)
                if key in self.dirty:
                    self.dirty.discard(key)
                    self.enqueue(key)

    # ---------------------------------------------------------------- watch events

    def job_event(self, kind: str | None, obj: Obj) -> None:
        meta = obj.get("metadata", {})
        key = (meta.get("namespace", ""), meta.get("name", ""))
        parents = (obj.get("spec") or {}).get("parents") or []
        if kind == "DELETED":
            self.jobs.pop(key, None)
            for parent in parents:
                self.children.get((key[0], parent), set()).discard(key)
            timer = self.timers.pop(key, None)
            if timer:
                timer[1].cancel()
        else:
            if _rv(obj) >= _rv(self.jobs.get(key)):
                self.jobs[key] = _slim(obj)
            for parent in parents:
                self.children.setdefault((key[0], parent), set()).add(key)
            self.enqueue(key)
        # Children waiting on this Job as a parent look again.
        for child in self._children_of(key):
            self.enqueue(child)

    def app_event(self, kind: str | None, obj: Obj) -> list[Key]:
        meta = obj.get("metadata", {})
        key = (meta.get("namespace", ""), meta.get("name", ""))
        if kind == "DELETED":
            self.apps.pop(key, None)
        else:
            self.apps[key] = obj
        users = [
            k
            for k, j in self.jobs.items()
            if k[0] == key[0] and _app_name(j) == key[1] and not _terminal(j)
        ]
        for user in users:
            self.enqueue(user)
        return users

    def pod_event(self, kind: str | None, obj: Obj) -> None:
        key = self._cache_pod(kind, obj)
        if key is not None:
            meta = obj.get("metadata", {})
            if kind != "DELETED" and not meta.get("deletionTimestamp"):
                self.stray.add(key)
            self.enqueue(key)

    def _cache_pod(self, kind: str | None, obj: Obj) -> Key | None:
        meta = obj.get("metadata", {})
        job = (meta.get("labels") or {}).get("ferry.dev/job")
        if not job:
            return None
        key = (meta.get("namespace", ""), job)
        name = meta.get("name", "")
        cached = self.pods.setdefault(key, {})
        if kind == "DELETED":
            cached.pop(name, None)
            self.expected_deleted.get(key, {}).pop(name, None)
        elif _rv(obj) >= _rv(cached.get(name)):
            cached[name] = _slim(obj)
            if meta.get("deletionTimestamp"):
                self.expected_deleted.get(key, {}).pop(name, None)
        self.expected_created.get(key, {}).pop(name, None)
        if not cached:
            del self.pods[key]
        return key

    def _expect(self, table: dict[Key, dict[str, float]], key: Key, name: str) -> None:
        table.setdefault(key, {})[name] = time.monotonic() + EXPECTATION_SECONDS

    def _pending(self, table: dict[Key, dict[str, float]], key: Key) -> set[str]:
        now = time.monotonic()
        entries = table.get(key, {})
        for name in [n for n, due in entries.items() if due < now]:
            del entries[name]
        return set(entries)

    def _children_of(self, key: Key) -> list[Key]:
        return [
            child
            for child in self.children.get(key, ())
            if child in self.jobs and not _terminal(self.jobs[child])
        ]

    # ---------------------------------------------------------------- one pass

    async def _mpi_available(self) -> bool:
        checked_at, value = self._mpi_checked
        if time.monotonic() - checked_at < 30:
            return value
        value = await self._io(self.kube.crd_exists, MPI_CRD)
        self._mpi_checked = (time.monotonic(), value)
        return value

    async def reconcile(self, key: Key) -> None:
        ns, name = key
        obj = self.jobs.get(key)
        if obj is None:
            try:
                obj = await self._io(self.kube.get_job, ns, name)
            except NotFoundError:
                return
            self.jobs[key] = obj = _slim(obj)
        view = parse.job_view(obj)
        terminal = view.status.state is not None and view.status.state.terminal
        stray = key in self.stray
        self.stray.discard(key)
        pods: list[Obj] = []
        if not terminal or stray:
            cached = self.pods.get(key, {})
            seen = self._pending(self.expected_created, key) & set(cached)
            for pod_name in seen:  # the event beat the create call's return
                self.expected_created[key].pop(pod_name, None)
            if self._pending(self.expected_created, key):
                # A pod made by an earlier pass is not in the cache yet: its watch event
                # will bring this Job back; deciding now would work from a stale view.
                self.enqueue(key, EXPECTATION_SECONDS)
                return
            pods = list(self.pods.get(key, {}).values())
            if _run_pod_looks_lost(view, pods):
                # Losing a run pod counts against the retry budget: confirm with the
                # apiserver before believing the cache.
                pods, _ = await self._io(self.kube.list_children, ns, name)
                self.pods[key] = {p["metadata"]["name"]: p for p in pods}
            self.metrics.observe_container_summaries(pods)
        app_obj = self.apps.get((ns, view.spec.app_ref.name)) if view.spec else None
        if app_obj is None and view.spec is not None and not terminal:
            # Not in the cache: missing, or its watch event has not arrived yet (just after a
            # start). Ask before believing it is gone: a missing App blocks the Job.
            app_obj = await self._io(self.kube.get_app, ns, view.spec.app_ref.name)
            if app_obj is not None:
                self.apps.setdefault((ns, view.spec.app_ref.name), _slim(app_obj))
        parents: dict[str, ParentView | None] = {}
        if view.spec is not None:
            for parent in view.spec.parents:
                parent_obj = self.jobs.get((ns, parent))
                parents[parent] = parse.parent_view(parent_obj) if parent_obj else None
        app = parse.app_view(app_obj) if app_obj else None
        mpi = True
        if app is not None and app.spec is not None and app.spec.runtime.type == "MPI":
            mpi = await self._mpi_available()
        deleting = self._pending(self.expected_deleted, key)
        views = [
            dataclasses.replace(v, deleting=True) if v.name in deleting else v
            for v in (pod_view(p) for p in pods)
            if v is not None
        ]
        obs = Observation(
            job=view,
            now=self.clock(),
            config=self.config,
            app=app,
            parents=parents,
            pods=tuple(views),
            pvcs=_workspaces(view) if (not terminal or stray) else frozenset(),
            mpi_available=mpi,
        )
        plan = lifecycle.decide(obs)
        for action in plan.actions:
            if isinstance(action, CreateObject):
                made = await self._io(self.kube.create, action.manifest)
                if action.kind == "Pod":
                    self._expect(self.expected_created, key, action.name)
                if made:
                    log.info("Job %s/%s: created %s %s", ns, name, action.kind, action.name)
            elif isinstance(action, DeleteJob):
                log.info("Job %s/%s: ttlSecondsAfterFinished elapsed; deleting the Job", ns, name)
                await self._io(self.kube.delete_job, ns, name, view.uid)
                return
        if plan.changed:
            written = await self._io(self.kube.replace_status, "jobs", obj, plan.status.wire())
            if _rv(written) >= _rv(self.jobs.get(key)):
                self.jobs[key] = _slim(written)
            if plan.status.state != view.status.state:
                state = plan.status.state.value if plan.status.state else ""
                self.metrics.transitions.labels(state, plan.status.reason or "").inc()
                log.info(
                    "Job %s/%s: %s -> %s (%s) %s",
                    ns,
                    name,
                    view.status.state.value if view.status.state else "-",
                    state,
                    plan.status.reason,
                    plan.status.message,
                )
        for action in plan.actions:
            if isinstance(action, DeleteObject):
                gone = await self._io(self.kube.delete, action.kind, ns, action.name)
                if action.kind == "Pod" and gone:
                    self._expect(self.expected_deleted, key, action.name)
                if gone:
                    log.info("Job %s/%s: deleted %s %s", ns, name, action.kind, action.name)
        if plan.changed:
            for event in plan.events:
                await self._io(
                    self.kube.post_event,
                    written,
                    event.type,
                    event.reason,
                    event.message,
                    COMPONENT,
                )
        delay = plan.requeue_after
        if not plan.state.terminal:
            delay = (
                min(delay, self.config.resync_seconds)
                if delay is not None
                else self.config.resync_seconds
            )
        if delay is not None:
            self.enqueue(key, max(delay, 0.05))

    # ---------------------------------------------------------------- health

    async def stale_watch_keys(self) -> list[Key]:
        """Jobs newer on the server than in the watch cache for longer than the grace period
        (a sample of up to 200): non-empty means the Job watch has stopped delivering."""
        listed = await self._io(self.kube.list_job_versions, self.config.namespaces, 200)
        cached = {k: _rv(v) for k, v in self.jobs.items()}
        return self.freshness.check(listed, cached)

    # ---------------------------------------------------------------- apps

    async def reconcile_app(self, obj: Obj) -> None:
        """Record whether the App is usable (Ready) and why not."""
        meta = obj["metadata"]
        view = parse.app_view(obj)
        try:
            current = AppStatus.model_validate(obj.get("status") or {})
        except ValueError:
            current = AppStatus()
        status, changed = apps.app_status(
            view, current, int(meta.get("generation") or 0), self.clock()
        )
        if not changed:
            return
        try:
            await self._io(self.kube.replace_status, "apps", obj, status.wire())
        except (ConflictError, NotFoundError):
            return  # a newer event follows
        log.info(
            "App %s/%s: %s",
            meta["namespace"],
            meta["name"],
            status.conditions[-1].message if status.conditions else "",
        )


def _run_pod_looks_lost(view: JobView, pods: list[Obj]) -> bool:
    """The current attempt's run pod should exist (recorded as made, no outcome yet) but the
    cache has none."""
    st = view.status
    if not st.attempt or st.run_outcome is not None or st.state in (None, State.SUSPENDED):
        return False
    if st.state.terminal:
        return False
    run = builders.run_pod_name(view.name, st.attempt)
    return all(p["metadata"]["name"] != run for p in pods)


def _workspaces(view: JobView) -> frozenset[str]:
    """The workspace PVCs the Job's attempts made (none when it uses no workspace)."""
    spec = view.spec
    if spec is not None and not spec.uses_workspace:
        return frozenset()
    return frozenset(
        builders.workspace_name(view.name, n) for n in range(1, (view.status.attempt or 0) + 1)
    )


def _slim(obj: Obj) -> Obj:
    """The Job as cached: without managedFields and kubectl's last-applied copy of the spec,
    which Ferry never reads (and which dominate memory with thousands of Jobs)."""
    meta = obj.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    if "managedFields" not in meta and LAST_APPLIED not in annotations:
        return obj
    slim_meta = {k: v for k, v in meta.items() if k != "managedFields"}
    if LAST_APPLIED in annotations:
        slim_meta["annotations"] = {k: v for k, v in annotations.items() if k != LAST_APPLIED}
    return {**obj, "metadata": slim_meta}


def _app_name(obj: Obj) -> str:
    return str(((obj.get("spec") or {}).get("appRef") or {}).get("name", ""))


def _terminal(obj: Obj) -> bool:
    return ((obj.get("status") or {}).get("state")) in (
        "Finished",
        "Failed",
        "TimedOut",
        "Cancelled",
    )
