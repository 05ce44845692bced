"""The session's real Kueue as tests use it (fixtures `kueue` in tests/conftest.py and
`real_kueue` in tests/e2e/conftest.py; ferrydev.cluster.kueue runs it).

`KueueEnv` opts a namespace in (the label Kueue's webhooks are narrowed to), makes a
ClusterQueue with a quota and a LocalQueue over it, a WorkloadPriorityClass, and finds the
Workload Kueue made for an object (by the `kueue.x-k8s.io/job-uid` label Kueue puts on it).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from ferrydev.cluster import ClusterError
from ferrydev.cluster import kueue as kq
from ferrydev.cluster import kueueobjects as ko
from tests.conftest import Kube

#: The ResourceFlavor every queue made here uses (created once per Kueue).
FLAVOR = "default"


class KueueEnv:
    """A running Kueue on the test cluster and what tests do with it."""

    label = ko.NAMESPACE_LABEL
    label_value = ko.NAMESPACE_LABEL_VALUE
    queue_label = ko.QUEUE_LABEL
    priority_class_label = ko.PRIORITY_CLASS_LABEL
    job_uid_label = ko.JOB_UID_LABEL
    admission_gate = ko.ADMISSION_GATE

    def __init__(self, kube: Kube, process: kq.KueueProcess) -> None:
        self.kube = kube
        self.process = process
        kube.apply(ko.resource_flavor(FLAVOR))

    def enable(self, namespace: str) -> None:
        """Opt `namespace` in: Kueue's pod and MPIJob webhooks act only on labelled ones."""
        self.kube.run(
            "label", "namespace", namespace, f"{self.label}={self.label_value}", "--overwrite"
        )

    def queue(
        self,
        namespace: str,
        quota: dict[str, str] | None = None,
        name: str = "",
        within_cluster_queue: str = "LowerPriority",
    ) -> str:
        """A fresh ClusterQueue with `quota` (default cpu 1, memory 1Gi) and a LocalQueue over
        it in `namespace` (opted in); returns the LocalQueue's name, the value of the
        `kueue.x-k8s.io/queue-name` label. The ClusterQueue is named after it and the namespace."""
        self.enable(namespace)
        name = name or f"q-{uuid.uuid4().hex[:6]}"
        cq = f"{namespace}-{name}"
        self.kube.apply(
            ko.cluster_queue(
                cq, quota or {"cpu": "1", "memory": "1Gi"}, FLAVOR, within_cluster_queue
            )
        )
        self.kube.apply(ko.local_queue(name, namespace, cq))
        self.kube.wait_for(
            lambda: self.active("localqueue", name, namespace) and self.active("clusterqueue", cq),
            timeout=30,
            what=f"ClusterQueue {cq} and LocalQueue {namespace}/{name} Active",
        )
        return name

    def active(self, kind: str, name: str, namespace: str = "") -> bool:
        args = ("get", kind, name, "-o", "json", *(("-n", namespace) if namespace else ()))
        proc = self.kube.run(*args, check=False)
        if proc.returncode != 0:
            return False
        conditions = json.loads(proc.stdout).get("status", {}).get("conditions", [])
        return any(c["type"] == "Active" and c["status"] == "True" for c in conditions)

    def priority_class(self, name: str, value: int) -> str:
        """A WorkloadPriorityClass (cluster-wide; applied, so reusable by name)."""
        self.kube.apply(ko.workload_priority_class(name, value, f"test priority {value}"))
        return name

    def workload_of(self, namespace: str, uid: str) -> dict[str, Any] | None:
        """The Workload Kueue made for the object with `uid` (a pod, an MPIJob), if any."""
        items = self.kube.list(
            "workloads.kueue.x-k8s.io", namespace, "-l", f"{self.job_uid_label}={uid}"
        )
        assert len(items) <= 1, f"{len(items)} Workloads for {uid}"
        return items[0] if items else None


def start(kube: Kube) -> kq.KueueProcess:
    try:
        return kq.start_kueue(kube.state)
    except ClusterError as exc:
        pytest.fail(f"Kueue did not start: {exc}\n(run `hack/build-tools.sh kueue` to build it)")


def condition(obj: dict[str, Any] | None, kind: str) -> dict[str, Any] | None:
    """The status condition of type `kind` of `obj`, if any."""
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c["type"] == kind:
            result: dict[str, Any] = c
            return result
    return None
