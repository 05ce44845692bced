"""The Kubeflow MPI Operator's MPIJobs as the operator reads and writes them (custom objects).

Owns: the MPIJob calls `kube.KubeClient` makes — listing a Job's MPIJobs by label (none when
the CRD is not installed), creating one, reading whose it is, deleting it in the foreground
(it stands, being deleted, until the launcher Job and the pods it made are gone) — as a mixin
of `KubeClient`, which counts and rate-limits every call. Must not: decide anything, or be used
but through `KubeClient`.
"""

from __future__ import annotations

from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from ferry.api import names
from ferry.clients.protocol import Ownership

Obj = dict[str, Any]
_MPI = (names.MPI_GROUP, names.MPI_VERSION)


class MPIJobCalls:
    """MPIJob calls for `KubeClient` (which provides `custom` and `_call`)."""

    custom: client.CustomObjectsApi

    def _call(self, verb: str, resource: str) -> None: ...

    def list_job_mpijobs(self, namespace: str, job: str) -> list[Obj]:
        """The MPIJobs labelled with the Job's name; none when the CRD is not installed."""
        self._call("list", names.MPIJOB_PLURAL)
        try:
            result = self.custom.list_namespaced_custom_object(
                *_MPI, namespace, names.MPIJOB_PLURAL, label_selector=f"{names.LABEL_JOB}={job}"
            )
        except ApiException as exc:
            if exc.status == 404:
                return []
            raise
        items: list[Obj] = result.get("items", [])
        return items

    def _create_mpijob(self, namespace: str, manifest: Obj) -> Any:
        """The raw response (not read: the caller discards it)."""
        self._call("create", names.MPIJOB_PLURAL)
        return self.custom.create_namespaced_custom_object(
            *_MPI, namespace, names.MPIJOB_PLURAL, manifest, _preload_content=False
        )

    def _mpijob_ownership(self, namespace: str, name: str) -> Ownership:
        """Its UID and its controller's; ApiException (404) when it does not exist."""
        self._call("get", names.MPIJOB_PLURAL)
        found: Obj = self.custom.get_namespaced_custom_object(
            *_MPI, namespace, names.MPIJOB_PLURAL, name
        )
        meta = found.get("metadata") or {}
        refs = [r for r in meta.get("ownerReferences") or [] if r.get("controller")]
        controller_uid = str(refs[0].get("uid") or "") if refs else ""
        return Ownership(uid=str(meta.get("uid") or ""), controller_uid=controller_uid)

    def _delete_mpijob(self, namespace: str, name: str, body: client.V1DeleteOptions) -> None:
        """In the foreground: it stands until the launcher Job and the pods it made are gone,
        so the Job sees them go."""
        self._call("delete", names.MPIJOB_PLURAL)
        body.propagation_policy = "Foreground"
        self.custom.delete_namespaced_custom_object(
            *_MPI, namespace, names.MPIJOB_PLURAL, name, body=body
        )
