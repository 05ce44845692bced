"""The Job reconciler: a work queue of Jobs, each pass observe → decide → execute.

Owns: turning watch events into queued Job keys (the Job and pod informers' items, handed
over to the event loop in order; a listing's end drops what it lacked, as deletions; only
events that tell something new: a newer Job version than the one Ferry wrote itself, a pod
whose view changed; a Job's progress is urgent, a new Job's first pass routine; pod progress
within `PROGRESS_BATCH_SECONDS` is looked at in one pass), the workers that take keys off the
queue (a lost optimistic lock drops the cached Job and repeats the pass at once; any other
failure is retried in 5 s), and one pass: `observe.Observer` builds the observation from the
caches (`JobCache`, `PodCache`, the Apps, the last views of deleted parents in `Departed`) and
the API, `ferry.decisions.lifecycle.decide` makes the plan, and `execute.Executor` applies it
in the order that keeps a killed operator right (creates, one status write, deletes, Events)
and says when to look again. Also the liveness probe's judgement of the Job watch
(`stale_watch_keys`). Must not: decide anything itself, or talk to the API other than through
the observer and the executor (and the App status, and the probe's one read).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from ferry.clients.protocol import (
    ConflictError,
    Deliver,
    KubeAPI,
    NotFoundError,
    Relisted,
    Watch,
    WatchEvent,
)
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
from ferry.handlers.tell import Teller
from ferry.handlers.threads import ApiThreads
from ferry.handlers.workqueue import WorkQueue, routine_limit_for
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
        self.queue: WorkQueue[Key] = WorkQueue(routine_limit=routine_limit_for(config.workers))
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
        #: Posts the Events the passes owe, off the workers.
        self.teller = Teller(kube, self.threads, on_drop=self.metrics.events_dropped.inc)
        self.metrics.events_pending.set_function(lambda: len(self.teller))
        self.executor = Executor(
            kube,
            config,
            self.jobs,
            self.pods,
            self.threads,
            self.metrics,
            teller=self.teller,
            backlog=lambda: len(self.queue),
        )
        #: The informers feeding the caches (`watch`), and whether each resource was listed.
        self.watches: list[Watch] = []
        self.synced = {"jobs": asyncio.Event(), "pods": asyncio.Event()}
        self._listings: dict[str, int] = {}

    # ---------------------------------------------------------------- informers

    def feed(self, resource: str) -> Deliver:
        """Where the informer of `resource` ("jobs" or "pods") hands its items, from its own
        thread: onto the event loop, in order, waiting until they are taken in (so that a
        listing of 10,000 Jobs is held one page at a time, never all at once)."""
        loop = asyncio.get_running_loop()
        receive = self.job_items if resource == "jobs" else self.pod_items
        owner = threading.get_ident()

        def deliver(items: Sequence[WatchEvent | Relisted]) -> None:
            if threading.get_ident() == owner:
                receive(items)  # on the loop's own thread already
                return
            taken = threading.Event()

            def take() -> None:
                try:
                    receive(items)
                finally:
                    taken.set()

            loop.call_soon_threadsafe(take)
            while not taken.wait(1.0):
                if loop.is_closed() or not loop.is_running():
                    return

        return deliver

    def watch(self, watches: Sequence[Watch]) -> None:
        """Start the informers (a standby runs them too, to keep its caches warm)."""
        self.watches = list(watches)
        for w in watches:
            w.start()

    def relist(self) -> None:
        """List every watched resource again now, as after an expired watch: what vanished
        meanwhile is dropped as deleted (SIGUSR1 asks for this, and so can a test)."""
        for w in self.watches:
            w.relist()

    def job_items(self, items: Sequence[WatchEvent | Relisted]) -> None:
        for item in items:
            if isinstance(item, Relisted):
                self.jobs_relisted(item)
            else:
                self.job_event(item.kind, item.obj)

    def pod_items(self, items: Sequence[WatchEvent | Relisted]) -> None:
        for item in items:
            if isinstance(item, Relisted):
                self.pods_relisted(item)
            else:
                self.pod_event(item.kind, item.obj)

    def jobs_relisted(self, done: Relisted) -> None:
        """A listing of Jobs is over: the Jobs it lacks are gone (their DELETED events fell in
        the gap the listing closes)."""
        self.metrics.relists.labels("jobs", done.cause).inc()
        for key, obj in self.jobs.relisted(done.resource_version, done.names, done.namespace):
            self.metrics.tombstones.labels("jobs").inc()
            log.info("Job %s/%s: gone from a listing: deleted", *key)
            self._job_gone(key, obj)
        self._listed("jobs", done)

    def pods_relisted(self, done: Relisted) -> None:
        """A listing of pods is over: the pods it lacks are gone."""
        self.metrics.relists.labels("pods", done.cause).inc()
        for change in self.pods.relisted(done.resource_version, done.names, done.namespace):
            self.metrics.tombstones.labels("pods").inc()
            self.enqueue(change.job, urgent=True)
        self._listed("pods", done)

    def _listed(self, resource: str, done: Relisted) -> None:
        # One listing per namespace watched (one for all without FERRY_NAMESPACES).
        if done.cause == "start":
            self._listings[resource] = self._listings.get(resource, 0) + 1
        if self._listings.get(resource, 0) >= max(len(self.config.namespaces), 1):
            self.synced[resource].set()

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Start acting once the Jobs and pods are listed: the workers started, the Apps'
        statuses recorded. Until then (a standby) watch events only fill the caches and the
        queue."""
        if self.watches:
            await self.synced["pods"].wait()
            await self.synced["jobs"].wait()
        self.active = True
        for i in range(self.config.workers):
            self.tasks.append(asyncio.create_task(self._worker(), name=f"ferry-worker-{i}"))
        for app in list(self.apps.values()):
            await self.reconcile_app(app)

    async def stop(self, drain_seconds: float = 0.0) -> None:
        """Stop acting: the watches, then the workers; the Events still owed are posted for
        up to `drain_seconds` (a clean shutdown), then dropped (never by a process that lost
        the Lease: it stops with 0)."""
        self.active = False
        for w in self.watches:
            await asyncio.to_thread(w.stop)
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if drain_seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.teller.drain(), drain_seconds)
        await self.teller.stop()
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
            # A pass that calls no API (a listed finished Job's) never suspends, nor does
            # `get` while keys are queued: without this, one worker ran a listing's 50,000
            # first passes in one turn of the loop, and watch events (a new Job), Events and
            # the Lease's renewal waited for the last of them.
            await asyncio.sleep(0)

    # ---------------------------------------------------------------- watch events

    def job_event(self, kind: str | None, obj: Obj) -> None:
        meta = obj.get("metadata", {})
        key = (meta.get("namespace", ""), meta.get("name", ""))
        parents = (obj.get("spec") or {}).get("parents") or []
        if kind == "DELETED":
            self.jobs.delete(key, obj)
            self._job_gone(key, obj)
            return
        # Delivered: a version this process wrote or read is no longer awaited (liveness).
        self.metrics.watch.delivered(key, resource_version(obj))
        known = key in self.jobs
        # A listed Job (kind None) is kept packed when terminal, until its pass.
        if not self.jobs.put(key, obj, listed=kind is None):
            return  # nothing new: the version this process wrote, an older one, a deleted one
        self.departed.forget(key)  # a Job of this name (again): the parent from now on
        for parent in parents:
            self.children.setdefault((key[0], parent), set()).add(key)
        # A change to a Job already worked on (a cancel, a suspend) is urgent; a new Job's
        # first pass waits its turn; a finished Job a listing brought waits for both.
        if not known and self.jobs.is_packed(key):
            self.queue.add_idle(key)
        else:
            self.enqueue(key, urgent=known)
        # Children waiting on this Job as a parent look again.
        for child in self._children_of(key):
            self.enqueue(child, urgent=True)

    def _job_gone(self, key: Key, obj: Obj | None) -> None:
        """The Job is deleted (already dropped from the cache): nothing more is done for it,
        and children waiting on it as a parent look again (with its last view, when known:
        they may not have seen it Finished yet)."""
        self.metrics.watch.deleted(key)
        if obj is not None and self.children.get(key):
            self.departed.remember(key, parse.parent_view(obj))
        for parent in ((obj or {}).get("spec") or {}).get("parents") or []:
            self.children.get((key[0], parent), set()).discard(key)
        self.queue.forget(key)
        self.pods.forget_refusals(key)
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
            # shows beyond a new pod's state is (Kueue's gate, added at its creation, is).
            before = dataclasses.replace(
                after,
                phase="Pending",
                deleting=False,
                disruption="",
                init=(),
                main=None,
                gated=False,
                stopped="",
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
