"""The status a plan records: history, timestamps, Events and the seven conditions.

Owns: folding a finished `Draft` into the new `JobStatus` (one write per observed change:
`Plan.changed` is False when nothing differs), and the conditions of DESIGN.md section 1,
derived from the state. Must not: choose the state (the lifecycle does).
"""

from __future__ import annotations

from typing import Literal

from ferry.api.common import ConditionStatus
from ferry.api.job import MAX_HISTORY, ConditionType, HistoryEntry, JobStatus, State
from ferry.api.reasons import NOT_ACCEPTED, Reason
from ferry.decisions.conditions import set_condition, truncate
from ferry.decisions.observation import Observation
from ferry.decisions.plan import CondValue, Draft, Event, Plan

WARNING_STATES = frozenset(
    {State.FAILED, State.TIMED_OUT, State.BLOCKED, State.RETRYING, State.CANCELLED}
)
#: The routine steps of a Job going well: recorded in status.history and the conditions, but
#: no Event each. A Job without trouble gets one Event (its outcome), Warnings come for every
#: bad state; an Event is an API write, and the four routine ones were over half of the
#: operator's writes per Job (docs/benchmarks.md).
QUIET_STATES = frozenset({State.QUEUED, State.STAGING_INPUTS, State.RUNNING, State.ARCHIVING})


def finalize(obs: Observation, draft: Draft) -> Plan:
    job = obs.job
    st = job.status
    now = obs.now
    updates = draft.changes.set()
    message = truncate(draft.message)
    history = list(st.history)
    events: list[Event] = []
    if draft.state != st.state:
        history += sorted(
            (p for p in draft.passed if p.state not in (st.state, draft.state)),
            key=lambda p: p.time,
        )
        history.append(
            HistoryEntry(
                state=draft.state, time=now, reason=draft.reason, message=truncate(message, 1024)
            )
        )
        history = history[-MAX_HISTORY:]
        kind: Literal["Normal", "Warning"] = (
            "Warning" if draft.state in WARNING_STATES else "Normal"
        )
        if draft.state not in QUIET_STATES:
            events.append(Event(kind, draft.reason, f"{draft.state.value}: {message}"))
    events += draft.events
    updates.update(
        state=draft.state,
        reason=draft.reason,
        message=message,
        observed_generation=job.generation,
        history=history,
        submit_time=st.submit_time or job.creation_time,
    )
    if draft.state.terminal and st.completion_time is None:
        updates["completion_time"] = now
    merged = st.model_copy(update=updates)
    conditions = list(merged.conditions)
    for type_, (status, reason, msg) in conditions_for(merged, draft).items():
        conditions, _ = set_condition(conditions, type_, status, reason, msg, now, job.generation)
    merged = merged.model_copy(update={"conditions": conditions})
    changed = merged != st
    return Plan(
        status=merged,
        changed=changed,
        actions=tuple(draft.actions),
        events=tuple(events),
        requeue_after=draft.requeue_after,
    )


def conditions_for(st: JobStatus, draft: Draft) -> dict[str, CondValue]:
    state = draft.state
    reason = draft.reason
    message = truncate(draft.message)
    true, false, unknown = ConditionStatus.TRUE, ConditionStatus.FALSE, ConditionStatus.UNKNOWN
    out: dict[str, CondValue] = {}
    if st.app is not None:
        out[ConditionType.ACCEPTED] = (
            true,
            Reason.ACCEPTED.value,
            f"App {st.app.name} {st.app.version} ({st.app.spec_hash})".replace("  ", " "),
        )
    elif reason in NOT_ACCEPTED:
        out[ConditionType.ACCEPTED] = (false, reason, message)
    elif state == State.CANCELLED:
        out[ConditionType.ACCEPTED] = (
            false,
            Reason.CANCELLED.value,
            "cancelled before it was accepted",
        )
    else:
        out[ConditionType.ACCEPTED] = (unknown, Reason.PENDING.value, "not evaluated yet")

    def keep(type_: ConditionType, new: CondValue | None) -> CondValue:
        if new is not None:
            return new
        old = st.condition(type_.value)
        if old is not None:
            return (old.status, old.reason, old.message)
        return (unknown, Reason.PENDING.value, "not started")

    out[ConditionType.INPUTS_STAGED] = keep(ConditionType.INPUTS_STAGED, draft.inputs_staged)
    out[ConditionType.ARCHIVED] = keep(ConditionType.ARCHIVED, draft.archived)
    if state == State.FINISHED:
        out[ConditionType.SUCCEEDED] = (true, reason, message)
    elif state.terminal:
        out[ConditionType.SUCCEEDED] = (false, reason, message)
    else:
        out[ConditionType.SUCCEEDED] = (unknown, state.value, message)
    out[ConditionType.RECONCILING] = (
        (false, reason, message) if state.terminal else (true, state.value, message)
    )
    stalled = state in (State.FAILED, State.TIMED_OUT, State.CANCELLED)
    out[ConditionType.STALLED] = (true, reason, message) if stalled else (false, state.value, "")
    out[ConditionType.READY] = (
        (true, reason, message) if state == State.FINISHED else (false, state.value, message)
    )
    return out
