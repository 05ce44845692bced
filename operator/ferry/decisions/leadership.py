"""Leader election over a coordination.k8s.io Lease: pure decisions, the clocks passed in.

Owns: what a `LeaseRecord` means to one operator process — whether to create the Lease, take
it over, renew it or wait (`next_step`), the record to write for that step (`written`), when a
Lease held by another process has expired (by this process's own monotonic clock, measured from
when it last saw the record change, so that clocks of different machines never compare), and
whether a leader that could not renew must stop acting (`still_leading`: the renew deadline is
shorter than the Lease duration, so a leader stops before anyone may take over). Must not: do
I/O, read a clock itself, or know the Kubernetes client.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class LeaseRecord:
    """The fields of a Lease's spec that leader election reads and writes."""

    holder: str
    duration_seconds: int
    acquire_time: datetime | None = None
    renew_time: datetime | None = None
    transitions: int = 0
    #: The Lease's resourceVersion when read ("" for a record not yet written): every write
    #: changes it, so an unchanged record means nobody renewed in between.
    version: str = ""


@dataclass(frozen=True)
class Seen:
    """The Lease as this process last saw it change, and when (its monotonic clock)."""

    record: LeaseRecord | None
    since: float


class Step(enum.Enum):
    CREATE = "create"  # no Lease yet
    TAKE = "take"  # free (released) or expired: become the holder
    RENEW = "renew"  # this process holds it
    WAIT = "wait"  # another process holds it and has renewed within its duration


def seen(previous: Seen | None, record: LeaseRecord | None, now: float) -> Seen:
    """The new observation: `since` moves only when the record changed (any write to the Lease
    changes its resourceVersion) or first appears."""
    if previous is not None and previous.record == record:
        return previous
    return Seen(record, now)


def expired(observed: Seen, now: float) -> bool:
    """The holder has not renewed for its whole duration, as this process saw it."""
    record = observed.record
    return record is not None and now - observed.since >= record.duration_seconds


def next_step(identity: str, observed: Seen, now: float) -> Step:
    record = observed.record
    if record is None:
        return Step.CREATE
    if record.holder == identity:
        return Step.RENEW
    if not record.holder or expired(observed, now):
        return Step.TAKE
    return Step.WAIT


def written(
    identity: str, step: Step, current: LeaseRecord | None, wall: datetime, duration: int
) -> LeaseRecord:
    """The record to write for `step` (not WAIT), with `current`'s version for the lock."""
    if step is Step.WAIT:
        raise ValueError("nothing is written while waiting")
    if step is Step.RENEW and current is not None:
        return dataclasses.replace(current, renew_time=wall, duration_seconds=duration)
    transitions = 0 if current is None else current.transitions + 1
    return LeaseRecord(
        holder=identity,
        duration_seconds=duration,
        acquire_time=wall,
        renew_time=wall,
        transitions=transitions,
        version="" if current is None else current.version,
    )


def released(current: LeaseRecord, wall: datetime) -> LeaseRecord:
    """The record a leader that stops writes: no holder, so a standby takes it at once."""
    return dataclasses.replace(current, holder="", duration_seconds=1, renew_time=wall)


def still_leading(last_renewed: float | None, now: float, renew_deadline: float) -> bool:
    """A leader acts only while its last successful renewal is within the renew deadline."""
    return last_renewed is not None and now - last_renewed < renew_deadline
