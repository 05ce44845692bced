"""Posting the operator's Events, off the workers that reconcile Jobs.

Owns: the queue of Events owed (about a Job as written, or as observed) and the one task that
posts them in order, each through the client's rate limit like any routine call. A worker hands
an Event over and goes on to the next Job at once: in a burst, when every routine call waits
its turn, a worker no longer waits for an Event's turn while Jobs whose pods have ended wait
for a worker (the Job controller's event recorder is asynchronous for the same reason). Events
stay best effort, as Kubernetes' own are: one the apiserver refuses is dropped (the client's
`post_event`), one whose call raises is logged and counted, at most `MAX_PENDING` wait (more
are dropped and counted), and those still waiting when the operator stops acting (shutdown,
leadership lost) are dropped and counted, never posted by a process that no longer acts.
`ferry_events_pending` says how many wait. Must not: decide which Events to post (the plans do)
or post one before its Job's status was written (the executor hands it over only then).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ferry.api import names
from ferry.clients.protocol import KubeAPI
from ferry.handlers.threads import ApiThreads

log = logging.getLogger("ferry.events")

Obj = dict[str, Any]

#: At most this many Events wait; more are dropped (a flood must not grow memory without end).
MAX_PENDING = 10_000


@dataclass(frozen=True)
class Owed:
    """One Event to post about `about` (a reference to the object as written or observed)."""

    about: Obj
    type: str
    reason: str
    message: str


class Teller:
    """`tell` queues an Event; one task (started by the first) posts them in order, until
    `stop`."""

    def __init__(
        self,
        kube: KubeAPI,
        threads: ApiThreads,
        on_drop: Callable[[int], None] = lambda n: None,
        max_pending: int = MAX_PENDING,
    ) -> None:
        self.kube = kube
        self.threads = threads
        #: Told how many Events were dropped (the dropped-Events counter).
        self.on_drop = on_drop
        self.max_pending = max_pending
        self._owed: deque[Owed] = deque()
        self._ready = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._stopped = False

    def __len__(self) -> int:
        """Events owed: waiting, and the one being posted."""
        return len(self._owed) + (0 if self._idle.is_set() else 1)

    def tell(self, about: Obj, type_: str, reason: str, message: str) -> None:
        """Queue an Event (from the event loop's thread)."""
        if self._stopped or len(self._owed) >= self.max_pending:
            self.on_drop(1)
            log.warning(
                "Event %s about %s dropped: %d already wait", reason, _name(about), len(self)
            )
            return
        self._owed.append(Owed(reference(about), type_, reason, message))
        self._idle.clear()
        self._ready.set()
        if self._task is None:
            self._task = asyncio.create_task(self._post_all(), name="ferry-events")

    async def drain(self) -> None:
        """Until every Event told so far is posted (or dropped)."""
        await self._idle.wait()

    async def stop(self) -> None:
        """Stop posting: the Events still waiting are dropped (this process no longer acts),
        and so is any told later."""
        self._stopped = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        dropped = len(self._owed)
        self._owed.clear()
        self._idle.set()
        if dropped:
            self.on_drop(dropped)
            log.info("%d Event(s) not posted: the operator stopped acting", dropped)

    async def _post_all(self) -> None:
        while True:
            if not self._owed:
                self._idle.set()
                self._ready.clear()
                await self._ready.wait()
                continue
            owed = self._owed.popleft()
            try:
                await self.threads.run(
                    self.kube.post_event,
                    owed.about,
                    owed.type,
                    owed.reason,
                    owed.message,
                    names.COMPONENT,
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # best effort: an Event never stops the ones after it
                self.on_drop(1)
                log.warning("Event %s about %s not posted: %s", owed.reason, _name(owed.about), exc)


def reference(obj: Obj) -> Obj:
    """What an Event needs of the object it is about (its involvedObject): kept instead of the
    whole object, which may be a status write's answer with managedFields (kilobytes, times
    the thousands of Events owed in a burst)."""
    meta = obj.get("metadata") or {}
    return {
        "apiVersion": obj.get("apiVersion"),
        "kind": obj.get("kind"),
        "metadata": {
            k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion") if k in meta
        },
    }


def _name(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"
