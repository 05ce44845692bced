"""What a Job's own record says should exist: read from its view alone, before any decision.

Owns: pure predicates over a `JobView` (and the pods seen for it) that tell the handlers what
to gather for an observation: whether the current attempt's run pod, recorded as made, is
missing from the pods seen (so the handlers confirm with a fresh LIST before believing it
lost), which workspace PVCs the Job's attempts made, and whether a parent missing from the
caches would fail the Job now (so the handlers confirm with a GET first). Must not: fetch
anything, or decide the Job's state; `lifecycle.decide` does.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from ferry.api import names
from ferry.api.job import State
from ferry.decisions.observation import JobView, PodView
from ferry.decisions.records import retry_pending


def run_pod_looks_lost(view: JobView, pods: Iterable[PodView]) -> bool:
    """The current attempt's run pod should exist (recorded as made, no outcome yet) but the
    pods seen have none."""
    st = view.status
    if not st.attempt or st.run_outcome is not None or st.state in (None, State.SUSPENDED):
        return False
    if runs_mpi(view):
        # Its run object is an MPIJob, listed afresh on every pass.
        return False
    if st.state.terminal or retry_pending(st):
        return False
    run = names.run_pod_name(view.name, st.attempt)
    return all(p.name != run for p in pods)


def runs_mpi(view: JobView) -> bool:
    """Whether the Job was accepted with an MPI App (its attempts are MPIJobs)."""
    app = view.status.app
    return app is not None and app.spec is not None and app.spec.runtime.type == "MPI"


def workspaces(view: JobView) -> frozenset[str]:
    """The workspace PVCs the Job's attempts made (none when it uses no workspace)."""
    spec = view.spec
    if spec is not None and not spec.uses_workspace:
        return frozenset()
    return frozenset(
        names.workspace_name(view.name, n) for n in range(1, (view.status.attempt or 0) + 1)
    )


def parents_overdue(view: JobView, now: datetime, grace: float) -> bool:
    """Whether a parent not found would fail the Job now: it waits for its first attempt and
    was created more than `grace` seconds ago (before that, a missing parent is waited for)."""
    st = view.status
    if view.spec is None or not view.spec.parents or st.attempt:
        return False
    if st.state is not None and st.state.terminal:
        return False
    return now >= view.creation_time + timedelta(seconds=grace)
