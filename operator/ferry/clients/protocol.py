"""The Kubernetes API as the handlers see it: a typed protocol, without `kubernetes`.

Owns: `KubeAPI`, every read and write the handlers make (the blocking calls the reconciler
runs in worker threads), `LeaseAPI` (the leader-election Lease), `Watch` and what it hands on
(`WatchEvent`, `Relisted`), and the errors those calls raise (`ConflictError`,
`NotFoundError`).
`clients.kube.KubeClient` implements it against a real apiserver; the unit tests' fake
implements it in memory. Must not: import `kubernetes`, or hold any behaviour.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Protocol

from ferry.decisions.leadership import LeaseRecord

Obj = dict[str, Any]


class Ownership(NamedTuple):
    """Who an object is: its own UID, and the UID of its controller ("" without one)."""

    uid: str
    controller_uid: str


class WatchEvent(NamedTuple):
    """One object from a watch: `kind` ADDED, MODIFIED or DELETED, or None for an object of a
    listing."""

    kind: str | None
    obj: Obj


class Relisted(NamedTuple):
    """A listing is over: every object there was at `resource_version` (in `namespace`, or
    everywhere when None) has been handed on since it began, and these are their
    (namespace, name). What a consumer holds of that namespace, at that version or older, and
    not named here was deleted meanwhile (a tombstone). `cause`: "start", "expired" (the
    watch's version was gone) or "asked" (`Watch.relist`)."""

    resource_version: int
    names: frozenset[tuple[str, str]]
    namespace: str | None
    cause: str


#: Where a watch hands its items, in the order the apiserver sent them (from its own thread).
Deliver = Callable[[Sequence[WatchEvent | Relisted]], None]


class Watch(Protocol):
    """A list-then-watch of one resource (`clients.informer.Informer`)."""

    resource: str

    def start(self) -> None: ...

    def relist(self) -> None:
        """List again now, as after an expired watch (tombstones for what vanished)."""
        ...

    def stop(self) -> None: ...


class ConflictError(Exception):
    """The object changed since it was read (optimistic lock lost); read again and retry."""


class NotFoundError(Exception):
    """The object does not exist."""


class RefusedError(Exception):
    """The apiserver refused to create the object (a quota, a LimitRange, Pod Security, an
    admission webhook, an object too large): the message is the apiserver's own."""


class CallCounts(Protocol):
    """API calls made so far, by "verb resource" (for the metrics and the benchmark)."""

    @property
    def counts(self) -> dict[str, int]: ...


class KubeAPI(Protocol):
    """The operator's reads and writes. Every call blocks; "already done" answers
    (AlreadyExists on create, NotFound on delete) are success, not errors."""

    @property
    def calls(self) -> CallCounts: ...

    def busy(self) -> bool:
        """Whether the client's rate limit held a call back within the last second (its
        writes wait their turn: routine progress may wait longer, `handlers.execute`)."""
        ...

    # ---------------------------------------------------------------- reads

    def get_job(self, namespace: str, name: str) -> Obj:
        """The Job; NotFoundError when it does not exist."""
        ...

    def get_app(self, namespace: str, name: str) -> Obj | None:
        """The App, or None when it does not exist."""
        ...

    def list_job_pods(self, namespace: str, job: str) -> list[Obj]:
        """The Job's pods, read from the apiserver (never a stale cache)."""
        ...

    def list_job_mpijobs(self, namespace: str, job: str) -> list[Obj]:
        """The MPIJobs labelled with the Job's name, read from the apiserver; none when the
        MPIJob CRD is not installed."""
        ...

    def list_workloads(self, namespace: str, owner_uid: str) -> list[Obj] | None:
        """Kueue's Workloads for the object (a pod, an MPIJob) of this UID, read from the
        apiserver; None when Kueue is not installed."""
        ...

    def pod_warnings(self, namespace: str, name: str, uid: str) -> list[Obj]:
        """The Warning Events about the pod (this uid), unsorted; none when unreadable."""
        ...

    def crd_exists(self, name: str) -> bool: ...

    def ownership(self, kind: str, namespace: str, name: str) -> Ownership | None:
        """The UID of the Pod, PVC, MPIJob or batch Job ("batch/Job") and its controller's
        UID; None when it does not exist."""
        ...

    # ---------------------------------------------------------------- writes

    def create(self, manifest: Obj) -> bool:
        """Create a Pod, PVC or MPIJob; False when it already existed; RefusedError when the
        apiserver refused it."""
        ...

    def delete(self, kind: str, namespace: str, name: str, uid: str) -> bool:
        """Delete the Pod, PVC or MPIJob of this `uid` only (a precondition; an MPIJob in the
        foreground, so it stands until the pods it made are gone); False when it is gone or the
        name now belongs to another object."""
        ...

    def delete_job(self, namespace: str, name: str, uid: str) -> None:
        """Delete the Job (this uid only), its children in the background; gone is fine."""
        ...

    def replace_status(self, kind_plural: str, obj: Obj, status: Obj) -> Obj:
        """Write `status` onto `obj` with its resourceVersion and return the object written:
        ConflictError if it moved on, NotFoundError if it is gone."""
        ...

    def post_event(self, obj: Obj, type_: str, reason: str, message: str, component: str) -> None:
        """A core/v1 Event about `obj` (best effort: a lost Event is no error)."""
        ...


class LeaseAPI(Protocol):
    """The leader-election Lease: read, create, replace with the version read."""

    def get(self) -> LeaseRecord | None:
        """The Lease's record; None when it does not exist."""
        ...

    def create(self, record: LeaseRecord) -> bool:
        """Create the Lease; False when another process created it first."""
        ...

    def update(self, record: LeaseRecord) -> bool:
        """Replace the Lease if still at `record.version`; False when it moved on or is gone."""
        ...
