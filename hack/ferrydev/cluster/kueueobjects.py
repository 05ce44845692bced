"""Kueue's objects and names as Ferry's local cluster and tests use them: label names, the
scheduling gate, and plain dict builders for a ResourceFlavor, ClusterQueue, LocalQueue and
WorkloadPriorityClass (Kueue's v1beta2 API, v0.17).

Owns: those names (defined once here; `ferrydev.cluster.kueue` runs Kueue with them) and the
builders. Must not: talk to a cluster or start anything.
"""

from __future__ import annotations

from typing import Any

API = "kueue.x-k8s.io/v1beta2"
#: The label that opts a namespace in: Kueue's pod and MPIJob webhooks and its pod
#: integration act only on namespaces that carry it. Tests label their namespaces with it.
NAMESPACE_LABEL = "ferry.dev/kueue-test"
NAMESPACE_LABEL_VALUE = "true"
#: Kueue's own labels (its API, v0.17): a pod's or job's queue, its workload priority class,
#: and the label on a Workload naming the UID of the object it was made for.
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
PRIORITY_CLASS_LABEL = "kueue.x-k8s.io/priority-class"
JOB_UID_LABEL = "kueue.x-k8s.io/job-uid"
#: The scheduling gate Kueue's pod webhook adds and removes on admission.
ADMISSION_GATE = "kueue.x-k8s.io/admission"
#: Kueue v0.17 adds this gate too (Topology Aware Scheduling is on by default) and lifts it on
#: admission when the queue has no topology.
TOPOLOGY_GATE = "kueue.x-k8s.io/topology"


def resource_flavor(name: str = "default") -> dict[str, Any]:
    return {"apiVersion": API, "kind": "ResourceFlavor", "metadata": {"name": name}}


def cluster_queue(
    name: str,
    quota: dict[str, str],
    flavor: str = "default",
    within_cluster_queue: str = "LowerPriority",
) -> dict[str, Any]:
    """A ClusterQueue with `quota` (resource name to nominal quota, e.g. {"cpu": "1",
    "memory": "1Gi"}) in one flavor, open to every namespace, that preempts lower-priority
    workloads of its own (`withinClusterQueue`) and never across a cohort."""
    return {
        "apiVersion": API,
        "kind": "ClusterQueue",
        "metadata": {"name": name},
        "spec": {
            "namespaceSelector": {},
            "resourceGroups": [
                {
                    "coveredResources": list(quota),
                    "flavors": [
                        {
                            "name": flavor,
                            "resources": [{"name": r, "nominalQuota": q} for r, q in quota.items()],
                        }
                    ],
                }
            ],
            "preemption": {
                "withinClusterQueue": within_cluster_queue,
                "reclaimWithinCohort": "Never",
            },
        },
    }


def local_queue(name: str, namespace: str, cluster_queue_name: str) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "LocalQueue",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"clusterQueue": cluster_queue_name},
    }


def workload_priority_class(name: str, value: int, description: str = "") -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "WorkloadPriorityClass",
        "metadata": {"name": name},
        "value": value,
        "description": description,
    }
