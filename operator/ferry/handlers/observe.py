"""Observing one Job: its `Observation`, from the caches and, where they may lag, the API.

Owns: everything a pass hands to `lifecycle.decide` for one Job key. The Job comes from the
Job cache, or is read when unknown or at rest with a pod standing. Its pods come from the pod
cache, and are only looked at when the Job is not terminal or a pod of it was seen standing
(a Job recorded as terminal had them released by the pass that ended it): while a pod this
process created has not shown in the watch yet, the pass comes back later instead of deciding
from a stale view, and when the current attempt's run pod looks lost (which counts against
the retry budget, and would make a new one) the Job is read and its pods listed fresh before
the cache is believed: a Job found gone is deleted from the cache, with nothing made for it.
Pods this process deleted are marked deleting until the watch shows it. Its App comes from the App
cache, asked for when missing (a missing App blocks the Job; just after a start its watch
event may not have arrived); its parents from the Job cache, or as last seen before their
deletion (`departed.Departed`), read afresh when one missing would fail the Job (the Job
watch may not have listed it yet), and a dependency cycle through the Job as the Job cache
shows its ancestors; whether the MPI operator is installed from its CRD (checked at most every
`MPI_CHECK_SECONDS`); an MPI Job's MPIJobs listed afresh on each pass that looks at its
children (with the UID of each one's launcher batch Job, whose pods are the MPIJob's too); why
a pod is slow to start from its Warning Events; why a pod held by Kueue's gate, or a queued
MPIJob held suspended, is not admitted from its Kueue Workload (read on each pass only for
those). The last parse of each live Job and App is reused while its cached dict is the
same. Must not: decide, or write anything to the API.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from ferry.api import names
from ferry.api.job import State
from ferry.clients.protocol import KubeAPI, NotFoundError
from ferry.config import OperatorConfig
from ferry.decisions import kueue, parse
from ferry.decisions.expected import parents_overdue, run_pod_looks_lost, runs_mpi, workspaces
from ferry.decisions.mpiview import MPIJobView, mpijob_view
from ferry.decisions.observation import (
    AppView,
    JobView,
    Observation,
    ParentView,
    PodView,
    pod_warnings,
    slow_to_start,
)
from ferry.decisions.parents import cycle_through
from ferry.handlers.departed import Departed
from ferry.handlers.jobcache import JobCache, Key, Obj, resource_version, slim, uid_of
from ferry.handlers.metrics import Metrics
from ferry.handlers.podcache import EXPECTATION_SECONDS, PodCache
from ferry.handlers.threads import ApiThreads

#: How long an answer about the MPI operator's CRD is believed.
MPI_CHECK_SECONDS = 30.0
#: Parsed Apps kept at most (one per App in use).
MAX_APP_VIEWS = 4096


@dataclass(frozen=True)
class Later:
    """No observation now: the caches lag behind this process's own writes. The watch event
    awaited brings the Job back; else look again in `delay` seconds."""

    delay: float


@dataclass(frozen=True)
class Confirm:
    """The run pod looks lost: read the Job afresh, then list its pods."""


@dataclass(frozen=True)
class Observed:
    """The observation, and the Job object it was made of (the status write is locked on
    this object's resourceVersion)."""

    obj: Obj
    observation: Observation


class Observer:
    """Builds one Job's observation; shares the caches the watch events fill."""

    def __init__(
        self,
        kube: KubeAPI,
        config: OperatorConfig,
        clock: Callable[[], datetime],
        jobs: JobCache,
        pods: PodCache,
        apps: dict[Key, Obj],
        threads: ApiThreads,
        metrics: Metrics,
        departed: Departed | None = None,
    ) -> None:
        self.kube = kube
        self.config = config
        self.clock = clock
        self.jobs = jobs
        self.pods = pods
        self.apps = apps
        self.threads = threads
        self.metrics = metrics
        self.departed = departed if departed is not None else Departed()
        #: The last parse of each App, with the dict it was parsed from. The cache swaps in a
        #: new dict for every change, never edits one, so the same dict parses the same. (Not
        #: kept for Jobs: at 5,000 live Jobs their parses cost 130 MB and saved no CPU that a
        #: benchmark could tell; docs/benchmarks.md, "Parse reuse and memory".)
        self._app_views: dict[Key, tuple[Obj, AppView]] = {}
        self._mpi_checked = (0.0, False)

    async def observe(self, key: Key, confirmed: bool = False) -> Observed | Later | None:
        """The Job's observation; `Later` when it must wait for the watch; None when there
        is nothing to look at (the Job is gone, or at rest with no pod standing)."""
        ns, _ = key
        if self.jobs.is_rested(key) and not self.pods.is_stray(key):
            # At rest, and no pod of it standing: whatever queued this pass is old news (the
            # watch event of the write that ended the Job, when it beat the write's return).
            return None
        obj = await self._job(key)
        if obj is None:
            return None
        view = parse.job_view(obj)
        terminal = view.status.state is not None and view.status.state.terminal
        stray = self.pods.take_stray(key)
        children = not terminal or stray
        pods = await self._pods(key, view, confirmed) if children else []
        if pods is None:
            return Later(EXPECTATION_SECONDS)
        if isinstance(pods, Confirm):
            # The run pod looks lost: is the Job itself still there, and as known? (Its
            # deletion may be what removed the pod, its event not here yet.)
            if stray:
                self.pods.mark_stray(key)
            try:
                fresh = slim(await self.threads.run(self.kube.get_job, *key))
            except NotFoundError:
                self.jobs.delete(key, obj)
                return None
            if uid_of(fresh) != view.uid:
                self.jobs.delete(key, obj)  # deleted, and made again under its name
            self.metrics.watch.learned(key, resource_version(fresh))
            self.jobs.put(key, fresh, refresh=True)
            return await self.observe(key, confirmed=True)
        app_obj = await self._app(ns, view, terminal)
        parents = await self._parents(ns, view)
        cycle = self._cycle(ns, view, obj) if parents else ()
        app = self._app_view(ns, app_obj) if app_obj else None
        mpi = await self._mpi_available(app)
        mpijobs = await self._mpijobs(key, view, app) if children and mpi else ()
        now = self.clock()
        observation = Observation(
            job=view,
            now=now,
            config=self.config,
            app=app,
            parents=parents,
            pods=await self._pod_views(key, pods, now),
            pvcs=workspaces(view) if children else frozenset(),
            mpi_available=mpi,
            mpijobs=mpijobs,
            foreign=self.pods.foreign(key),
            refused=self.pods.refused(key),
            cycle=cycle,
        )
        return Observed(obj, observation)

    def _app_view(self, namespace: str, obj: Obj) -> AppView:
        key = (namespace, str((obj.get("metadata") or {}).get("name", "")))
        cached = self._app_views.get(key)
        if cached is not None and cached[0] is obj:
            return cached[1]
        view = parse.app_view(obj)
        if len(self._app_views) >= MAX_APP_VIEWS and key not in self._app_views:
            self._app_views.clear()  # Apps deleted over a long life: start again
        self._app_views[key] = (obj, view)
        return view

    async def _job(self, key: Key) -> Obj | None:
        """The whole Job from the cache, else (unknown yet, or at rest with a pod standing)
        read afresh; None when it is gone."""
        obj = self.jobs.get(key)
        if obj is None:
            try:
                obj = slim(await self.threads.run(self.kube.get_job, *key))
            except NotFoundError:
                return None
            if uid_of(obj) in self.jobs.deleted:
                return None  # an answer from before its deletion
            self.metrics.watch.learned(key, resource_version(obj))
            self.jobs.put(key, obj, refresh=True)
        return obj

    async def _pods(
        self, key: Key, view: JobView, confirmed: bool
    ) -> list[PodView] | Confirm | None:
        """The Job's pods; None while a pod this process created is not in the cache yet;
        `Confirm` when its run pod looks lost and the Job is to be read afresh first."""
        if self.pods.unseen_created(key):
            # A pod made by an earlier pass is not in the cache yet: its watch event will
            # bring this Job back; deciding now would work from a stale view.
            return None
        pods = self.pods.views(key)
        if run_pod_looks_lost(view, [p for p in pods if p.owner_uid == view.uid]):
            if not confirmed:
                return Confirm()
            # Losing a run pod counts against the retry budget: confirm with the apiserver
            # before believing the cache.
            listed = await self.threads.run(self.kube.list_job_pods, *key)
            self.metrics.observe_container_summaries(listed)
            pods = self.pods.replace(key, listed)
        return pods

    async def _app(self, ns: str, view: JobView, terminal: bool) -> Obj | None:
        if view.spec is None:
            return None
        name = view.spec.app_ref.name
        app_obj = self.apps.get((ns, name))
        if app_obj is None and not terminal:
            # Not in the cache: missing, or its watch event has not arrived yet (just after a
            # start). Ask before believing it is gone: a missing App blocks the Job.
            app_obj = await self.threads.run(self.kube.get_app, ns, name)
            if app_obj is not None:
                self.apps.setdefault((ns, name), slim(app_obj))
        return app_obj

    async def _parents(self, ns: str, view: JobView) -> dict[str, ParentView | None]:
        """The parents as the Job cache shows them, else as last seen before their deletion;
        one missing when that would fail the Job is read afresh first."""
        if view.spec is None:
            return {}
        found = {
            name: self.jobs.parent((ns, name)) or self.departed.get((ns, name))
            for name in view.spec.parents
        }
        grace = self.config.parent_grace_seconds
        if not parents_overdue(view, self.clock(), grace):
            return found
        for name, parent in found.items():
            if parent is not None and (not parent.deleted or parent.state == State.FINISHED):
                continue
            try:
                obj = slim(await self.threads.run(self.kube.get_job, ns, name))
            except NotFoundError:
                continue
            self.metrics.watch.learned((ns, name), resource_version(obj))
            self.jobs.put((ns, name), obj)
            found[name] = parse.parent_view(obj)
        return found

    def _cycle(self, ns: str, view: JobView, obj: Obj) -> tuple[str, ...]:
        """A dependency cycle through the Job, while it waits for its parents."""
        own = parse.waits_on(obj)
        if not own or (view.status.state is not None and view.status.state.terminal):
            return ()

        def waits_on(name: str) -> tuple[str, ...]:
            if name == view.name:
                return own
            parent = self.jobs.parent((ns, name))
            return parent.waits_on if parent is not None else ()

        return cycle_through(view.name, waits_on)

    async def _mpi_available(self, app: AppView | None) -> bool:
        """Whether the MPI operator is installed, when the App needs it (else True)."""
        if app is None or app.spec is None or app.spec.runtime.type != "MPI":
            return True
        checked_at, value = self._mpi_checked
        if time.monotonic() - checked_at < MPI_CHECK_SECONDS:
            return value
        value = await self.threads.run(self.kube.crd_exists, names.MPIJOB_CRD)
        self._mpi_checked = (time.monotonic(), value)
        return value

    async def _mpijobs(
        self, key: Key, view: JobView, app: AppView | None
    ) -> tuple[MPIJobView, ...]:
        """The MPIJobs labelled with the Job's name, for a Job of an MPI App (as accepted, or
        as the App is now); each of the Job's own with its launcher Job's UID."""
        live_mpi = app is not None and app.spec is not None and app.spec.runtime.type == "MPI"
        if not (runs_mpi(view) or live_mpi):
            return ()
        ns = key[0]
        found = []
        for obj in await self.threads.run(self.kube.list_job_mpijobs, *key):
            parsed = mpijob_view(obj)
            if parsed is None:
                continue
            if parsed.owner_uid == view.uid:
                launcher = await self.threads.run(
                    self.kube.ownership, "batch/Job", ns, names.mpi_launcher_job_name(parsed.name)
                )
                if launcher is not None and launcher.controller_uid == parsed.uid:
                    parsed = dataclasses.replace(parsed, launcher_uid=launcher.uid)
            if parsed.awaiting_admission:
                # Held by Kueue: its Workload says why (only read for a suspended MPIJob).
                workloads = await self.threads.run(self.kube.list_workloads, ns, parsed.uid)
                parsed = dataclasses.replace(parsed, admission=kueue.admission_words(workloads))
            found.append(parsed)
        return tuple(found)

    async def _pod_views(self, key: Key, pods: list[PodView], now: datetime) -> tuple[PodView, ...]:
        """The pods as the decision sees them: those this process deleted marked deleting,
        and a pod slow to start with its Warning Events."""
        deleting = self.pods.deleting(key)
        views = [dataclasses.replace(v, deleting=True) if v.name in deleting else v for v in pods]
        grace = self.config.pod_start_grace_seconds
        for i, v in enumerate(views):
            if v.gated and v.live and not v.deleting:
                # Held by Kueue's gate: its Workload says why (only read for a gated pod).
                workloads = await self.threads.run(self.kube.list_workloads, key[0], v.uid)
                views[i] = dataclasses.replace(v, admission=kueue.admission_words(workloads))
            elif slow_to_start(v, now, grace):
                # Why it does not start is only in its Events (FailedMount, ...).
                events = await self.threads.run(self.kube.pod_warnings, key[0], v.name, v.uid)
                views[i] = dataclasses.replace(v, warnings=pod_warnings(events))
        return tuple(views)
