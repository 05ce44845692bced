"""The Job reconciler: a work queue of Jobs, each pass observe → decide → act → record.

Owns: turning watch events into queued Job keys (only events that tell something new: a newer
Job version than the one Ferry wrote itself, a pod whose view changed; a Job's progress is
urgent, a new Job's first pass routine), the per-Job pass, delayed requeues (timeouts, TTL,
resync), and the caches of Jobs (`JobCache`, which keeps terminal Jobs at rest), pods (as
`PodView`s) and Apps fed by the watches. A pass creates what the plan
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

from ferry.api import names
from ferry.api.app import AppStatus
from ferry.api.job import State
from ferry.clients.kube import ConflictError, KubeClient, NotFoundError
from ferry.config import OperatorConfig
from ferry.decisions import apps, lifecycle, parse
from ferry.decisions.lifecycle import CreateObject, DeleteJob, DeleteObject
from ferry.decisions.observation import (
    JobView,
    Observation,
    ParentView,
    PodView,
    pod_view,
    pod_warnings,
    prompt_change,
    slow_to_start,
)
from ferry.handlers.jobcache import JobCache, app_name, resource_version, slim
from ferry.handlers.metrics import Metrics, WatchFreshness
from ferry.handlers.workqueue import WorkQueue
from ferry.runners import RUNNERS

log = logging.getLogger("ferry.reconciler")

Key = tuple[str, str]
Obj = dict[str, Any]
T = TypeVar("T")

MPI_CRD = "mpijobs.kubeflow.org"
#: How long a pod this process created or deleted may take to show in the watch.
EXPECTATION_SECONDS = 10.0
COMPONENT = "ferry-operator"
#: Pod progress (scheduled, started) seen within this time is recorded in one pass.
PROGRESS_BATCH_SECONDS = 1.0


def utcnow() -> datetime:
    return datetime.now(UTC)


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
        self.jobs = JobCache()
        #: (namespace, parent) -> Jobs naming it in spec.parents (spec is immutable).
        self.children: dict[Key, set[Key]] = {}
        self.apps: dict[Key, Obj] = {}
        self.queue: WorkQueue[Key] = WorkQueue()
        #: Jobs with a pod still standing: a terminal one lists its children to release them
        #: (after a restart, when the pass that ended it was cut short).
        self.stray: set[Key] = set()
        #: Ferry's pods by Job (resourceVersion and view), from one LIST at start-up and the
        #: pod watch after it.
        self.pods: dict[Key, dict[str, tuple[int, PodView]]] = {}
        #: Pods this process created (or deleted) whose event has not arrived yet, with a
        #: deadline: until then the cache may not show them, and a pass waits for the event.
        self.expected_created: dict[Key, dict[str, float]] = {}
        self.expected_deleted: dict[Key, dict[str, float]] = {}
        self.executor = ThreadPoolExecutor(
            max_workers=config.workers * 2, thread_name_prefix="ferry-api"
        )
        self.tasks: list[asyncio.Task[None]] = []
        self.metrics = metrics or Metrics()
        self.metrics.attach(self.jobs.states, kube.calls.counts)
        self.queue.on_wait = self.metrics.observe_queue_wait
        self.freshness = WatchFreshness()
        self._mpi_checked = (0.0, False)

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        for pod in await self._io(self.kube.list_managed_pods, self.config.namespaces):
            self.metrics.observe_container_summaries([pod])
            self._cache_pod(None, pod)
        for i in range(self.config.workers):
            self.tasks.append(asyncio.create_task(self._worker(), name=f"ferry-worker-{i}"))

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.queue.close()
        self.executor.shutdown(wait=False, cancel_futures=True)

    async def _io(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    # ---------------------------------------------------------------- queue

    def enqueue(self, key: Key, delay: float = 0.0, urgent: bool = False) -> None:
        if delay > 0:
            self.queue.add_after(key, delay, urgent)
        else:
            self.queue.add(key, urgent)

    async def _worker(self) -> None:
        while True:
            key = await self.queue.get()
            started = time.monotonic()
            try:
                await self.reconcile(key)
            except ConflictError:
                self.metrics.conflicts.inc()
                self.jobs.drop(key)  # read it afresh
                self.queue.add(key, urgent=True)
            except Exception:
                self.metrics.reconcile_errors.inc()
                log.exception("Job %s/%s: reconcile failed; retrying in 5s", *key)
                self.enqueue(key, 5.0)
            finally:
                self.metrics.reconcile_seconds.observe(time.monotonic() - started)
                self.queue.done(key)

    # ---------------------------------------------------------------- watch events

    def job_event(self, kind: str | None, obj: Obj) -> None:
        meta = obj.get("metadata", {})
        key = (meta.get("namespace", ""), meta.get("name", ""))
        parents = (obj.get("spec") or {}).get("parents") or []
        if kind == "DELETED":
            self.jobs.drop(key)
            for parent in parents:
                self.children.get((key[0], parent), set()).discard(key)
            self.queue.forget(key)
        else:
            known = key in self.jobs
            if not self.jobs.put(key, obj):
                return  # nothing new: the version this process wrote, or an older one
            for parent in parents:
                self.children.setdefault((key[0], parent), set()).add(key)
            # A change to a Job already worked on (a cancel, a suspend) is urgent; a new
            # Job's first pass waits its turn.
            self.enqueue(key, urgent=known)
        # Children waiting on this Job as a parent look again.
        for child in self._children_of(key):
            self.enqueue(child, urgent=True)

    def app_event(self, kind: str | None, obj: Obj) -> list[Key]:
        meta = obj.get("metadata", {})
        key = (meta.get("namespace", ""), meta.get("name", ""))
        if kind == "DELETED":
            self.apps.pop(key, None)
        else:
            self.apps[key] = obj
        users = [k for k, j in self.jobs.active() if k[0] == key[0] and app_name(j) == key[1]]
        for user in users:
            self.enqueue(user)
        return users

    def pod_event(self, kind: str | None, obj: Obj) -> None:
        self.metrics.observe_container_summaries([obj])
        key, before, after, expected = self._cache_pod(kind, obj)
        if key is None:
            return
        meta = obj.get("metadata", {})
        if kind != "DELETED" and not meta.get("deletionTimestamp"):
            self.stray.add(key)
        if kind == "ADDED" and expected and after is not None:
            # A pod this process just created is no news by itself; only what it already
            # shows beyond a new pod's state is.
            before = dataclasses.replace(
                after, phase="Pending", deleting=False, disruption="", init=(), main=None
            )
        # A pod that came or went (not our own creation), was listed (a start or a watch
        # restart), or ended, is looked at at once; other progress within
        # PROGRESS_BATCH_SECONDS is recorded in one pass (and one status write), as the Job
        # controller batches pod updates.
        if kind is None or prompt_change(before, after):
            self.enqueue(key, urgent=True)
        elif before != after:
            self.enqueue(key, PROGRESS_BATCH_SECONDS, urgent=True)

    def _cache_pod(
        self, kind: str | None, obj: Obj
    ) -> tuple[Key | None, PodView | None, PodView | None, bool]:
        """Keep the pod's view; the Job's key (None for a pod of no Job), the pod's view
        before and after, and whether it is one this process created and had not seen yet."""
        meta = obj.get("metadata", {})
        job = (meta.get("labels") or {}).get("ferry.dev/job")
        if not job:
            return None, None, None, False
        key = (meta.get("namespace", ""), job)
        name = meta.get("name", "")
        cached = self.pods.setdefault(key, {})
        before = cached.get(name)
        if kind == "DELETED":
            cached.pop(name, None)
            self.expected_deleted.get(key, {}).pop(name, None)
        elif resource_version(obj) >= (before[0] if before else 0):
            view = pod_view(obj)
            if view is not None:
                cached[name] = (resource_version(obj), view)
            if meta.get("deletionTimestamp"):
                self.expected_deleted.get(key, {}).pop(name, None)
        expected = self.expected_created.get(key, {}).pop(name, None) is not None
        after = cached.get(name)
        if not cached:
            del self.pods[key]
        return key, (before[1] if before else None), (after[1] if after else None), expected

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
            if child in self.jobs and not self.jobs.terminal(child)
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
        if self.jobs.is_rested(key) and key not in self.stray:
            # At rest, and no pod of it standing: whatever queued this pass is old news (the
            # watch event of the write that ended the Job, when it beat the write's return).
            return
        obj = self.jobs.get(key)
        if obj is None:
            # Unknown yet, or at rest with a pod standing: read it.
            try:
                obj = slim(await self._io(self.kube.get_job, ns, name))
            except NotFoundError:
                return
            self.jobs.put(key, obj, refresh=True)
        view = parse.job_view(obj)
        terminal = view.status.state is not None and view.status.state.terminal
        stray = key in self.stray
        self.stray.discard(key)
        pods: list[PodView] = []
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
            pods = [view for _, view in self.pods.get(key, {}).values()]
            if _run_pod_looks_lost(view, pods):
                # Losing a run pod counts against the retry budget: confirm with the
                # apiserver before believing the cache.
                listed, _ = await self._io(self.kube.list_children, ns, name)
                self.metrics.observe_container_summaries(listed)
                fresh = {
                    p["metadata"]["name"]: (resource_version(p), v)
                    for p in listed
                    if (v := pod_view(p)) is not None
                }
                if fresh:
                    self.pods[key] = fresh
                else:
                    self.pods.pop(key, None)
                pods = [v for _, v in fresh.values()]
        app_obj = self.apps.get((ns, view.spec.app_ref.name)) if view.spec else None
        if app_obj is None and view.spec is not None and not terminal:
            # Not in the cache: missing, or its watch event has not arrived yet (just after a
            # start). Ask before believing it is gone: a missing App blocks the Job.
            app_obj = await self._io(self.kube.get_app, ns, view.spec.app_ref.name)
            if app_obj is not None:
                self.apps.setdefault((ns, view.spec.app_ref.name), slim(app_obj))
        parents: dict[str, ParentView | None] = {}
        if view.spec is not None:
            for parent in view.spec.parents:
                parents[parent] = self.jobs.parent((ns, parent))
        app = parse.app_view(app_obj) if app_obj else None
        mpi = True
        if app is not None and app.spec is not None and app.spec.runtime.type == "MPI":
            mpi = await self._mpi_available()
        deleting = self._pending(self.expected_deleted, key)
        views = [dataclasses.replace(v, deleting=True) if v.name in deleting else v for v in pods]
        now = self.clock()
        for i, v in enumerate(views):
            if slow_to_start(v, now, self.config.pod_start_grace_seconds):
                # Why it does not start is only in its Events (FailedMount, ...).
                events = await self._io(self.kube.pod_warnings, ns, v.name, v.uid)
                views[i] = dataclasses.replace(v, warnings=pod_warnings(events))
        obs = Observation(
            job=view,
            now=now,
            config=self.config,
            app=app,
            parents=parents,
            pods=tuple(views),
            pvcs=_workspaces(view) if (not terminal or stray) else frozenset(),
            mpi_available=mpi,
        )
        plan = lifecycle.decide(obs, RUNNERS)
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
            # Kept as the newest version, so that this write's own watch event is no news.
            self.jobs.put(key, written)
            self.metrics.observe_status(view.status, plan.status)
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
        elif not any(isinstance(a, DeleteObject) for a in plan.actions):
            # Terminal, no TTL due, nothing released now (a release's pod events bring one
            # more pass, which finds nothing to do): at rest until the Job changes.
            self.jobs.rest(key)

    # ---------------------------------------------------------------- health

    async def stale_watch_keys(self) -> list[Key]:
        """Jobs newer on the server than in the watch cache for longer than the grace period
        (a sample of up to 200): non-empty means the Job watch has stopped delivering."""
        listed = await self._io(self.kube.list_job_versions, self.config.namespaces, 200)
        return self.freshness.check(listed, self.jobs.versions())

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


def _run_pod_looks_lost(view: JobView, pods: list[PodView]) -> bool:
    """The current attempt's run pod should exist (recorded as made, no outcome yet) but the
    cache has none."""
    st = view.status
    if not st.attempt or st.run_outcome is not None or st.state in (None, State.SUSPENDED):
        return False
    if st.state.terminal:
        return False
    run = names.run_pod_name(view.name, st.attempt)
    return all(p.name != run for p in pods)


def _workspaces(view: JobView) -> frozenset[str]:
    """The workspace PVCs the Job's attempts made (none when it uses no workspace)."""
    spec = view.spec
    if spec is not None and not spec.uses_workspace:
        return frozenset()
    return frozenset(
        names.workspace_name(view.name, n) for n in range(1, (view.status.attempt or 0) + 1)
    )
