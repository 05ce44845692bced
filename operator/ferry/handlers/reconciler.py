"""The Job reconciler: a work queue of Jobs, each pass observe → decide → execute.

Owns: turning watch events into queued Job keys (only events that tell something new: a newer
Job version than the one Ferry wrote itself, a pod whose view changed; a Job's progress is
urgent, a new Job's first pass routine; pod progress within `PROGRESS_BATCH_SECONDS` is
looked at in one pass), the workers that take keys off the queue (a lost optimistic lock
drops the cached Job and repeats the pass at once; any other failure is retried in 5 s), and
one pass: `observe.Observer` builds the observation from the caches (`JobCache`, `PodCache`,
the Apps, the last views of deleted parents in `Departed`) and the API,
`ferry.decisions.lifecycle.decide` makes the plan, and `execute.Executor` applies it in the
order that keeps a killed operator right (creates, one status write, deletes, Events) and says
when to look again. Also the liveness probe's judgement of the Job watch (`stale_watch_keys`).
Must not: decide anything itself, or talk to the API other than through the observer and the
executor (and the App status, and the probe's one read).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from ferry.clients.protocol import ConflictError, KubeAPI, NotFoundError
from ferry.config import OperatorConfig
from ferry.decisions import lifecycle, parse
from ferry.decisions.observation import prompt_change
from ferry.handlers.appstatus import record_app_status
from ferry.handlers.departed import Departed
from ferry.handlers.execute import Executor
from ferry.handlers.jobcache import JobCache, Key, Obj, app_name, resource_version
from ferry.handlers.metrics import Metrics
from ferry.handlers.observe import Later, Observer
from ferry.handlers.podcache import PodCache
from ferry.handlers.threads import ApiThreads
from ferry.handlers.workqueue import WorkQueue
from ferry.runners import RUNNERS

log = logging.getLogger("ferry.reconciler")

#: Pod progress (scheduled, started) seen within this time is recorded in one pass.
PROGRESS_BATCH_SECONDS = 1.0
#: How long a pass that failed (other than on a conflict) waits to be tried again.
RETRY_SECONDS = 5.0


def utcnow() -> datetime:
    return datetime.now(UTC)


class Reconciler:
    def __init__(
        self,
        kube: KubeAPI,
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
        self.pods = PodCache()
        self.queue: WorkQueue[Key] = WorkQueue()
        self.threads = ApiThreads(config.workers * 2)
        self.tasks: list[asyncio.Task[None]] = []
        #: Acting (workers running, App statuses written): from `start` to `stop`.
        self.active = False
        self.metrics = metrics or Metrics()
        self.metrics.attach(self.jobs.states, kube.calls.counts)
        self.queue.on_wait = self.metrics.observe_queue_wait
        #: Deleted parents' last views, for their children (`departed.Departed`).
        self.departed = Departed()
        self.observer = Observer(
            kube,
            config,
            clock,
            self.jobs,
            self.pods,
            self.apps,
            self.threads,
            self.metrics,
            self.departed,
        )
        self.executor = Executor(kube, config, self.jobs, self.pods, self.threads, self.metrics)

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Start acting: the pods listed, the workers started, the Apps' statuses recorded.
        Until then (a standby) watch events only fill the caches and the queue."""
        for pod in await self.threads.run(self.kube.list_managed_pods, self.config.namespaces):
            self.metrics.observe_container_summaries([pod])
            self.pods.put(None, pod)
        self.active = True
        for i in range(self.config.workers):
            self.tasks.append(asyncio.create_task(self._worker(), name=f"ferry-worker-{i}"))
        for app in list(self.apps.values()):
            await self.reconcile_app(app)

    async def stop(self) -> None:
        self.active = False
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.queue.close()
        self.threads.shutdown()

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
                self.enqueue(key, RETRY_SECONDS)
            finally:
                self.metrics.reconcile_seconds.observe(time.monotonic() - started)
                self.queue.done(key)

    # ---------------------------------------------------------------- watch events

    def job_event(self, kind: str | None, obj: Obj) -> None:
        meta = obj.get("metadata", {})
        key = (meta.get("namespace", ""), meta.get("name", ""))
        parents = (obj.get("spec") or {}).get("parents") or []
        if kind == "DELETED":
            self.metrics.watch.deleted(key)
            self.jobs.drop(key)
            for parent in parents:
                self.children.get((key[0], parent), set()).discard(key)
            if self.children.get(key):
                # A parent gone: its children may not have seen it Finished yet.
                self.departed.remember(key, parse.parent_view(obj))
            self.queue.forget(key)
            self.pods.forget_refusals(key)
        else:
            self.metrics.watch.delivered(key, resource_version(obj))
            self.departed.forget(key)
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
        change = self.pods.put(kind, obj)
        if change is None:
            return
        key, before, after = change.job, change.before, change.after
        meta = obj.get("metadata", {})
        if kind != "DELETED" and not meta.get("deletionTimestamp"):
            self.pods.mark_stray(key)
        if kind == "ADDED" and change.expected and after is not None:
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

    def _children_of(self, key: Key) -> list[Key]:
        return [
            child
            for child in self.children.get(key, ())
            if child in self.jobs and not self.jobs.terminal(child)
        ]

    # ---------------------------------------------------------------- one pass

    async def reconcile(self, key: Key) -> None:
        """One pass over the Job: observe, decide, execute; then look again when told."""
        observed = await self.observer.observe(key)
        if observed is None:
            return
        if isinstance(observed, Later):
            self.enqueue(key, observed.delay)
            return
        plan = lifecycle.decide(observed.observation, RUNNERS)
        job = observed.observation.job
        delay = await self.executor.execute(key, observed.obj, job, plan)
        if delay is not None:
            self.enqueue(key, delay)

    # ---------------------------------------------------------------- health

    async def stale_watch_keys(self) -> list[Key]:
        """Jobs whose version this process learned outside the Job watch (its own status
        writes, Jobs read afresh) and that the watch has not delivered within the grace period:
        non-empty means the watch has stopped delivering. Judged over every Job from memory;
        only when some look stale is one read, so that an apiserver that does not answer
        raises (the probe then says it could not check) instead of failing the probe."""
        stale = self.metrics.watch.stale()
        if stale:
            with contextlib.suppress(NotFoundError):  # deleted: a live watch would have said so
                await self.threads.run(self.kube.get_job, *stale[0])
        return stale

    # ---------------------------------------------------------------- apps

    async def reconcile_app(self, obj: Obj) -> None:
        """Record whether the App is usable (Ready) and why not (only while acting)."""
        if not self.active:
            return
        await record_app_status(self.kube, self.threads, obj, self.clock())
