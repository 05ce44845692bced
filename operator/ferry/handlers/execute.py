"""Carrying out one Job's `Plan`, in the order that keeps a killed operator right.

Owns: applying a plan to the API. First the creates (idempotent: deterministic names,
AlreadyExists is fine), then one status write with optimistic locking (on the resourceVersion
the observation was made of; a conflict propagates, and the pass is repeated from a fresh
read), then the deletes (NotFound is fine), then the plan's Events, handed to the `Teller` only
once the write succeeded (posted after the pass: a worker never waits for an Event's turn in
the client's rate limit). Creating before recording and deleting after recording is what keeps
a killed operator right: a child is never recorded before it exists, and the evidence a
decision rested on (a finished run pod) is never gone before the decision is recorded. A
`DeleteJob` ends the pass after the creates before it. Also: the pods created and deleted, as
expectations in the pod cache; the written Job, kept in the Job cache so that its own watch
event is no news; and when to look at the Job again: when the plan says, at least every resync
while not terminal, else never (a terminal Job with nothing released is put at rest). And
holding: a status that only records routine progress (`ferry.decisions.holding.routine`) is not
written at once but held in the Job cache for up to `status_hold_seconds` from the first status
held (`status_hold_busy_seconds` while busy: the client's rate limit holds calls back, or more
Jobs wait in the queue than there are workers), then written with whatever the Job has come to
by then (one write for Queued → Running → Finished when that happens within the time). Must
not: decide what to do (`lifecycle.decide` does), or read the API.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Literal

from ferry.clients.protocol import KubeAPI, NotFoundError, RefusedError
from ferry.config import OperatorConfig
from ferry.decisions import holding, parse
from ferry.decisions.lifecycle import CreateObject, DeleteJob, DeleteObject, Event, Plan
from ferry.decisions.observation import JobView
from ferry.handlers.jobcache import JobCache, Key, Obj, resource_version
from ferry.handlers.metrics import Metrics
from ferry.handlers.podcache import PodCache
from ferry.handlers.tell import Teller
from ferry.handlers.threads import ApiThreads

log = logging.getLogger("ferry.reconciler")

#: The Events' source.
#: The shortest delay before a Job is looked at again.
MIN_REQUEUE_SECONDS = 0.05


def look_again_in(plan: Plan, resync_seconds: float) -> float | None:
    """Seconds until the Job should be looked at again: when the plan says, and at least every
    `resync_seconds` while it is not terminal; None for not at all."""
    delay = plan.requeue_after
    if not plan.state.terminal:
        delay = min(delay, resync_seconds) if delay is not None else resync_seconds
    return max(delay, MIN_REQUEUE_SECONDS) if delay is not None else None


class Executor:
    """Applies plans; shares the caches the watch events fill."""

    def __init__(
        self,
        kube: KubeAPI,
        config: OperatorConfig,
        jobs: JobCache,
        pods: PodCache,
        threads: ApiThreads,
        metrics: Metrics,
        teller: Teller,
        monotonic: Callable[[], float] = time.monotonic,
        backlog: Callable[[], int] = lambda: 0,
    ) -> None:
        self.kube = kube
        #: Posts the plans' Events, off this pass.
        self.teller = teller
        self.monotonic = monotonic
        #: How many Jobs wait in the work queue.
        self.backlog = backlog
        self.config = config
        self.jobs = jobs
        self.pods = pods
        self.threads = threads
        self.metrics = metrics

    async def execute(self, key: Key, obj: Obj, job: JobView, plan: Plan) -> float | None:
        """Apply `plan`, decided for `job` as observed in `obj`: the seconds after which to
        look at the Job again, None for not (it was deleted, or is at rest now)."""
        created = await self._create(key, job, plan)
        if created == "deleted":
            return None
        if created == "held":
            # A name this plan needed is held by another object: nothing is recorded, and the
            # next pass decides with that known (Blocked/NameTaken).
            return MIN_REQUEUE_SECONDS
        hold_for = self._hold(key, obj, job, plan)
        try:
            written = None
            if hold_for is None and (plan.changed or self.jobs.held(key) is not None):
                written = await self._record(key, obj, job, plan)
        except NotFoundError:
            # The Job is gone (its DELETED event not seen yet, or lost in a watch gap): it is
            # deleted for this process too, and never worked on again.
            log.info("Job %s/%s: gone when its status was written: deleted", *key)
            self.jobs.delete(key, obj)
            return None
        if plan.changed and (written is not None or hold_for is not None):
            self._decided(key, job, plan)
        await self._delete(key, job, plan)
        if written is not None:
            self._tell(written, plan.events)
        self._tell(obj, plan.notices)
        delay = look_again_in(plan, self.config.resync_seconds)
        if hold_for is not None:
            delay = max(min(delay or hold_for, hold_for), MIN_REQUEUE_SECONDS)
        if delay is None and not any(isinstance(a, DeleteObject) for a in plan.actions):
            # Terminal, no TTL due, nothing released now (a release's pod events bring one
            # more pass, which finds nothing to do): at rest until the Job changes.
            self.jobs.rest(key)
        return delay

    async def _create(
        self, key: Key, job: JobView, plan: Plan
    ) -> Literal["done", "deleted", "held"]:
        """The plan's creates, in order: "deleted" when it deletes the Job instead (the
        creates before that are made, nothing after), "held" when a name it needs exists and
        is not the Job's (nothing after it is made)."""
        ns, name = key
        for action in plan.actions:
            if isinstance(action, CreateObject):
                try:
                    made = await self.threads.run(self.kube.create, action.manifest)
                except RefusedError as exc:
                    # Nothing after it is made and nothing is recorded: the next pass
                    # decides with the apiserver's words known (Blocked/CreateRefused).
                    self.pods.note_refused(key, action.kind, action.name, str(exc))
                    log.warning(
                        "Job %s/%s: the apiserver refused %s %s: %s",
                        ns,
                        name,
                        action.kind,
                        action.name,
                        exc,
                    )
                    return "held"
                if not made and not await self._ours(key, job, action.kind, action.name):
                    return "held"
                self.pods.forget_refusals(key, f"{action.kind}/{action.name}")
                if action.kind == "Pod":
                    self.pods.expect_created(key, action.name)
                if made:
                    log.info("Job %s/%s: created %s %s", ns, name, action.kind, action.name)
            elif isinstance(action, DeleteJob):
                log.info("Job %s/%s: ttlSecondsAfterFinished elapsed; deleting the Job", ns, name)
                await self.threads.run(self.kube.delete_job, ns, name, job.uid)
                return "deleted"
        return "done"

    def _hold(self, key: Key, obj: Obj, job: JobView, plan: Plan) -> float | None:
        """Hold the plan's status instead of writing it, when it is routine progress and the
        first status held for the Job is younger than `status_hold_seconds` (or, while the
        client's rate limit holds calls back, `status_hold_busy_seconds`): the seconds until
        it is looked at again; None to write now (or nothing to write)."""
        held = self.jobs.held(key)
        if held is not None and (obj.get("status") or {}) != held.status:
            self.jobs.release(key)  # the Job was read without it: decided afresh from the API
            held = None
        if not plan.changed and held is None:
            return None
        hold = self.config.status_hold_seconds
        if hold <= 0:
            return None
        written = held.written if held is not None else (obj.get("status") or {})
        now = self.monotonic()
        since = held.since if held is not None else now
        left = since + hold - now
        if left <= 0 and (self.kube.busy() or self.backlog() >= self.config.workers):
            # Busy (the client's rate limit holds calls back, or more Jobs wait than there are
            # workers): the client's rate goes to pods and outcomes. Looked at again when the
            # longer hold ends (or sooner, on the Job's next change), not in between: a pass
            # that finds the client still busy would cost CPU and write nothing.
            left = since + self.config.status_hold_busy_seconds - now
        if left <= 0 or not holding.routine(parse.status_of(written), plan):
            return None
        if not self.jobs.hold(key, plan.status.wire(), written, since):
            return None  # not kept whole: written now rather than neither held nor written
        return left

    async def _ours(self, key: Key, job: JobView, kind: str, name: str) -> bool:
        """Whether the object that already had this name is the Job's own (made by an earlier
        pass); one made by anything else is never adopted."""
        found = await self.threads.run(self.kube.ownership, kind, key[0], name)
        if found is not None and found.controller_uid == job.uid:
            return True
        if found is not None:
            self.pods.note_foreign(key, kind, name)
            log.warning(
                "Job %s/%s: %s %s exists and is not this Job's (controller %r); not adopted",
                *key,
                kind,
                name,
                found.controller_uid,
            )
        return False

    async def _record(self, key: Key, obj: Obj, job: JobView, plan: Plan) -> Obj:
        """The one status write, locked on `obj`'s resourceVersion: the Job as written."""
        written = await self.threads.run(self.kube.replace_status, "jobs", obj, plan.status.wire())
        # The watch must deliver this version (the liveness probe checks that it does).
        self.metrics.watch.learned(key, resource_version(written))
        # Kept as the newest version, so that this write's own watch event is no news.
        self.jobs.release(key)
        self.jobs.put(key, written)
        return written

    def _decided(self, key: Key, job: JobView, plan: Plan) -> None:
        """A status change recorded (written, or held): its metrics and log line, once."""
        self.metrics.observe_status(job.status, plan.status)
        if plan.status.state != job.status.state:
            state = plan.status.state.value if plan.status.state else ""
            self.metrics.transitions.labels(state, plan.status.reason or "").inc()
            log.info(
                "Job %s/%s: %s -> %s (%s) %s",
                *key,
                job.status.state.value if job.status.state else "-",
                state,
                plan.status.reason,
                plan.status.message,
            )

    async def _delete(self, key: Key, job: JobView, plan: Plan) -> None:
        ns, name = key
        for action in plan.actions:
            if isinstance(action, DeleteObject):
                uid = action.uid
                if not uid:
                    # Not watched (a workspace): deleted only if it is the Job's own.
                    found = await self.threads.run(
                        self.kube.ownership, action.kind, ns, action.name
                    )
                    if found is None or found.controller_uid != job.uid:
                        continue
                    uid = found.uid
                gone = await self.threads.run(self.kube.delete, action.kind, ns, action.name, uid)
                if action.kind == "Pod" and gone:
                    self.pods.expect_deleted(key, action.name)
                if gone:
                    log.info("Job %s/%s: deleted %s %s", ns, name, action.kind, action.name)

    def _tell(self, about: Obj, events: tuple[Event, ...]) -> None:
        """Events about the Job (as written, for the plan's events), handed to the teller:
        posted after this pass, in order, without the worker waiting for them."""
        for event in events:
            self.teller.tell(about, event.type, event.reason, event.message)
