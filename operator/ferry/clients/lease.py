"""The leader-election Lease (coordination.k8s.io/v1) on the apiserver: read, create, replace.

Owns: the three calls leader election makes — GET the Lease, CREATE it, UPDATE it with the
resourceVersion read (optimistic lock) — and the mapping between a Lease object and a
`decisions.leadership.LeaseRecord`; "someone else wrote first" (AlreadyExists, Conflict) is an
answer (False), not an error. Must not: decide anything (ferry.decisions.leadership does).
Calls are blocking; the elector runs them in a thread.
"""

from __future__ import annotations

from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from ferry.clients.kube import WriteCounter
from ferry.decisions.leadership import LeaseRecord


def _record(lease: Any) -> LeaseRecord:
    spec = lease.spec
    return LeaseRecord(
        holder=spec.holder_identity or "",
        duration_seconds=int(spec.lease_duration_seconds or 0),
        acquire_time=spec.acquire_time,
        renew_time=spec.renew_time,
        transitions=int(spec.lease_transitions or 0),
        version=str(lease.metadata.resource_version or ""),
    )


def _body(namespace: str, name: str, record: LeaseRecord) -> client.V1Lease:
    return client.V1Lease(
        metadata=client.V1ObjectMeta(
            name=name, namespace=namespace, resource_version=record.version or None
        ),
        spec=client.V1LeaseSpec(
            holder_identity=record.holder,
            lease_duration_seconds=record.duration_seconds,
            acquire_time=record.acquire_time,
            renew_time=record.renew_time,
            lease_transitions=record.transitions,
        ),
    )


class LeaseClient:
    """One named Lease, read and written with a timeout shorter than a renewal's deadline."""

    def __init__(self, api: client.ApiClient, namespace: str, name: str, timeout: float) -> None:
        self.api = client.CoordinationV1Api(api)
        self.namespace = namespace
        self.name = name
        self.timeout = timeout
        self.calls = WriteCounter({})

    def get(self) -> LeaseRecord | None:
        self.calls.add("get", "leases")
        try:
            lease = self.api.read_namespaced_lease(
                self.name, self.namespace, _request_timeout=self.timeout
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return _record(lease)

    def create(self, record: LeaseRecord) -> bool:
        """Create the Lease; False when another process created it first."""
        self.calls.add("create", "leases")
        try:
            self.api.create_namespaced_lease(
                self.namespace,
                _body(self.namespace, self.name, record),
                _request_timeout=self.timeout,
            )
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise
        return True

    def update(self, record: LeaseRecord) -> bool:
        """Replace the Lease if it is still at `record.version`; False when it moved on."""
        self.calls.add("update", "leases")
        try:
            self.api.replace_namespaced_lease(
                self.name,
                self.namespace,
                _body(self.namespace, self.name, record),
                _request_timeout=self.timeout,
            )
        except ApiException as exc:
            if exc.status in (404, 409):
                return False
            raise
        return True
