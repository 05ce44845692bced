"""Outages: a store or input server that is down is waited out, not turned into a failure.

Owns: telling an outage from a failure by the stager's exit code (`names.EXIT_UNAVAILABLE`:
unreachable, timing out, answering 5xx; a refusal such as bad credentials, a missing bucket or a
404 exits 1), the record of an outage in `status.outage` (when it was first met, the tries that
met it, when to try again), the backoff between tries (`FERRY_OUTAGE_BACKOFF_SECONDS` doubling
to `FERRY_OUTAGE_BACKOFF_MAX_SECONDS`), the deadline (`FERRY_OUTAGE_DEADLINE_SECONDS` after it
was first met), and the sentences that say so. Must not: decide what is tried again or how
(archiving and staging do), or read the clock (the observation's time is passed in).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from ferry.api.job_status import JobStatus, Outage, OutagePhase
from ferry.api.names import EXIT_UNAVAILABLE
from ferry.config import OperatorConfig
from ferry.decisions.plan import format_duration


def is_outage(exit_code: int | None) -> bool:
    """Whether a stager's exit code says its store or input server was unavailable."""
    return exit_code == EXIT_UNAVAILABLE


def backoff(config: OperatorConfig, tries: int) -> float:
    """Seconds to wait after the `tries`-th try that met the outage: the first backoff,
    doubling with each try, capped."""
    first = config.outage_backoff_seconds
    return float(min(config.outage_backoff_max_seconds, first * 2 ** min(max(tries - 1, 0), 30)))


def recorded(status: JobStatus, phase: OutagePhase, attempt: int | None = None) -> Outage | None:
    """The outage the status records for `phase` (and `attempt`, when given)."""
    outage = status.outage
    if outage is None or outage.phase != phase:
        return None
    if attempt is not None and outage.attempt != attempt:
        return None
    return outage


@dataclass(frozen=True)
class Seen:
    """An outage as a pass sees it: its record, and whether this pass counted a new try."""

    outage: Outage
    counted_now: bool

    def expired(self, config: OperatorConfig, now: datetime) -> bool:
        """Past the outage deadline (checked when a try has just met it again)."""
        return self.counted_now and now >= deadline(self.outage, config)

    @property
    def first(self) -> bool:
        """This pass met the outage for the first time (a Warning Event says so, once)."""
        return self.counted_now and self.outage.tries == 1

    def left(self, now: datetime) -> float:
        """Seconds until the next try."""
        return max(0.0, (self.outage.retry_time - now).total_seconds())


def count(
    known: Outage | None,
    phase: OutagePhase,
    attempt: int,
    try_: int,
    began: datetime | None,
    config: OperatorConfig,
    now: datetime,
) -> Seen:
    """Try `try_` (an archive try, or an attempt for staging) met the outage: counted once,
    however many passes see it. `began`: when that try started, if known (the outage was met
    from then on; a first try's start is when it was first met)."""
    if known is not None and known.counted == try_ and known.attempt == attempt:
        return Seen(known, counted_now=False)
    tries = (known.tries if known is not None else 0) + 1
    since = known.since if known is not None else min(began or now, now)
    outage = Outage(
        phase=phase,
        attempt=attempt,
        since=since,
        tries=tries,
        counted=try_,
        retry_time=now + timedelta(seconds=backoff(config, tries)),
    )
    return Seen(outage, counted_now=True)


def deadline(outage: Outage, config: OperatorConfig) -> datetime:
    return outage.since + timedelta(seconds=config.outage_deadline_seconds)


def stamp(when: datetime) -> str:
    """A time as messages show it: 2026-12-02T08:40:00Z."""
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def waiting(outage: Outage, config: OperatorConfig, next_try: str) -> str:
    """ "unavailable since T (2 tries); <next try> at T2; waited out until T3". Stable from
    pass to pass (no countdown), so that waiting writes nothing."""
    tries = f"{outage.tries} tr{'y' if outage.tries == 1 else 'ies'}"
    return (
        f"unavailable since {stamp(outage.since)} ({tries}); {next_try} at "
        f"{stamp(outage.retry_time)}; waited out until {stamp(deadline(outage, config))}"
    )


def gave_up(outage: Outage, config: OperatorConfig, now: datetime) -> str:
    """ "unreachable since T: 14 tries over 6h0m0s, past FERRY_OUTAGE_DEADLINE_SECONDS (6h0m0s)"."""
    tries = f"{outage.tries} tr{'y' if outage.tries == 1 else 'ies'}"
    return (
        f"unreachable since {stamp(outage.since)}: {tries} over "
        f"{format_duration((now - outage.since).total_seconds())}, past "
        f"FERRY_OUTAGE_DEADLINE_SECONDS ({format_duration(config.outage_deadline_seconds)})"
    )
