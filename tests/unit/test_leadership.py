"""Leader election: the pure decisions (`ferry.decisions.leadership`) table by table, and the
`Elector` loop over an in-memory Lease with injected clocks (becoming leader, a standby
waiting then taking over an expired Lease, a leader that cannot renew stopping before the
Lease expires, release on a clean stop)."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime

import pytest

from ferry.config import OperatorConfig
from ferry.decisions.leadership import (
    LeaseRecord,
    Seen,
    Step,
    expired,
    next_step,
    released,
    seen,
    still_leading,
    written,
)
from ferry.handlers.leader import Elector

pytestmark = pytest.mark.unit

T0 = datetime(2025, 1, 1, tzinfo=UTC)
T1 = datetime(2025, 1, 1, 0, 0, 5, tzinfo=UTC)


def rec(holder: str = "b", renew: datetime = T0, version: str = "1") -> LeaseRecord:
    return LeaseRecord(holder, 15, T0, renew, 0, version)


@pytest.mark.parametrize(
    ("record", "since", "now", "step"),
    [
        (None, 0.0, 0.0, Step.CREATE),
        (rec("a"), 0.0, 100.0, Step.RENEW),  # mine, however old
        (rec(""), 0.0, 0.0, Step.TAKE),  # released
        (rec("b"), 0.0, 14.9, Step.WAIT),  # another's, within its duration
        (rec("b"), 0.0, 15.0, Step.TAKE),  # another's, not renewed for its duration
        (rec("b"), 10.0, 20.0, Step.WAIT),  # seen renewed at 10: still valid at 20
    ],
)
def test_next_step(record: LeaseRecord | None, since: float, now: float, step: Step) -> None:
    assert next_step("a", Seen(record, since), now) is step


def test_seen_moves_only_when_the_record_changes() -> None:
    first = seen(None, rec(), 1.0)
    assert first.since == 1.0
    # The same record read again: the clock does not restart.
    assert seen(first, rec(), 9.0).since == 1.0
    # A write restarts it (a renewal changes the version even at the same renewTime), as
    # does a new holder.
    assert seen(first, rec(version="7"), 9.0).since == 9.0
    assert seen(first, rec(renew=T1, version="8"), 9.0).since == 9.0
    assert seen(first, rec(holder="c"), 9.0).since == 9.0
    assert seen(seen(None, None, 2.0), None, 5.0).since == 2.0
    assert not expired(Seen(None, 0.0), 1000.0)


def test_written_records() -> None:
    created = written("a", Step.CREATE, None, T1, 15)
    assert (created.holder, created.transitions, created.acquire_time) == ("a", 0, T1)
    taken = written("a", Step.TAKE, rec("b", version="4"), T1, 15)
    assert (taken.holder, taken.transitions, taken.version, taken.acquire_time) == ("a", 1, "4", T1)
    renewed = written("a", Step.RENEW, rec("a", version="5"), T1, 15)
    assert (renewed.renew_time, renewed.acquire_time, renewed.version) == (T1, T0, "5")
    with pytest.raises(ValueError, match="nothing is written"):
        written("a", Step.WAIT, rec(), T1, 15)
    free = released(rec("a"), T1)
    assert free.holder == ""
    assert next_step("b", Seen(free, 0.0), 0.0) is Step.TAKE


def test_still_leading() -> None:
    assert not still_leading(None, 0.0, 10.0)
    assert still_leading(5.0, 14.9, 10.0)
    assert not still_leading(5.0, 15.0, 10.0)


def test_lease_timing_must_stop_the_leader_before_a_standby_takes_over() -> None:
    with pytest.raises(ValueError, match="retry < renew deadline < duration"):
        OperatorConfig(lease_duration_seconds=10, lease_renew_deadline_seconds=10)
    with pytest.raises(ValueError, match="retry < renew deadline < duration"):
        OperatorConfig(lease_retry_seconds=10)
    assert OperatorConfig().lease_renew_deadline_seconds < OperatorConfig().lease_duration_seconds


# --------------------------------------------------------------------------- the Elector


class FakeLease:
    """One Lease in memory with optimistic locking; `down` makes every call fail."""

    def __init__(self) -> None:
        self.record: LeaseRecord | None = None
        self.version = 0
        self.down = False

    def get(self) -> LeaseRecord | None:
        if self.down:
            raise OSError("apiserver unreachable")
        return self.record

    def _store(self, record: LeaseRecord) -> bool:
        self.version += 1
        self.record = dataclasses.replace(record, version=str(self.version))
        return True

    def create(self, record: LeaseRecord) -> bool:
        if self.down:
            raise OSError("apiserver unreachable")
        return self.record is None and self._store(record)

    def update(self, record: LeaseRecord) -> bool:
        if self.down:
            raise OSError("apiserver unreachable")
        if self.record is None or record.version != self.record.version:
            return False
        return self._store(record)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def elector(lease: FakeLease, identity: str, clock: Clock, events: list[str]) -> Elector:
    async def start() -> None:
        events.append(f"{identity} start")

    async def stop() -> None:
        events.append(f"{identity} stop")

    return Elector(
        lease,
        identity,
        duration=15,
        renew_deadline=10,
        retry=2,
        on_start=start,
        on_stop=stop,
        monotonic=clock,
        wall=lambda: T0,
    )


def test_one_leader_a_waiting_standby_and_a_takeover_after_the_duration() -> None:
    lease, clock, events = FakeLease(), Clock(), list[str]()
    a, b = elector(lease, "a", clock, events), elector(lease, "b", clock, events)

    async def scenario() -> None:
        await a.round()
        await b.round()
        assert events == ["a start"]
        assert a.leading
        assert not b.leading
        # a renews every 2 s; b never takes over while it does.
        for _ in range(20):
            clock.now += 2
            await a.round()
            await b.round()
        assert events == ["a start"]
        assert lease.record is not None
        assert lease.record.holder == "a"
        # a dies (no more rounds): b waits the Lease's duration from the last renewal it saw.
        died = clock.now
        while "b start" not in events:
            clock.now += 1
            await b.round()
        assert clock.now - died == 15
        assert events == ["a start", "b start"]
        assert lease.record.holder == "b"
        assert lease.record.transitions == 1

    asyncio.run(scenario())


def test_a_leader_that_cannot_renew_stops_before_the_lease_expires() -> None:
    lease, clock, events = FakeLease(), Clock(), list[str]()
    a = elector(lease, "a", clock, events)

    async def scenario() -> None:
        await a.round()
        lease.down = True
        while not a.lost:
            clock.now += 2
            await a.round()
        assert events == ["a start", "a stop"]
        assert clock.now == 10  # the renew deadline, before the 15 s a standby waits
        await a.release()  # no longer leading: nothing to release

    asyncio.run(scenario())


def test_release_hands_over_at_once() -> None:
    lease, clock, events = FakeLease(), Clock(), list[str]()
    a, b = elector(lease, "a", clock, events), elector(lease, "b", clock, events)

    async def scenario() -> None:
        await a.round()
        await b.round()
        await a.release()
        assert lease.record is not None
        assert lease.record.holder == ""
        await b.round()
        assert events == ["a start", "b start"]

    asyncio.run(scenario())
