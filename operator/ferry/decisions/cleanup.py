"""Cleanup: a terminal Job releases what it holds, a cancelled one stops, a TTL deletes it.

Owns: the terminal pass (re-deriving the recorded state and releasing children), releasing a
Job's children (workspaces first, then pods and MPIJobs), cancellation (not waiting for a pod
stuck Terminating past `FERRY_POD_TERMINATING_GRACE_SECONDS`), and `ttlSecondsAfterFinished`.
Works on every child the observation lists (run and archive pods of any runner, MPIJobs,
workspaces), so it needs no App and no runner. The pods an MPIJob made go with their MPIJob
(deleted alone, the MPI Operator would make them again). Must not: change a terminal state.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from ferry.api.job import State
from ferry.api.reasons import Reason
from ferry.decisions.observation import (
    Observation,
    PodView,
    stuck_terminating,
    terminating_until,
)
from ferry.decisions.plan import Action, DeleteJob, DeleteObject, Draft, Event


def terminal(obs: Observation) -> Draft:
    """A recorded terminal state stays; its children are released, its TTL kept."""
    st = obs.job.status
    assert st.state is not None
    draft = Draft(st.state, st.reason or st.state.value, st.message or "")
    release(obs, draft)
    if st.completion_time is not None:
        expire(obs, draft, st.completion_time)
    return draft


def cancel(obs: Observation) -> Draft:
    """spec.cancel: stop every pod and MPIJob still standing, then Cancelled. A pod stuck
    Terminating past the grace (its node lost) is not waited for: an Event says so."""
    grace = obs.config.pod_terminating_grace_seconds
    live = [p for p in _own_pods(obs) if p.live]
    stuck = [p for p in live if stuck_terminating(p, obs.now, grace)]
    if len(stuck) == len(live) and not obs.mpijobs:
        draft = Draft(State.CANCELLED, Reason.CANCELLED, "cancelled through spec.cancel")
        if stuck:
            names_ = ", ".join(p.name for p in stuck)
            draft.events.append(
                Event(
                    "Warning",
                    Reason.POD_STUCK_TERMINATING,
                    f"pod(s) {names_} still Terminating {int(grace)}s past their grace period "
                    "(their node may be lost); no longer waited for",
                )
            )
        return draft
    what = [f"{len(live)} pod(s)"] if live else []
    what += [f"MPIJob {m.name}" for m in obs.mpijobs]
    draft = Draft(State.CANCELLING, Reason.CANCEL_REQUESTED, f"stopping {', '.join(what)}")
    draft.actions += [DeleteObject("Pod", p.name, p.uid) for p in live if not p.deleting]
    draft.actions += _mpijob_deletes(obs)
    due = [t for p in live if (t := terminating_until(p, grace)) is not None]
    if due:
        draft.requeue_after = max((min(due) - obs.now).total_seconds(), 0.0)
    return draft


def _own_pods(obs: Observation) -> list[PodView]:
    """The pods the Job made itself (not those its MPIJobs made)."""
    return [p for p in obs.pods if p.owner_uid == obs.job.uid]


def _mpijob_deletes(obs: Observation) -> list[DeleteObject]:
    return [DeleteObject("MPIJob", m.name, m.uid) for m in obs.mpijobs if not m.deleting]


def release(obs: Observation, draft: Draft) -> None:
    """Delete the Job's pods and workspaces.

    Finished pods go too: a pod that mounts a workspace, even one that has ended, keeps the
    PVC's `kubernetes.io/pvc-protection` finalizer, so the workspace (and its volume) would
    stay Terminating until the Job itself is deleted. The app's output is archived
    (logs/app.log) before a Job ends.

    Workspaces come first: a pass cut short then leaves pods behind, whose watch events bring
    the Job back for another release, never a workspace nobody looks at again."""
    targeted = {a.name for a in draft.actions if isinstance(a, DeleteObject)}
    workspaces: list[Action] = [DeleteObject("PersistentVolumeClaim", p) for p in sorted(obs.pvcs)]
    draft.actions[:0] = workspaces
    # Without a workspace nothing is pinned: ended pods stay for `kubectl logs`.
    pinning = obs.job.spec is None or obs.job.spec.uses_workspace
    for pod in _own_pods(obs):
        if not pod.deleting and pod.name not in targeted and (pod.live or pinning):
            draft.actions.append(DeleteObject("Pod", pod.name, pod.uid))
    stopping = {a.name for a in draft.actions if isinstance(a, DeleteObject) and a.kind == "MPIJob"}
    draft.actions += [a for a in _mpijob_deletes(obs) if a.name not in stopping]


def expire(obs: Observation, draft: Draft, ended: datetime, recorded: bool = True) -> None:
    """ttlSecondsAfterFinished: delete the Job when due, else come back then. A Job is never
    deleted in the pass that ends it (`recorded` False): its terminal state is written first,
    for the watchers of the Job and its children, and the next pass deletes it."""
    spec = obs.job.spec
    if spec is None or spec.ttl_seconds_after_finished is None:
        return
    due = ended + timedelta(seconds=spec.ttl_seconds_after_finished)
    if obs.now >= due and recorded:
        draft.actions.append(DeleteJob())
    else:
        draft.requeue_after = max((due - obs.now).total_seconds(), 0.0)
