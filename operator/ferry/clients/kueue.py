"""Kueue's Workloads as the operator reads them (custom objects, read only).

Owns: the one Kueue call `kube.KubeClient` makes — listing the Workloads that stand for a run
object (a gated run pod, a suspended MPIJob), found by Kueue's label naming that object's UID
— as a mixin of `KubeClient`, which counts and rate-limits every call. None when Kueue is not
installed (the Workload CRD answers 404). Must not: decide anything, write to Kueue's objects,
or be used but through `KubeClient`.
"""

from __future__ import annotations

from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from ferry.api import names

Obj = dict[str, Any]


class KueueCalls:
    """Workload reads for `KubeClient` (which provides `custom` and `_call`)."""

    custom: client.CustomObjectsApi

    def _call(self, verb: str, resource: str) -> None: ...

    def list_workloads(self, namespace: str, owner_uid: str) -> list[Obj] | None:
        """The Workloads Kueue made for the object of this UID; None when Kueue is not
        installed."""
        self._call("list", names.WORKLOAD_PLURAL)
        try:
            result = self.custom.list_namespaced_custom_object(
                names.KUEUE_GROUP,
                names.KUEUE_VERSION,
                namespace,
                names.WORKLOAD_PLURAL,
                label_selector=f"{names.KUEUE_LABEL_JOB_UID}={owner_uid}",
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        items: list[Obj] = result.get("items", [])
        return items
