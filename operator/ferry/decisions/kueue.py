"""Kueue: what a queued run's Workload says, and what a preemption means for the Job.

Owns: reading Kueue's Workloads (as the apiserver returns them) into the words a Job waiting
for admission shows (`admission_words`: the QuotaReserved or Admitted condition's message),
the message of a run waiting in its queue (`waiting`), and the policy for a run pod Kueue
stopped (`preempted`): requeued without cost, as Kueue intends — a new attempt at once, not
counted against `retry.infraFailures`, the stopped attempt recorded as Preempted with a
Warning Event. A preempted MPIJob is suspended again by Kueue and simply waits again (its
runner reads it as AwaitingAdmission). Must not: fetch Workloads (the handlers do, only for a
gated pod or a suspended MPIJob) or read pods (the runners do).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from ferry.api.common import parse_time
from ferry.api.job import State
from ferry.api.reasons import Reason
from ferry.decisions import attempts, records, staging
from ferry.decisions.context import Ctx
from ferry.decisions.plan import Changes, Draft, Event
from ferry.decisions.runner import RunView

#: How often a Job waiting for Kueue's admission reads its Workload again (Kueue's words
#: change as the queue moves; Workloads are not watched).
ADMISSION_RECHECK_SECONDS = 10.0
#: What a queued run shows when Kueue is not installed (no Workload CRD).
KUEUE_MISSING = "Kueue is not installed (no Workload CRD): nothing will admit it"
#: How soon a Job looks again while Kueue has not said anything yet (its Workload not made,
#: or not evaluated): its first words come a moment after the pod.
UNDECIDED_RECHECK_SECONDS = 2.0
#: What a queued run shows before Kueue made its Workload.
NO_WORKLOAD = "Kueue has not made its Workload yet"
#: What it shows while its Workload has no verdict yet.
NO_VERDICT = "queued; Kueue has not said more yet"


def admission_words(workloads: Sequence[Mapping[str, Any]] | None) -> str:
    """Kueue's words about the newest of a run object's Workloads: why it is not admitted
    (its QuotaReserved condition's message while it has no quota, else its Admitted
    condition's, e.g. admission checks pending). None means Kueue is not installed."""
    if workloads is None:
        return KUEUE_MISSING
    if not workloads:
        return NO_WORKLOAD
    oldest = datetime.min.replace(tzinfo=UTC)
    newest = max(
        workloads,
        key=lambda w: parse_time((w.get("metadata") or {}).get("creationTimestamp")) or oldest,
    )
    conditions = {
        str(c.get("type")): c
        for c in (newest.get("status") or {}).get("conditions") or []
        if isinstance(c, Mapping)
    }
    for type_ in ("QuotaReserved", "Admitted"):
        cond = conditions.get(type_)
        if cond is not None and cond.get("status") != "True" and cond.get("message"):
            return str(cond["message"])
    admitted = conditions.get("Admitted")
    if admitted is not None and admitted.get("status") == "True":
        return "admitted; Kueue is releasing it"
    return NO_VERDICT


def recheck_after(message: str) -> float:
    """When a Job waiting for admission reads its Workload again: soon while Kueue has not
    said anything yet, then every ADMISSION_RECHECK_SECONDS."""
    if message.endswith((NO_WORKLOAD, NO_VERDICT)):
        return UNDECIDED_RECHECK_SECONDS
    return ADMISSION_RECHECK_SECONDS


def waiting(noun: str, name: str, queue: str, words: str) -> str:
    """The message of a run held for Kueue's admission."""
    text = f"{noun} {name} waits for Kueue to admit it (queue {queue or '?'})"
    return f"{text}: {words}" if words else text


def preempted(ctx: Ctx, view: RunView) -> Draft:
    """Kueue stopped the current attempt's run pod: queue a new attempt at once, not counted
    against retry.infraFailures (Kueue decided to give its quota to another workload; the
    app did nothing wrong and the platform did not fail). The stopped attempt's pod and
    workspace go (its outputs are not archived: its app was killed midway)."""
    n = ctx.attempt
    message = (
        f"attempt {n}: {view.message}; queued again as attempt {n + 1} (not counted against "
        "retry.infraFailures)"
    )
    draft = attempts.start(ctx, n + 1, State.QUEUED, Reason.PREEMPTED, message)
    if draft.state != State.QUEUED:  # blocked from starting (a name taken, ...): as it says
        return draft
    record = records.attempt_record(
        n, view, Reason.PREEMPTED, None, view.started_at, view.finished_at
    )
    draft.changes = draft.changes.then(Changes(attempts=records.appended(ctx.status, record)))
    draft.actions += staging.release(ctx, n)
    draft.events.append(Event("Warning", Reason.PREEMPTED, message))
    return draft
