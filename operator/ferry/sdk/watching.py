"""Waiting on Jobs with watches: read once, then follow the watch from that resourceVersion
until a predicate holds, starting over (a fresh read) when the watch ends or expires.

Owns: the watch loop for one Job, for a set of Jobs selected by label, and for one pod (a
run pod's app container starting), and what a failed end means to a waiter. Must not: poll
in a sleep loop or decide Job states.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ferry.clients.user import UserKube, WatchExpiredError
from ferry.sdk import query
from ferry.sdk.errors import JobFailedError, NotFoundError, WaitTimeoutError

Obj = dict[str, Any]
#: A watch is renewed at least this often, so a deadline is never overshot by much.
WATCH_SECONDS = 60


def _secs(seconds: float | None) -> str:
    value = seconds or 0.0
    return f"{round(value)}s" if value >= 0.95 else f"{value:.1f}s"


def _remaining(deadline: float | None) -> int:
    if deadline is None:
        return WATCH_SECONDS
    left = deadline - time.monotonic()
    if left <= 0:
        return 0
    return max(1, min(WATCH_SECONDS, int(left + 0.999)))


def until(
    kube: UserKube,
    namespace: str,
    name: str,
    predicate: Callable[[Obj], bool],
    timeout: float | None,
) -> Obj:
    """The Job, as soon as predicate(job) holds; WaitTimeoutError after `timeout` seconds."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        obj = kube.get("Job", namespace, name)
        if predicate(obj):
            return obj
        rv = obj["metadata"]["resourceVersion"]
        seconds = _remaining(deadline)
        if seconds == 0:
            raise WaitTimeoutError(
                f"Job {name} is still {query.state_of(obj) or 'Pending'} after {_secs(timeout)}"
            )
        try:
            for kind, event in kube.watch("Job", namespace, rv, name=name, timeout_seconds=seconds):
                if kind == "DELETED":
                    raise NotFoundError(f"Job {namespace}/{name} was deleted")
                if kind in ("ADDED", "MODIFIED") and predicate(event):
                    return event
                if deadline is not None and time.monotonic() >= deadline:
                    break
        except WatchExpiredError:
            continue


def pod_until(
    kube: UserKube,
    namespace: str,
    name: str,
    predicate: Callable[[Obj], bool],
    timeout: float | None,
) -> Obj | None:
    """The pod, as soon as predicate(pod) holds; None when it does not exist or is deleted
    meanwhile, or `timeout` seconds have passed."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        pod = kube.pod_exists(namespace, name)
        if pod is None or predicate(pod):
            return pod
        seconds = _remaining(deadline)
        if seconds == 0:
            return None
        rv = pod["metadata"]["resourceVersion"]
        try:
            for kind, event in kube.watch("Pod", namespace, rv, name=name, timeout_seconds=seconds):
                if kind == "DELETED":
                    return None
                if kind in ("ADDED", "MODIFIED") and predicate(event):
                    return event
                if deadline is not None and time.monotonic() >= deadline:
                    return None
        except WatchExpiredError:
            continue


def until_all(
    kube: UserKube,
    namespace: str,
    label_selector: str,
    predicate: Callable[[Obj], bool],
    timeout: float | None,
    on_change: Callable[[list[Obj]], None] | None = None,
) -> list[Obj]:
    """Every Job matching the selector, once predicate holds for all of them."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        listed = kube.list_objects("Job", namespace, label_selector)
        jobs = {o["metadata"]["name"]: o for o in listed.get("items") or []}
        if on_change is not None:
            on_change(list(jobs.values()))
        if jobs and all(predicate(o) for o in jobs.values()):
            return query.newest_first(jobs.values())
        if not jobs:
            raise NotFoundError(f"no Jobs with {label_selector} in {namespace}")
        rv = listed["metadata"]["resourceVersion"]
        seconds = _remaining(deadline)
        if seconds == 0:
            counts = query.counts_by_state(jobs.values())
            shown = ", ".join(f"{n} {s}" for s, n in counts.items())
            raise WaitTimeoutError(
                f"{label_selector}: not all ended after {_secs(timeout)} ({shown})"
            )
        try:
            for kind, event in kube.watch(
                "Job", namespace, rv, label_selector=label_selector, timeout_seconds=seconds
            ):
                if kind not in ("ADDED", "MODIFIED", "DELETED"):
                    continue
                name = event["metadata"]["name"]
                if kind == "DELETED":
                    jobs.pop(name, None)
                else:
                    jobs[name] = event
                if on_change is not None:
                    on_change(list(jobs.values()))
                if jobs and all(predicate(o) for o in jobs.values()):
                    return query.newest_first(jobs.values())
                if deadline is not None and time.monotonic() >= deadline:
                    break
        except WatchExpiredError:
            continue


def raise_if_failed(jobs: Iterable[Obj]) -> None:
    """JobFailedError naming the Jobs that ended other than Finished."""
    bad = [o for o in jobs if query.is_terminal(o) and query.state_of(o) != "Finished"]
    if not bad:
        return
    first = bad[0]
    st = first.get("status") or {}
    text = (
        f"Job {first['metadata']['name']} ended {st.get('state')} ({st.get('reason')}): "
        f"{' '.join(str(st.get('message', '')).split())}"
    )
    if len(bad) > 1:
        text += f" (and {len(bad) - 1} more)"
    raise JobFailedError(text, first)


def changes(
    kube: UserKube,
    namespace: str | None,
    label_selector: str = "",
    name: str = "",
) -> Iterator[Obj]:
    """Every later version of the Jobs selected (forever; the caller stops iterating)."""
    while True:
        if name and namespace:
            obj = kube.get("Job", namespace, name)
            rv = obj["metadata"]["resourceVersion"]
        else:
            rv = kube.list_objects("Job", namespace, label_selector)["metadata"]["resourceVersion"]
        try:
            while True:
                for kind, event in kube.watch(
                    "Job", namespace, rv, name=name, label_selector=label_selector
                ):
                    rv = event.get("metadata", {}).get("resourceVersion", rv)
                    if kind in ("ADDED", "MODIFIED", "DELETED"):
                        yield event
        except WatchExpiredError:
            continue
