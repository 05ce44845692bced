"""Parents: the gate before a Job's first attempt, and what the Job remembers of them.

Owns: whether `spec.parents` let the first attempt start (every parent Finished, as seen now
or as remembered in `status.parents`); the records of parents seen Finished, so that a
parent deleted afterwards (`ttlSecondsAfterFinished`, by hand) still counts as Finished and
its outputs can still be staged; and the three ways a Job fails on its parents: a parent that
ended other than Finished (ParentFailed), a parent that does not exist
`FERRY_PARENT_GRACE_SECONDS` after the Job was created (ParentNotFound: never created, or
deleted before it finished), a dependency cycle (DependencyCycle). Also `cycle_through`, the
cycle search the handlers run over the Job cache. Records are written with a status write the
Job makes anyway (its message changes when a parent finishes, its first attempt starts when
the last one does): a Job without parents never writes for them. Must not: start an attempt
(`attempts` does) or know where the parents' views come from.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta

from ferry.api.job import State
from ferry.api.job_status import ParentRecord
from ferry.api.reasons import Reason
from ferry.decisions.context import Ctx
from ferry.decisions.observation import ParentView
from ferry.decisions.plan import Changes, Draft, format_duration

#: The most Jobs a cycle search visits (a cycle longer than that is not reported).
CYCLE_SEARCH_LIMIT = 10_000


def gate(ctx: Ctx) -> Draft | Changes:
    """A Draft while the parents do not let the first attempt start (waiting, or failed on
    them); once they do, the records of the parents seen Finished for the first time."""
    st = ctx.status
    remembered = {r.name for r in st.parents}
    seen: list[ParentRecord] = []
    waiting: list[str] = []
    failed: list[str] = []
    absent: list[str] = []
    for name in ctx.spec.parents:
        if name in remembered:
            continue
        parent = ctx.obs.parents.get(name)
        if parent is None:
            absent.append(f"{name} (not found)")
        elif parent.state == State.FINISHED:
            seen.append(ParentRecord(name=name, outputs_uri=parent.outputs_uri, store=parent.store))
        elif parent.deleted:
            absent.append(f"{name} (deleted while {_state(parent)})")
        elif parent.state is not None and parent.state.terminal:
            failed.append(f"{name} ({parent.state.value}: {parent.reason})")
        else:
            waiting.append(f"{name} ({_state(parent)})")
    changes = Changes(parents=[*st.parents, *seen]) if seen else Changes()
    if ctx.obs.cycle:  # before a failed parent: it may be one of the cycle, failed first
        message = (
            "dependency cycle in spec.parents: "
            + " → ".join(ctx.obs.cycle)
            + " (each waits for the next to finish, so none can start)"
        )
        return Draft(State.FAILED, Reason.DEPENDENCY_CYCLE, message).after(changes)
    if failed:
        message = "parent(s) did not finish: " + ", ".join(failed)
        return Draft(State.FAILED, Reason.PARENT_FAILED, message).after(changes)
    grace = ctx.config.parent_grace_seconds
    deadline = ctx.obs.job.creation_time + timedelta(seconds=grace)
    if absent and ctx.now >= deadline:
        message = (
            "parent(s) missing: "
            + ", ".join(absent)
            + f"; a parent must exist within {format_duration(grace)} of the Job's creation "
            "and stay until it finished"
        )
        return Draft(State.FAILED, Reason.PARENT_NOT_FOUND, message).after(changes)
    if waiting or absent:
        message = "waiting for " + ", ".join(_in_spec_order(ctx.spec.parents, waiting + absent))
        requeue = ctx.config.resync_seconds
        if absent:
            message += f"; fails at {deadline:%Y-%m-%dT%H:%M:%SZ} if a parent is still missing"
            requeue = min(requeue, (deadline - ctx.now).total_seconds())
        draft = Draft(State.AWAITING_PARENTS, Reason.AWAITING_PARENTS, message).after(changes)
        draft.requeue_after = requeue
        return draft
    return changes


def _state(parent: ParentView) -> str:
    return parent.state.value if parent.state else State.PENDING.value


def _in_spec_order(parents: Sequence[str], entries: list[str]) -> list[str]:
    order = {name: i for i, name in enumerate(parents)}
    return sorted(entries, key=lambda e: order.get(e.split(" ", 1)[0], len(order)))


def finished(ctx: Ctx) -> Mapping[str, ParentView | None]:
    """The parents as jobOutput inputs resolve them: as seen now, and those remembered as
    Finished as they were then (the Job that finished, even if deleted or replaced since)."""
    out: dict[str, ParentView | None] = dict(ctx.obs.parents)
    for r in ctx.status.parents:
        out[r.name] = ParentView(
            name=r.name, state=State.FINISHED, outputs_uri=r.outputs_uri, store=r.store
        )
    return out


def cycle_through(
    start: str, waits_on: Callable[[str], Sequence[str]], limit: int = CYCLE_SEARCH_LIMIT
) -> tuple[str, ...]:
    """The shortest cycle of "waits for" edges through `start` (its name first and last: a,
    b, a; a Job naming itself: a, a), or () when there is none within `limit` Jobs."""
    came_from: dict[str, str] = {}
    queue = deque([start])
    seen = {start}
    while queue and len(seen) <= limit:
        node = queue.popleft()
        for parent in waits_on(node):
            if parent == start:
                path = [node]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return (*reversed(path), start)
            if parent not in seen:
                seen.add(parent)
                came_from[parent] = node
                queue.append(parent)
    return ()
