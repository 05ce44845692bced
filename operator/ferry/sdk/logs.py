"""`Client.logs`: the app's output, live while its run pod exists, archived after.

Owns: choosing the source of an attempt's log — the run pod's app container (the Job's own,
followed from when the container starts, not from when the Job's status says Running) while
the pod exists (followed to its end with `follow`, then on to the next attempt if the Job
retries), else `logs/app.log` in the attempt's archive (the operator deletes the run pod when
the Job ends) — so a reader never sees the same attempt twice. Must not: print.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ferry.api import names
from ferry.decisions.observation import controller_uid
from ferry.sdk import query, watching
from ferry.sdk.errors import NotFoundError, WaitTimeoutError
from ferry.sdk.outputs import attempt_uri, split_uri
from ferry.sdk.translate import translated

if TYPE_CHECKING:
    from ferry.sdk.client import Client

Obj = dict[str, Any]


def _app_started(pod: Obj | None) -> bool:
    """Whether the run pod's app container has started (so it has a log to read)."""
    if pod is None:
        return False
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == names.APP_CONTAINER:
            state = status.get("state") or {}
            return "running" in state or "terminated" in state
    return False


def _attempt(obj: Obj) -> int | None:
    value = (obj.get("status") or {}).get("attempt")
    return int(value) if value else None


#: While a Job's status names no attempt yet, its first run pod is looked for this often (the
#: operator may hold routine progress a few seconds: docs/architecture.md, "Record").
FIRST_POD_LOOK_SECONDS = 2.0


def _ours(pod: Obj | None, job: Obj) -> Obj | None:
    """The pod, if the Job controls it (a pod someone else made with its name is not read)."""
    if pod is None:
        return None
    uid = job.get("metadata", {}).get("uid")
    return pod if uid and controller_uid(pod.get("metadata") or {}) == uid else None


def _first_attempt(client: Client, namespace: str, name: str, obj: Obj) -> tuple[Obj, int | None]:
    """The Job and the attempt to read first: from its status, or from attempt 1's run pod
    while the status does not name it yet; None when the Job ended without running."""
    kube = client.kube
    while True:
        if _attempt(obj) or query.is_terminal(obj):
            return obj, _attempt(obj)
        if _ours(kube.pod_exists(namespace, names.run_pod_name(name, 1)), obj) is not None:
            return obj, 1
        try:
            obj = watching.until(
                kube,
                namespace,
                name,
                lambda o: bool(_attempt(o)) or query.is_terminal(o),
                FIRST_POD_LOOK_SECONDS,
            )
        except WaitTimeoutError:
            obj = kube.get("Job", namespace, name)


def stream(
    client: Client, name: str, namespace: str, follow: bool, attempt: int | None
) -> Iterator[str]:
    kube = client.kube
    with translated():
        obj = kube.get("Job", namespace, name)
        want = attempt or _attempt(obj)
        if want is None:
            if not follow:
                state = query.state_of(obj) or "Pending"
                raise NotFoundError(f"Job {name} has no log yet: it is {state}")
            obj, want = _first_attempt(client, namespace, name, obj)
            if want is None:
                raise NotFoundError(f"Job {name} ended {query.state_of(obj)} without running")
        while True:
            pod_name = names.run_pod_name(name, want)
            pod = _ours(kube.pod_exists(namespace, pod_name), obj)
            live = pod is not None and not (query.is_terminal(obj) and _archived(obj))
            if pod is None and not query.is_terminal(obj) and (_attempt(obj) or 0) <= want:
                # Between the run pod and the archive (Archiving): the log is on its way.
                if not follow:
                    raise NotFoundError(
                        f"Job {name} is {query.state_of(obj)}: its log is not archived yet"
                    )
                obj = watching.until(
                    kube,
                    namespace,
                    name,
                    _past(want),
                    None,
                )
                continue
            if live and not _app_started(pod):
                if not follow:
                    raise NotFoundError(
                        f"Job {name} is {query.state_of(obj)}: its app has not started yet"
                    )
                # Followed on the pod itself: the Job's status may say Running a little
                # later than the container starts (routine progress can be held).
                watching.pod_until(kube, namespace, pod_name, _app_started, None)
                obj = kube.get("Job", namespace, name)
                continue
            if live:
                yield from kube.pod_log(namespace, pod_name, names.APP_CONTAINER, follow=follow)
                if not follow or attempt is not None:
                    return
                obj = watching.until(
                    kube,
                    namespace,
                    name,
                    _past(want),
                    None,
                )
                if query.is_terminal(obj) or (_attempt(obj) or 0) <= want:
                    return
                want = _attempt(obj) or want
                continue
            yield from _archived_log(client, obj, want)
            return


def _past(attempt: int) -> Callable[[Obj], bool]:
    """Whether the Job has ended or gone on to a later attempt than `attempt`."""
    return lambda o: query.is_terminal(o) or (_attempt(o) or 0) > attempt


def _archived(obj: Obj) -> bool:
    return bool(((obj.get("status") or {}).get("outputs") or {}).get("uri"))


def _archived_log(client: Client, obj: Obj, attempt: int) -> Iterator[str]:
    name = obj["metadata"]["name"]
    uri = (((obj.get("status") or {}).get("outputs")) or {}).get("uri")
    if not uri:
        raise NotFoundError(
            f"Job {name} attempt {attempt}: the run pod is gone and nothing was archived"
        )
    bucket, prefix = split_uri(attempt_uri(uri, attempt))
    try:
        data = client.store.get_bytes(bucket, prefix + names.ARCHIVE_LOG)
    except NotFoundError:
        raise NotFoundError(
            f"Job {name} attempt {attempt} archived no {names.ARCHIVE_LOG} (an App without "
            "`command` keeps its output in the pod only)"
        ) from None
    yield from data.decode("utf-8", "replace").splitlines(keepends=True)
