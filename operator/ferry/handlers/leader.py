"""Leader election: the loop that holds the Lease, and the start and stop of acting.

Owns: `Elector`, which every `retry_seconds` reads the Lease, asks
`ferry.decisions.leadership` what to do (create, take over, renew, wait), writes it through the
`LeaseAPI`, calls `on_start` when this process becomes the leader (the reconciler's workers
start; a standby only keeps its watch caches warm) and `on_stop` when it has not renewed within
the renew deadline (the process stops acting and exits; it does not try to lead again), and
releases the Lease on a clean shutdown so that a standby takes over at once. Must not: decide
(the decisions module does) or call the API other than through the `LeaseAPI`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from ferry.clients.protocol import LeaseAPI
from ferry.decisions.leadership import Seen, Step, next_step, released, seen, still_leading, written

log = logging.getLogger("ferry.leader")


def utcnow() -> datetime:
    return datetime.now(UTC)


class Elector:
    """Holds the Lease for `identity`; a standby waits until it is free or expired."""

    def __init__(
        self,
        lease: LeaseAPI,
        identity: str,
        *,
        duration: float,
        renew_deadline: float,
        retry: float,
        on_start: Callable[[], Awaitable[None]],
        on_stop: Callable[[], Awaitable[None]],
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = utcnow,
    ) -> None:
        self.lease = lease
        self.identity = identity
        self.duration = duration
        self.renew_deadline = renew_deadline
        self.retry = retry
        self.on_start = on_start
        self.on_stop = on_stop
        self.monotonic = monotonic
        self.wall = wall
        self.observed: Seen | None = None
        self.last_renewed: float | None = None
        self.leading = False
        self.lost = False

    async def run(self) -> None:
        """Until leadership is lost: one round, then wait `retry` seconds."""
        log.info("Leader election as %s: waiting for the Lease", self.identity)
        while not self.lost:
            await self.round()
            if not self.lost:
                await asyncio.sleep(self.retry)

    async def round(self) -> None:
        """Read the Lease, write what the decision says, then start or stop acting."""
        started = self.monotonic()
        try:
            await self._try(started)
        except Exception as exc:  # an apiserver that cannot be reached: the deadline decides
            log.warning("Leader election: the Lease could not be read or written: %s", exc)
        if self.leading and not still_leading(
            self.last_renewed, self.monotonic(), self.renew_deadline
        ):
            self.leading = False
            self.lost = True
            log.error(
                "Leader election: not renewed within %.0fs; %s stops acting",
                self.renew_deadline,
                self.identity,
            )
            await self.on_stop()
        elif not self.leading and still_leading(
            self.last_renewed, self.monotonic(), self.renew_deadline
        ):
            self.leading = True
            log.info("Leader election: %s leads; starting the reconciler", self.identity)
            await self.on_start()

    async def _try(self, now: float) -> None:
        record = await asyncio.to_thread(self.lease.get)
        self.observed = seen(self.observed, record, now)
        step = next_step(self.identity, self.observed, now)
        if step is Step.WAIT:
            return
        new = written(self.identity, step, record, self.wall(), int(self.duration))
        write = self.lease.create if step is Step.CREATE else self.lease.update
        if await asyncio.to_thread(write, new):
            self.last_renewed = now  # measured before the read: on the safe side
            if step is not Step.RENEW:
                holder = record.holder if record is not None else ""
                log.info("Leader election: %s took the Lease (from %r)", self.identity, holder)

    async def release(self) -> None:
        """On a clean stop: give the Lease up if this process still holds it."""
        if not self.leading:
            return
        self.leading = False
        try:
            record = await asyncio.to_thread(self.lease.get)
            if record is not None and record.holder == self.identity:
                await asyncio.to_thread(self.lease.update, released(record, self.wall()))
                log.info("Leader election: %s released the Lease", self.identity)
        except Exception as exc:
            log.warning("Leader election: the Lease could not be released: %s", exc)
